//! `conv2d` on tensor cores → `kernels/conv_tc.cu` (f16 storage): the input packed channels-last
//! into the op's scratch (channels padded to 8), then the implicit GEMM of `gemm_tc.rs` with the
//! weight as `upload` packed it (`layouts.rs`). `ops/conv.rs` validates the views and chooses
//! this path; `ops/lora.rs` reuses the packed input for runtime LoRA.

use super::Arena;
use super::conv::{GRID_X_MAX, GRID_YZ_MAX, grid_dim};
use super::gemm_tc::{self, Gemm, Geometry};
use crate::backend::cuda::layouts::{CHUNK, pad8};
use crate::backend::cuda::{Arg, CudaBackend, CudaWeight, DevPtr, Executor, Launch, Layout, int};
use crate::backend::{Conv2d, View};
use crate::error::{Error, Result};

/// Size of the packed input `[h·w, c_pad]`, rounded up to whole 16-byte chunks.
fn packed_len(p: &Conv2d, h: usize, w: usize) -> usize {
    pad8(h * w * pad8(p.c_in))
}

/// Scratch elements the tensor-core path needs: the packed input, plus slack to align it to
/// 16 bytes wherever the planner put the scratch view.
pub fn scratch_len(p: &Conv2d, h: usize, w: usize) -> usize {
    CHUNK + packed_len(p, h, w)
}

/// `v`'s first 16-byte-aligned element and the view from there (the arena's base is 16-byte
/// aligned, so an offset that is a multiple of 8 halves is too).
pub(super) fn aligned(v: View, len: usize) -> Result<View> {
    let start = v.offset.next_multiple_of(CHUNK);
    if start + len > v.end() {
        return Err(Error::InvalidArgument(format!(
            "scratch {v:?} cannot hold {len} aligned elements"
        )));
    }
    Ok(View { offset: start, len })
}

/// Whether `weight` is `p`'s weight in the tensor-core layout: the same taps and channel
/// padding, at least `p.c_in` channels' worth and `p.c_out` rows (zero channels or rows
/// beyond the weight's own are a runtime-LoRA pair's padding).
pub fn weight_fits(p: &Conv2d, weight: &CudaWeight) -> bool {
    match *weight.layout() {
        Layout::ConvTc {
            rows,
            c_in,
            c_pad,
            taps,
        } => taps == p.kh * p.kw && c_pad == pad8(p.c_in) && c_in <= p.c_in && rows >= p.c_out,
        Layout::Plain { .. } => false,
    }
}

/// Whether `conv2d` below can run this convolution: a packed weight, scratch for the input.
pub fn supported(p: &Conv2d, h: usize, w: usize, weight: &CudaWeight, scratch: View) -> bool {
    p.stride > 0 && weight_fits(p, weight) && scratch.len >= scratch_len(p, h, w)
}

/// GroupNorm(+SiLU) folded into [`pack_input`]: statistics from `ops::norm::group_stats`.
pub struct NormFold<'w> {
    pub stats: DevPtr,
    pub gamma: &'w CudaWeight,
    pub beta: &'w CudaWeight,
    pub channels_per_group: usize,
    pub silu: bool,
}

/// Packs `x [c_in, h, w]` (normalised on the way when `norm` says) into `xt [h·w, c_pad]` at
/// the start of `scratch`; returns `xt`.
#[allow(clippy::too_many_arguments)]
pub fn pack_input<E: Executor>(
    b: &CudaBackend<E>,
    a: &Arena<E>,
    p: &Conv2d,
    x: View,
    h: usize,
    w: usize,
    scratch: View,
    norm: Option<&NormFold>,
) -> Result<View> {
    let cp = pad8(p.c_in);
    let xt = aligned(scratch, packed_len(p, h, w))?;
    // 32 × 32 transposes, blocks of 32 × 8 threads.
    let pack = Launch {
        grid: [
            grid_dim((h * w).div_ceil(32), GRID_X_MAX)?,
            grid_dim(cp.div_ceil(32), GRID_YZ_MAX)?,
            1,
        ],
        block: [32, 8, 1],
        shared_bytes: 0,
    };
    let mut args = vec![
        Arg::Ptr(b.act(a, x)?),
        Arg::Ptr(b.act(a, xt)?),
        int(p.c_in)?,
        int(cp)?,
        int(h * w)?,
    ];
    let kernel = match norm {
        None => "conv_tc_pack_input",
        Some(n) => {
            args.extend([
                Arg::Ptr(n.stats),
                Arg::Ptr(b.weight(n.gamma)?),
                Arg::Ptr(b.weight(n.beta)?),
                int(n.channels_per_group)?,
                Arg::I32(n.silu as i32),
            ]);
            "conv_tc_pack_input_gn"
        }
    };
    b.run(kernel, pack, &args)?;
    Ok(xt)
}

/// The GEMM geometry of convolution `p` on an `h × w` input.
pub fn geometry(p: &Conv2d, h: usize, w: usize) -> Geometry {
    let (ho, wo) = p.out_hw(h, w);
    Geometry {
        c_pad: pad8(p.c_in),
        h,
        w,
        c_out: p.c_out,
        ho,
        wo,
        kh: p.kh,
        kw: p.kw,
        stride: p.stride,
        pad_top: p.pad[0],
        pad_left: p.pad[2],
    }
}

/// `out[c_out, ho, wo]` (+)= `alpha`·conv(`x[c_in, h, w]`) + `beta`·`bias` on tensor cores, `x`
/// normalised on the way when `norm` says. The caller (`ops/conv.rs`, `ops/norm_conv.rs`) has
/// checked the views' sizes and that they are disjoint, and [`supported`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    p: &Conv2d,
    x: View,
    h: usize,
    w: usize,
    weight: &CudaWeight,
    bias: DevPtr,
    out: View,
    scratch: View,
    (alpha, beta): (f32, f32),
    accumulate: bool,
    norm: Option<&NormFold>,
) -> Result<()> {
    let (ho, wo) = p.out_hw(h, w);
    let xt = pack_input(b, a, p, x, h, w, scratch, norm)?;
    gemm_tc::launch(
        b,
        &Gemm {
            xt: b.act(a, xt)?,
            wt: b.weight_any(weight)?,
            bias,
            out: b.act(a, out)?,
            second: None,
            g: geometry(p, h, w),
            ld_c: ho * wo,
            ld_p: 1,
            alpha,
            beta,
            accumulate,
        },
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
    fn packed_input_holds_whole_aligned_chunks() {
        // c_in 3 → 8 channels per pixel; 7·5·8 = 280 input halves.
        assert_eq!(packed_len(&conv(3, 5, 3), 7, 5), 280);
        assert_eq!(scratch_len(&conv(3, 5, 3), 7, 5), 8 + 280);
        assert_eq!(packed_len(&conv(13, 1, 1), 3, 3), 9 * 16);
    }

    #[test]
    fn aligned_views_start_on_a_chunk() {
        let v = aligned(View { offset: 3, len: 20 }, 10).unwrap();
        assert_eq!((v.offset, v.len), (8, 10));
        assert!(aligned(View { offset: 3, len: 14 }, 10).is_err());
    }
}
