//! The tensor-core GEMM of `kernels/conv_tc.cu`, shared by convolution (`conv_tc.rs`), linear
//! maps (`linear_tc.rs`) and runtime LoRA (`lora.rs`):
//!
//!   out[co·ld_c + p·ld_p] = alpha · (Σ_k A[co, k]·B[k, p] + Σ_k' A₂[co, k']·B₂[k', p])
//!                           + beta · bias[co]
//!                           (+ out's old value)
//!
//! with A the packed weight and B gathered from the packed input over a convolution's receptive
//! fields (a linear map is a 1 × 1 convolution over a 1 × rows image whose input is already
//! channels-last), and the optional second segment LoRA's up projection: A₂ = `lora_B`
//! `[c_out, k2]`, B₂ = the down projection `[pixels, k2]` at the output pixel.

use super::conv::{GRID_X_MAX, GRID_YZ_MAX, grid_dim};
use crate::backend::cuda::{Arg, CudaBackend, DevPtr, Executor, Launch, int};
use crate::error::Result;

/// Halves per shared-memory row of a stage (32 k + 8 padding; kernels/conv_tc.cu).
const LDS: usize = 40;

/// One instantiation of the GEMM kernel (kernels/conv_tc.cu).
struct Tile {
    kernel: &'static str,
    /// Output channels and pixels per block.
    m: usize,
    n: usize,
    threads: u32,
    /// Dynamic shared memory in bytes (0: the kernel's is static).
    dynamic_smem: u32,
}

const SMALL: Tile = Tile {
    kernel: "conv_tc_64x64",
    m: 64,
    n: 64,
    threads: 128,
    dynamic_smem: 0,
};
const LARGE: Tile = Tile {
    kernel: "conv_tc_128x128",
    m: 128,
    n: 128,
    threads: 256,
    dynamic_smem: (4 * (128 + 128) * LDS * 2) as u32,
};

/// The 128 × 128 tile once it still yields this many blocks (a wave on a large GPU; Orin has
/// 16 SMs, an H200 132): fewer, larger blocks halve the shared-memory traffic per flop, but a
/// grid of a few blocks would leave most SMs idle.
const LARGE_MIN_BLOCKS: usize = 128;

fn tile_for(c_out: usize, pixels: usize) -> &'static Tile {
    if c_out.div_ceil(LARGE.m) * pixels.div_ceil(LARGE.n) >= LARGE_MIN_BLOCKS {
        &LARGE
    } else {
        &SMALL
    }
}

/// The convolution the first segment gathers: input `h × w` with `c_pad` channels (a multiple
/// of 8) per pixel, `kh × kw` taps, output `c_out × ho × wo`.
#[derive(Clone, Copy)]
pub struct Geometry {
    pub c_pad: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub ho: usize,
    pub wo: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl Geometry {
    /// `out[rows, n_out] = x[rows, n_in] · Wᵀ` as a 1 × 1 convolution over a 1 × rows image.
    pub fn linear(rows: usize, n_in: usize, n_out: usize) -> Geometry {
        Geometry {
            c_pad: n_in,
            h: 1,
            w: rows,
            c_out: n_out,
            ho: 1,
            wo: rows,
            kh: 1,
            kw: 1,
            stride: 1,
            pad_top: 0,
            pad_left: 0,
        }
    }
}

/// Operands and epilogue of one launch. Pointers must be 16-byte aligned, as must every row
/// of `xt`, `wt`, `xt2`, `wt2` (`c_pad` and `k2` multiples of 8).
pub struct Gemm {
    pub xt: DevPtr,
    pub wt: DevPtr,
    /// 0: no bias.
    pub bias: DevPtr,
    pub out: DevPtr,
    /// LoRA's segment: (`xt2` `[pixels, k2]`, `wt2` `[c_out, k2]`, `k2`).
    pub second: Option<(DevPtr, DevPtr, usize)>,
    pub g: Geometry,
    /// Output strides of a channel and of a pixel.
    pub ld_c: usize,
    pub ld_p: usize,
    pub alpha: f32,
    pub beta: f32,
    pub accumulate: bool,
}

/// Launches `m` on the tile size that suits its grid.
pub fn launch<E: Executor>(b: &CudaBackend<E>, m: &Gemm) -> Result<()> {
    let g = &m.g;
    let pixels = g.ho * g.wo;
    let (xt2, wt2, k2) = m.second.unwrap_or((0, 0, 0));
    // The kernel indexes with 32-bit ints: every flat index must fit.
    for n in [
        g.h * g.w * g.c_pad,
        g.c_out * g.kh * g.kw * g.c_pad,
        pixels * k2,
        g.c_out * k2,
        g.c_out * pixels,
    ] {
        int(n)?;
    }
    let tile = tile_for(g.c_out, pixels);
    let geometry = Launch {
        grid: [
            grid_dim(pixels.div_ceil(tile.n), GRID_X_MAX)?,
            grid_dim(g.c_out.div_ceil(tile.m), GRID_YZ_MAX)?,
            1,
        ],
        block: [tile.threads, 1, 1],
        shared_bytes: tile.dynamic_smem,
    };
    b.run(
        tile.kernel,
        geometry,
        &[
            Arg::Ptr(m.xt),
            Arg::Ptr(m.wt),
            Arg::Ptr(m.bias),
            Arg::Ptr(m.out),
            Arg::Ptr(xt2),
            Arg::Ptr(wt2),
            int(k2)?,
            int(g.c_pad)?,
            int(g.h)?,
            int(g.w)?,
            int(g.c_out)?,
            int(g.ho)?,
            int(g.wo)?,
            int(g.kh)?,
            int(g.kw)?,
            int(g.stride)?,
            int(g.pad_top)?,
            int(g.pad_left)?,
            int(m.ld_c)?,
            int(m.ld_p)?,
            Arg::F32(m.alpha),
            Arg::F32(m.beta),
            Arg::I32(m.accumulate as i32),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_tiles_only_for_large_grids() {
        assert_eq!(tile_for(256, 64 * 64).kernel, SMALL.kernel); // 2 × 32 blocks
        assert_eq!(tile_for(512, 64 * 64).kernel, LARGE.kernel); // 4 × 32
        assert_eq!(tile_for(130, 17 * 9).kernel, SMALL.kernel);
        assert_eq!(tile_for(512, 128 * 128).kernel, LARGE.kernel);
    }
}
