//! `linear` → `kernels/linear.cu`.

use super::{Arena, not_yet};
use crate::backend::View;
use crate::backend::cuda::{CudaBackend, CudaWeight, Executor};
use crate::error::Result;

#[allow(clippy::too_many_arguments)]
pub fn linear<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _rows: usize,
    _n_in: usize,
    _w: &CudaWeight,
    _n_out: usize,
    _bias: Option<&CudaWeight>,
    _out: View,
    _accumulate: bool,
) -> Result<()> {
    Err(not_yet("linear"))
}
