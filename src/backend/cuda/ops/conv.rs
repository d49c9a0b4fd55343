//! `conv2d` → `kernels/conv_tc.cu` on tensor cores (f16 storage, [`Kernels::TensorCore`]: see
//! `conv_tc.rs`), else `kernels/conv.cu`: an implicit GEMM in f32 FMA over 64 × 64 tiles of
//! (output channels × output pixels) that gathers its im2col slices straight from the input.
//!
//! [`Kernels::TensorCore`]: crate::backend::cuda::Kernels::TensorCore

use super::{Arena, conv_tc};
use crate::backend::cuda::{Arg, CudaBackend, CudaWeight, Executor, Launch, disjoint, int};
use crate::backend::{Conv2d, View};
use crate::error::{Error, Result};

/// Output channels and output pixels per block, and threads per block (kernels/conv.cu).
const TILE_M: usize = 64;
const TILE_N: usize = 64;
const THREADS: u32 = 256;

/// Scratch in elements: the tensor-core path's packed input, or none for the simple kernel
/// (which gathers its input tiles itself).
pub fn scratch_len(p: &Conv2d, h: usize, w: usize, tensor_cores: bool) -> usize {
    if tensor_cores {
        conv_tc::scratch_len(p, h, w)
    } else {
        0
    }
}

/// `out[c_out, ho, wo]` (+)= `alpha`·conv(`x[c_in, h, w]`) + `beta`·`bias` (`alpha`, `beta`:
/// the f16 pre-scales, 1 otherwise); `scratch` holds the tensor-core path's packed input (a
/// smaller one selects the simple kernel).
#[allow(clippy::too_many_arguments)]
pub fn conv2d<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    p: &Conv2d,
    x: View,
    h: usize,
    w: usize,
    weight: &CudaWeight,
    bias: Option<&CudaWeight>,
    out: View,
    scratch: View,
    (alpha, beta): (f32, f32),
    accumulate: bool,
) -> Result<()> {
    if !check(p, x, h, w, weight, bias, out, scratch)? {
        return Ok(());
    }
    let (ho, wo) = p.out_hw(h, w);
    let bias_ptr = b.weight_or_null(bias)?;
    if b.tensor_cores() && conv_tc::supported(p, h, w, weight, scratch) {
        return conv_tc::conv2d(
            b,
            a,
            p,
            x,
            h,
            w,
            weight,
            bias_ptr,
            out,
            scratch,
            (alpha, beta),
            accumulate,
            None,
        );
    }
    let geometry = Launch {
        grid: [
            grid_dim((ho * wo).div_ceil(TILE_N), GRID_X_MAX)?,
            grid_dim(p.c_out.div_ceil(TILE_M), GRID_YZ_MAX)?,
            1,
        ],
        block: [THREADS, 1, 1],
        shared_bytes: 0,
    };
    b.run(
        "conv2d",
        geometry,
        &[
            Arg::Ptr(b.act(a, x)?),
            Arg::Ptr(b.weight(weight)?),
            Arg::Ptr(bias_ptr),
            Arg::Ptr(b.act(a, out)?),
            int(p.c_in)?,
            int(h)?,
            int(w)?,
            int(p.c_out)?,
            int(ho)?,
            int(wo)?,
            int(p.kh)?,
            int(p.kw)?,
            int(p.stride)?,
            int(p.pad[0])?,
            int(p.pad[2])?,
            Arg::F32(alpha),
            Arg::F32(beta),
            Arg::I32(accumulate as i32),
        ],
    )
}

/// Checks a convolution's views (sizes, disjoint outputs) and weights, and that every flat
/// index fits the kernels' 32-bit ints. `Ok(false)`: the output is empty, nothing to run.
#[allow(clippy::too_many_arguments)]
pub(super) fn check(
    p: &Conv2d,
    x: View,
    h: usize,
    w: usize,
    weight: &CudaWeight,
    bias: Option<&CudaWeight>,
    out: View,
    scratch: View,
) -> Result<bool> {
    if p.stride == 0 {
        return Err(Error::InvalidArgument(format!("conv2d {p:?}: stride 0")));
    }
    let (ho, wo) = p.out_hw(h, w);
    let (pixels, depth) = (ho * wo, p.c_in * p.kh * p.kw);
    let need = |what: &str, have: usize, want: usize| {
        if have < want {
            return Err(Error::InvalidArgument(format!(
                "conv2d {p:?} on {h}×{w}: {what} has {have} elements, needs {want}"
            )));
        }
        Ok(())
    };
    need("input", x.len, p.c_in * h * w)?;
    need("output", out.len, p.c_out * pixels)?;
    if !conv_tc::weight_fits(p, weight) {
        need("weight", weight.len(), p.c_out * depth)?;
    }
    if let Some(bias) = bias {
        need("bias", bias.len(), p.c_out)?;
    }
    disjoint(&[out, scratch], &[x])?;
    if pixels == 0 || p.c_out == 0 {
        return Ok(false);
    }
    // The kernel indexes with 32-bit ints: every flat index must fit.
    for n in [p.c_in * h * w, p.c_out * pixels, p.c_out * depth] {
        int(n)?;
    }
    Ok(true)
}

/// CUDA's grid limits in x and in y/z.
pub(super) const GRID_X_MAX: usize = i32::MAX as usize;
pub(super) const GRID_YZ_MAX: usize = 65535;

/// `blocks` as a grid dimension of at most `max` blocks (shared with `linear`).
pub(super) fn grid_dim(blocks: usize, max: usize) -> Result<u32> {
    if blocks > max {
        return Err(Error::Unsupported(format!(
            "{blocks} blocks exceed CUDA's grid limit of {max}"
        )));
    }
    Ok(blocks as u32)
}
