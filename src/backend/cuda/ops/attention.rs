//! `attention` → `kernels/attention.cu`.

use super::{Arena, not_yet};
use crate::backend::cuda::{CudaBackend, Executor};
use crate::backend::{Rows, View};
use crate::error::Result;

pub fn scratch_len(_tq: usize, _tk: usize, _heads: usize, _head_dim: usize) -> usize {
    0
}

#[allow(clippy::too_many_arguments)]
pub fn attention<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _q: Rows,
    _k: Rows,
    _v: Rows,
    _tq: usize,
    _tk: usize,
    _heads: usize,
    _head_dim: usize,
    _scale: f32,
    _out: View,
    _scratch: View,
) -> Result<()> {
    Err(not_yet("attention"))
}
