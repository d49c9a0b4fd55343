//! `conv2d` on tensor cores → `kernels/conv_tc.cu` (f16 storage): two packing passes into the
//! op's scratch (the input channels-last with channels padded to 8, the weight reordered to the
//! same (tap, channel) order), then an implicit GEMM with `mma.sync`, `ldmatrix` and a
//! multi-stage `cp.async` pipeline. `ops/conv.rs` validates the views and chooses this path.

use super::Arena;
use super::conv::{GRID_X_MAX, GRID_YZ_MAX, grid_dim};
use crate::backend::cuda::{Arg, CudaBackend, CudaWeight, DevPtr, Executor, Launch, int};
use crate::backend::{Conv2d, View};
use crate::error::Result;

/// Halves per 16 bytes: the alignment of every packed buffer (cp.async moves 16 bytes).
const ALIGN: usize = 8;
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

/// Channels padded to a multiple of 8 (a 16-byte chunk of one pixel's channels).
fn c_pad(c_in: usize) -> usize {
    c_in.div_ceil(ALIGN) * ALIGN
}

/// Sizes of the packed input (`[h·w, c_pad]`) and weight (`[c_out, kh, kw, c_pad]`), each
/// rounded up to whole 16-byte chunks.
fn packed_lens(p: &Conv2d, h: usize, w: usize) -> (usize, usize) {
    let cp = c_pad(p.c_in);
    let round = |n: usize| n.div_ceil(ALIGN) * ALIGN;
    (round(h * w * cp), round(p.c_out * p.kh * p.kw * cp))
}

/// Scratch elements the tensor-core path needs: both packed buffers, plus slack to align the
/// first to 16 bytes wherever the planner put the scratch view.
pub fn scratch_len(p: &Conv2d, h: usize, w: usize) -> usize {
    let (xt, wt) = packed_lens(p, h, w);
    ALIGN + xt + wt
}

/// Whether `conv2d` below can run this convolution: the scratch is large enough and every
/// flat index of the packed buffers fits the kernels' 32-bit ints.
pub fn supported(p: &Conv2d, h: usize, w: usize, scratch: View) -> bool {
    let (xt, wt) = packed_lens(p, h, w);
    p.stride > 0 && scratch.len >= scratch_len(p, h, w) && i32::try_from(xt.max(wt)).is_ok()
}

/// `out[c_out, ho, wo]` (+)= conv(`x[c_in, h, w]`) + `bias` on tensor cores. The caller
/// (`ops/conv.rs`) has checked the views' sizes and that they are disjoint, and [`supported`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    p: &Conv2d,
    x: View,
    h: usize,
    w: usize,
    weight: &CudaWeight,
    bias: Option<DevPtr>,
    out: View,
    scratch: View,
    accumulate: bool,
) -> Result<()> {
    let (ho, wo) = p.out_hw(h, w);
    let (pixels, taps, cp) = (ho * wo, p.kh * p.kw, c_pad(p.c_in));
    let (xt_len, wt_len) = packed_lens(p, h, w);
    // The arena's base is 16-byte aligned: an offset that is a multiple of 8 halves is too.
    let start = scratch.offset.div_ceil(ALIGN) * ALIGN;
    let xt = b.act(
        a,
        View {
            offset: start,
            len: xt_len,
        },
    )?;
    let wt = b.act(
        a,
        View {
            offset: start + xt_len,
            len: wt_len,
        },
    )?;

    // x [c_in, h·w] → xt [h·w, c_pad]: 32 × 32 transposes, blocks of 32 × 8 threads.
    let pack = Launch {
        grid: [
            grid_dim((h * w).div_ceil(32), GRID_X_MAX)?,
            grid_dim(cp.div_ceil(32), GRID_YZ_MAX)?,
            1,
        ],
        block: [32, 8, 1],
        shared_bytes: 0,
    };
    b.run(
        "conv_tc_pack_input",
        pack,
        &[
            Arg::Ptr(b.act(a, x)?),
            Arg::Ptr(xt),
            int(p.c_in)?,
            int(cp)?,
            int(h * w)?,
        ],
    )?;
    // W [c_out, c_in, taps] → wt [c_out, taps, c_pad]. Per call: weights are uploaded before
    // the backend knows which are convolution weights (a load-time copy is a follow-up).
    b.run(
        "conv_tc_pack_weight",
        Launch::linear(p.c_out * taps * cp, 256),
        &[
            Arg::Ptr(b.weight(weight)?),
            Arg::Ptr(wt),
            int(p.c_out)?,
            int(p.c_in)?,
            int(cp)?,
            int(taps)?,
        ],
    )?;

    let tile = tile_for(p.c_out, pixels);
    let geometry = Launch {
        grid: [
            grid_dim(pixels.div_ceil(tile.n), GRID_X_MAX)?,
            grid_dim(p.c_out.div_ceil(tile.m), GRID_YZ_MAX)?,
            1,
        ],
        block: [tile.threads, 1, 1],
        shared_bytes: tile.dynamic_smem,
    };
    b.run(
        tile.kernel,
        geometry,
        &[
            Arg::Ptr(xt),
            Arg::Ptr(wt),
            Arg::Ptr(bias.unwrap_or(0)),
            Arg::Ptr(b.act(a, out)?),
            int(cp)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(c_in: usize, c_out: usize, k: usize) -> Conv2d {
        Conv2d {
            c_in,
            c_out,
            kh: k,
            kw: k,
            stride: 1,
            pad: [k / 2; 4],
        }
    }

    #[test]
    fn packed_buffers_hold_whole_aligned_chunks() {
        let p = conv(3, 5, 3);
        // c_in 3 → 8 channels per pixel; 5·9·8 = 360 weights; 7·5·8 = 280 input halves.
        assert_eq!(packed_lens(&p, 7, 5), (280, 360));
        assert_eq!(scratch_len(&p, 7, 5), 8 + 280 + 360);
        assert_eq!(packed_lens(&conv(13, 1, 1), 3, 3), (9 * 16, 16));
    }

    #[test]
    fn large_tiles_only_for_large_grids() {
        assert_eq!(tile_for(256, 64 * 64).kernel, SMALL.kernel); // 2 × 32 blocks
        assert_eq!(tile_for(512, 64 * 64).kernel, LARGE.kernel); // 4 × 32
        assert_eq!(tile_for(130, 17 * 9).kernel, SMALL.kernel);
        assert_eq!(tile_for(512, 128 * 128).kernel, LARGE.kernel);
    }
}
