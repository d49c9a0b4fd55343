//! `conv2d` → `kernels/conv.cu`.

use super::{Arena, not_yet};
use crate::backend::cuda::{CudaBackend, CudaWeight, Executor};
use crate::backend::{Conv2d, View};
use crate::error::Result;

pub fn scratch_len(_p: &Conv2d, _h: usize, _w: usize) -> usize {
    0
}

#[allow(clippy::too_many_arguments)]
pub fn conv2d<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _p: &Conv2d,
    _x: View,
    _h: usize,
    _w: usize,
    _weight: &CudaWeight,
    _bias: Option<&CudaWeight>,
    _out: View,
    _scratch: View,
    _accumulate: bool,
) -> Result<()> {
    Err(not_yet("conv2d"))
}
