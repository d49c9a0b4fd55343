//! `upsample_nearest`, `bicubic`, `pad_reflect`, `crop`, `transpose` → `kernels/resize.cu`.

use super::{Arena, not_yet};
use crate::backend::View;
use crate::backend::cuda::{CudaBackend, Executor};
use crate::error::Result;

#[allow(clippy::too_many_arguments)]
pub fn upsample_nearest<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _c: usize,
    _h: usize,
    _w: usize,
    _oh: usize,
    _ow: usize,
    _out: View,
) -> Result<()> {
    Err(not_yet("upsample_nearest"))
}

#[allow(clippy::too_many_arguments)]
pub fn bicubic<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _c: usize,
    _h: usize,
    _w: usize,
    _oh: usize,
    _ow: usize,
    _scale_factor: Option<(f64, f64)>,
    _antialias: bool,
    _out: View,
    _scratch: View,
) -> Result<()> {
    Err(not_yet("bicubic"))
}

pub fn bicubic_scratch(_c: usize, _h: usize, _ow: usize, _antialias: bool) -> usize {
    0
}

#[allow(clippy::too_many_arguments)]
pub fn pad_reflect<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _c: usize,
    _h: usize,
    _w: usize,
    _oh: usize,
    _ow: usize,
    _out: View,
) -> Result<()> {
    Err(not_yet("pad_reflect"))
}

#[allow(clippy::too_many_arguments)]
pub fn crop<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _c: usize,
    _h: usize,
    _w: usize,
    _oh: usize,
    _ow: usize,
    _out: View,
) -> Result<()> {
    Err(not_yet("crop"))
}

pub fn transpose<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _rows: usize,
    _cols: usize,
    _out: View,
) -> Result<()> {
    Err(not_yet("transpose"))
}
