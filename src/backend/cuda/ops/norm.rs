//! `group_norm`, `layer_norm` → `kernels/norm.cu`.

use super::{Arena, not_yet};
use crate::backend::View;
use crate::backend::cuda::{CudaBackend, CudaWeight, Executor};
use crate::error::Result;

#[allow(clippy::too_many_arguments)]
pub fn group_norm<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _out: View,
    _c: usize,
    _hw: usize,
    _groups: usize,
    _eps: f32,
    _gamma: &CudaWeight,
    _beta: &CudaWeight,
    _silu: bool,
) -> Result<()> {
    Err(not_yet("group_norm"))
}

#[allow(clippy::too_many_arguments)]
pub fn layer_norm<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _out: View,
    _rows: usize,
    _d: usize,
    _eps: f32,
    _gamma: &CudaWeight,
    _beta: &CudaWeight,
) -> Result<()> {
    Err(not_yet("layer_norm"))
}
