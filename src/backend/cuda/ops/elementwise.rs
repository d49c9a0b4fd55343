//! Elementwise and small ops → `kernels/elementwise.cu`: activations, GLU, residual adds,
//! affine/clamp/normalise, the x0 step, copies, the timestep embedding.

use super::{Arena, not_yet};
use crate::backend::cuda::{CudaBackend, CudaWeight, Executor};
use crate::backend::{Glu, View};
use crate::error::Result;

pub fn silu<E: Executor>(_b: &CudaBackend<E>, _a: &mut Arena<E>, _x: View) -> Result<()> {
    Err(not_yet("silu"))
}

pub fn gelu<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _tanh_approx: bool,
) -> Result<()> {
    Err(not_yet("gelu"))
}

pub fn glu<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _kind: Glu,
    _x: View,
    _rows: usize,
    _d: usize,
    _out: View,
) -> Result<()> {
    Err(not_yet("glu"))
}

pub fn add<E: Executor>(_b: &CudaBackend<E>, _a: &mut Arena<E>, _x: View, _y: View) -> Result<()> {
    Err(not_yet("add"))
}

pub fn add_weight<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _w: &CudaWeight,
) -> Result<()> {
    Err(not_yet("add_weight"))
}

pub fn add_channel_bias<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _c: usize,
    _v: View,
) -> Result<()> {
    Err(not_yet("add_channel_bias"))
}

pub fn scale_add<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _y: View,
    _s: &CudaWeight,
    _d: usize,
) -> Result<()> {
    Err(not_yet("scale_add"))
}

pub fn affine<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _add_before: f32,
    _mul: f32,
    _add_after: f32,
) -> Result<()> {
    Err(not_yet("affine"))
}

pub fn clamp<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _lo: f32,
    _hi: f32,
) -> Result<()> {
    Err(not_yet("clamp"))
}

pub fn channel_normalize<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _x: View,
    _mean: &[f32],
    _std: &[f32],
) -> Result<()> {
    Err(not_yet("channel_normalize"))
}

pub fn x0_from_eps<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _z: View,
    _eps: View,
    _c1: f32,
    _c2: f32,
    _out: View,
) -> Result<()> {
    Err(not_yet("x0_from_eps"))
}

pub fn copy<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _src: View,
    _dst: View,
) -> Result<()> {
    Err(not_yet("copy"))
}

pub fn copy_weight<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _w: &CudaWeight,
    _dst: View,
) -> Result<()> {
    Err(not_yet("copy_weight"))
}

pub fn timestep_embedding<E: Executor>(
    _b: &CudaBackend<E>,
    _a: &mut Arena<E>,
    _t: f32,
    _dim: usize,
    _flip_sin_to_cos: bool,
    _freq_shift: f32,
    _out: View,
) -> Result<()> {
    Err(not_yet("timestep_embedding"))
}
