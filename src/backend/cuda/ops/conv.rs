//! `conv2d` → `kernels/conv.cu`: an implicit GEMM over 64 × 64 tiles of (output channels ×
//! output pixels) that gathers its im2col slices straight from the input, so it needs no
//! scratch.

use super::Arena;
use crate::backend::cuda::{Arg, CudaBackend, CudaWeight, DevPtr, Executor, Launch, disjoint, int};
use crate::backend::{Conv2d, View};
use crate::error::{Error, Result};

/// Output channels and output pixels per block, and threads per block (kernels/conv.cu).
const TILE_M: usize = 64;
const TILE_N: usize = 64;
const THREADS: u32 = 256;

/// The kernel gathers its input tiles itself: no scratch.
pub fn scratch_len(_p: &Conv2d, _h: usize, _w: usize) -> usize {
    0
}

/// `out[c_out, ho, wo]` (+)= conv(`x[c_in, h, w]`) + `bias`; `scratch` is unused.
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
    accumulate: bool,
) -> Result<()> {
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
    need("weight", weight.len(), p.c_out * depth)?;
    if let Some(bias) = bias {
        need("bias", bias.len(), p.c_out)?;
    }
    disjoint(&[out, scratch], &[x])?;
    if pixels == 0 || p.c_out == 0 {
        return Ok(());
    }
    // The kernel indexes with 32-bit ints: every flat index must fit.
    for n in [p.c_in * h * w, p.c_out * pixels, p.c_out * depth] {
        int(n)?;
    }
    let bias_ptr: DevPtr = match bias {
        Some(bias) => b.weight(bias)?,
        None => 0,
    };
    let geometry = Launch {
        grid: [
            grid_dim(pixels.div_ceil(TILE_N), GRID_X_MAX)?,
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
            Arg::I32(accumulate as i32),
        ],
    )
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
