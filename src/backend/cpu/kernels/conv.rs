//! 2-D convolution as im2col + GEMM over blocks of output pixels.
//!
//! `out[c_out, P]` = `W[c_out, K]` · `cols[K, P]` with `K = c_in·kh·kw` and `P = ho·wo`. Building
//! `cols` for the whole image would take `K·P` floats (1.2 GB for a 512-channel 3×3 conv at
//! 256×256), so each block of a few hundred output pixels is handled on its own
//! (`conv_block`): im2col into scratch, GEMM into a contiguous scratch tile, then bias
//! (and residual) on the way out. Block widths depend on the shapes only, never on the thread
//! count, so the output is bit-identical on any pool. Each thread of the pool takes whole blocks
//! with its own scratch, so blocks run without any synchronisation; images with too few blocks
//! for that split every block's GEMM over the pool instead (the GEMM splits rows and columns
//! over threads, never the reduction). A 1×1 stride-1 unpadded convolution is a plain GEMM
//! on the input and needs no scratch; a 3×3 stride-1 one with padding 1 on a large enough
//! image takes Winograd's F(2×2, 3×3) instead ([`super::winograd`]).

use super::blas::Bias;
use super::conv_block::{Plan, run_blocks};
use super::gemm::matmul_whole_op;
use super::par::balanced_block;
use super::widen::Values;
use super::winograd;

/// Shape of a 2-D convolution (PyTorch `nn.Conv2d` with dilation 1, groups 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub c_in: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    /// Zero padding: top, bottom, left, right.
    pub pad: [usize; 4],
}

/// Scratch of one thread, in floats (8 MiB): an im2col block `K×n` plus its output tile
/// `c_out×n`. It sets the block width `n`, within [`MIN_BLOCK`, `MAX_BLOCK`]: 256 pixels up to
/// 512 channels (3×3), 234 at 896, 64 from 1792 on. Each block repacks the whole weight (29 MiB
/// at 896 channels, from DRAM): twice 2^20 floats took the Eff U-Net's 896-channel 3×3
/// convolutions at 16×16 from 4 blocks of 64 pixels to 2 of 128, 30.3 → 28.4 ms each (Zen 2,
/// 2 threads).
const SLOT_FLOATS: usize = 1 << 21;

/// Block widths (output pixels). Each block's GEMM repacks the whole weight, so wide blocks
/// amortise that better; beyond ~256 pixels the GEMM's tiles spill out of L2 and it slows down
/// again. Below 64 the repacking dominates. Measured on SD-VAE shapes (benches/conv.rs).
const MIN_BLOCK: usize = 64;
const MAX_BLOCK: usize = 256;

impl Conv2d {
    /// Output height and width for an `h×w` input: PyTorch's floor semantics,
    /// `(h + pad_top + pad_bottom − kh) / stride + 1`, and 0 when the kernel does not fit.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let axis = |len: usize, lo: usize, hi: usize, k: usize| {
            (len + lo + hi)
                .checked_sub(k)
                .map_or(0, |span| span / self.stride.max(1) + 1)
        };
        (
            axis(h, self.pad[0], self.pad[1], self.kh),
            axis(w, self.pad[2], self.pad[3], self.kw),
        )
    }

    /// Floats of scratch [`conv2d`] needs for an `h×w` input on a pool of `threads`: 0 for a
    /// pointwise convolution, otherwise one block's im2col and output tile per thread: at most
    /// threads × max(2^21, (K + c_out)·64) floats (8 MiB per thread up to 896 channels), never
    /// proportional to the image. A 3×3 convolution on the Winograd path instead needs one
    /// block's transformed input and products per thread (at most 2^22 floats, 16 MiB, up to
    /// 2048 channels in and out together) plus its transformed weights once, shared by the
    /// threads (at most 36·512² floats, 36 MiB).
    ///
    /// With less scratch (e.g. planned for a smaller pool), [`conv2d`] still works, with fewer
    /// threads taking blocks; it needs at least one thread's share.
    pub fn scratch_len(&self, h: usize, w: usize, threads: usize) -> usize {
        if self.is_pointwise() {
            return 0;
        }
        if winograd::applies(self, h, w) {
            return winograd::Plan::new(self, h, w, threads).scratch_len();
        }
        let (ho, wo) = self.out_hw(h, w);
        self.plan(ho * wo, threads).scratch_len()
    }

    /// 1×1, stride 1, no padding: the input already is the GEMM operand.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == [0; 4]
    }

    /// GEMM depth: one row of `cols` per input channel and kernel tap.
    pub(super) fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Block width and thread split for an output of `pixels` pixels. The width depends only
    /// on the convolution and the image (`par::balanced_block`), never on `threads`, so every
    /// pixel's GEMM has the same shape, and sums in the same order, on any pool.
    fn plan(&self, pixels: usize, threads: usize) -> Plan {
        let per_pixel = self.k() + self.c_out;
        let widest = (SLOT_FLOATS / per_pixel.max(1)).clamp(MIN_BLOCK, MAX_BLOCK);
        let block = balanced_block(pixels, widest, (widest / 2).max(MIN_BLOCK));
        // Threads take whole blocks when there is at least one block each; otherwise blocks
        // run one after the other, each GEMM split over the pool (same shapes, same sums).
        let slots = if threads > 1 && pixels.div_ceil(block) >= threads {
            threads
        } else {
            1
        };
        Plan {
            block,
            slots,
            per_pixel,
        }
    }
}

/// `out[c_out, ho, wo]` (+)= conv(`x[c_in, h, w]`, `weight[c_out, c_in, kh, kw]`) + `bias`.
///
/// `accumulate` adds the convolution (bias included) into `out` (residual connections) instead
/// of overwriting it. `scratch` holds at least [`Conv2d::scratch_len`]`(h, w)` floats, planned
/// on the same rayon pool; its contents are clobbered.
///
/// # Panics
/// When a slice is shorter than the shapes require, `stride` is 0, or `scratch` is shorter
/// than one thread's share (programmer errors).
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    p: &Conv2d,
    x: &[f32],
    h: usize,
    w: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    accumulate: bool,
) {
    conv2d_values(
        p,
        x,
        h,
        w,
        Values::F32(weight),
        bias,
        out,
        scratch,
        accumulate,
    )
}

/// Whether [`conv2d_values`] takes a half-precision weight as stored for an `h×w` input: the
/// Winograd path widens it one output channel at a time as it transforms it; the other paths
/// need the whole weight in f32.
pub fn reads_half_weights(p: &Conv2d, h: usize, w: usize) -> bool {
    !p.is_pointwise() && winograd::applies(p, h, w)
}

/// [`conv2d`] with the weight as stored: f32, or f16 / bf16 where [`reads_half_weights`].
///
/// # Panics
/// As [`conv2d`]; also for a half-precision weight where [`reads_half_weights`] is false.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_values(
    p: &Conv2d,
    x: &[f32],
    h: usize,
    w: usize,
    weight: Values,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    accumulate: bool,
) {
    assert!(p.stride > 0, "conv2d: stride 0");
    let (ho, wo) = p.out_hw(h, w);
    let (k, pixels) = (p.k(), ho * wo);
    assert!(x.len() >= p.c_in * h * w, "conv2d: input too short");
    assert!(weight.len() >= p.c_out * k, "conv2d: weight too short");
    assert!(out.len() >= p.c_out * pixels, "conv2d: output too short");
    if let Some(b) = bias {
        assert!(b.len() >= p.c_out, "conv2d: bias too short");
    }
    if pixels == 0 || p.c_out == 0 {
        return;
    }
    let out = &mut out[..p.c_out * pixels];
    let threads = rayon::current_num_threads();
    if reads_half_weights(p, h, w) {
        let plan = winograd::Plan::new(p, h, w, threads);
        winograd::conv3x3(x, h, w, weight, bias, out, scratch, accumulate, plan);
        return;
    }
    let Values::F32(weight) = weight else {
        panic!("conv2d: this path needs the weight in f32");
    };
    if p.is_pointwise() {
        pointwise(p, x, pixels, weight, bias, out, accumulate);
        return;
    }
    let plan = p.plan(pixels, threads);
    run_blocks(p, x, h, w, weight, bias, out, scratch, accumulate, plan);
}

/// 1×1 stride-1 convolution: `out (+)= W·x + bias` directly, the bias added per block of the
/// product. (With a residual that sums in a different order than the blocked path, which adds
/// `W·x + bias` onto it; the difference is f32 rounding.)
fn pointwise(
    p: &Conv2d,
    x: &[f32],
    pixels: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    accumulate: bool,
) {
    let bias = bias.map(|b| Bias::Rows(&b[..p.c_out]));
    matmul_whole_op(
        p.c_out, pixels, p.c_in, weight, p.c_in, 1, x, pixels, 1, out, pixels, accumulate, bias,
    );
}

#[cfg(test)]
mod tests {
    use super::super::conv_block::{Plan, run_blocks};
    use super::super::testutil::{Rng, in_pool, rel_l2};
    use super::*;

    /// Direct convolution in f64, one output at a time.
    fn reference(
        p: &Conv2d,
        x: &[f32],
        h: usize,
        w: usize,
        wt: &[f32],
        bias: Option<&[f32]>,
        out0: Option<&[f32]>,
    ) -> Vec<f32> {
        let (ho, wo) = p.out_hw(h, w);
        let mut out = vec![0f32; p.c_out * ho * wo];
        for co in 0..p.c_out {
            for oy in 0..ho {
                for ox in 0..wo {
                    let o = (co * ho + oy) * wo + ox;
                    let mut s =
                        bias.map_or(0.0, |b| b[co] as f64) + out0.map_or(0.0, |o0| o0[o] as f64);
                    for ci in 0..p.c_in {
                        for ky in 0..p.kh {
                            for kx in 0..p.kw {
                                let iy = (oy * p.stride + ky) as isize - p.pad[0] as isize;
                                let ix = (ox * p.stride + kx) as isize - p.pad[2] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv = x[(ci * h + iy as usize) * w + ix as usize] as f64;
                                s += xv * wt[((co * p.c_in + ci) * p.kh + ky) * p.kw + kx] as f64;
                            }
                        }
                    }
                    out[o] = s as f32;
                }
            }
        }
        out
    }

    fn conv(
        c_in: usize,
        c_out: usize,
        k: (usize, usize),
        stride: usize,
        pad: [usize; 4],
    ) -> Conv2d {
        Conv2d {
            c_in,
            c_out,
            kh: k.0,
            kw: k.1,
            stride,
            pad,
        }
    }

    /// [`conv2d`]'s block engine with a forced block width and thread split.
    #[allow(clippy::too_many_arguments)]
    fn conv_with_plan(
        p: &Conv2d,
        x: &[f32],
        h: usize,
        w: usize,
        wt: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        acc: bool,
        block: usize,
        slots: usize,
    ) {
        let plan = Plan {
            block,
            slots,
            per_pixel: p.k() + p.c_out,
        };
        let mut scratch = vec![f32::NAN; plan.scratch_len()];
        run_blocks(p, x, h, w, wt, bias, out, &mut scratch, acc, plan);
    }

    /// Runs `p` on an `h×w` input with and without bias/accumulate, at the natural plan and at
    /// `small_block` pixels per block (one block after the other, and two threads taking
    /// blocks), against the reference.
    fn check(p: Conv2d, h: usize, w: usize, small_block: usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let (ho, wo) = p.out_hw(h, w);
        let x = rng.vec(p.c_in * h * w);
        let wt = rng.vec(p.c_out * p.c_in * p.kh * p.kw);
        let b = rng.vec(p.c_out);
        let out0 = rng.vec(p.c_out * ho * wo);
        for (bias, acc) in [
            (None, false),
            (Some(&b[..]), false),
            (Some(&b[..]), true),
            (None, true),
        ] {
            let want = reference(&p, &x, h, w, &wt, bias, acc.then_some(&out0[..]));
            for split in [None, Some(1), Some(2)] {
                let mut out = out0.clone();
                match split {
                    None => {
                        let mut scratch =
                            vec![f32::NAN; p.scratch_len(h, w, rayon::current_num_threads())];
                        conv2d(&p, &x, h, w, &wt, bias, &mut out, &mut scratch, acc);
                    }
                    Some(slots) => in_pool(2, || {
                        conv_with_plan(&p, &x, h, w, &wt, bias, &mut out, acc, small_block, slots)
                    }),
                }
                let err = rel_l2(&out, &want);
                assert!(
                    err <= 1e-5,
                    "{p:?} on {h}×{w}, bias {} acc {acc} split {split:?}: {err:e}",
                    bias.is_some()
                );
            }
        }
    }

    #[test]
    fn three_by_three_same_padding() {
        for (i, &(c_in, c_out, h, w)) in [(3, 4, 7, 9), (5, 8, 9, 13), (17, 6, 13, 7), (1, 1, 1, 1)]
            .iter()
            .enumerate()
        {
            check(conv(c_in, c_out, (3, 3), 1, [1; 4]), h, w, 5, i as u64);
        }
    }

    #[test]
    fn stride_two_with_asymmetric_padding() {
        // The VAE downsampler: pad right and bottom by one, then 3×3 stride 2 unpadded.
        for (i, &(c, h, w)) in [(3, 7, 9), (5, 8, 8), (17, 13, 6)].iter().enumerate() {
            check(
                conv(c, c + 1, (3, 3), 2, [0, 1, 0, 1]),
                h,
                w,
                3,
                10 + i as u64,
            );
        }
        check(conv(4, 3, (3, 3), 2, [1, 0, 2, 0]), 9, 10, 4, 13);
    }

    #[test]
    fn patch_embedding_fourteen_by_fourteen_stride_fourteen() {
        // DINOv2: 3 channels; sizes that are and are not multiples of 14 (floor semantics).
        check(conv(3, 8, (14, 14), 14, [0; 4]), 28, 42, 2, 20);
        check(conv(3, 5, (14, 14), 14, [0; 4]), 31, 29, 3, 21);
    }

    #[test]
    fn pointwise_and_other_shapes() {
        check(conv(17, 9, (1, 1), 1, [0; 4]), 7, 9, 4, 30);
        check(conv(5, 3, (1, 1), 2, [0; 4]), 9, 13, 4, 31);
        check(conv(4, 6, (3, 1), 1, [1, 1, 0, 0]), 8, 5, 7, 32);
        check(conv(2, 3, (5, 5), 1, [2; 4]), 6, 11, 9, 33);
        check(conv(3, 2, (3, 3), 3, [2, 2, 2, 2]), 10, 11, 6, 34);
    }

    #[test]
    fn out_hw_follows_pytorch_floor_semantics() {
        let down = conv(1, 1, (3, 3), 2, [0, 1, 0, 1]);
        assert_eq!(down.out_hw(256, 256), (128, 128));
        assert_eq!(down.out_hw(7, 8), (3, 4));
        let patch = conv(3, 1, (14, 14), 14, [0; 4]);
        assert_eq!(patch.out_hw(518, 224), (37, 16));
        assert_eq!(patch.out_hw(13, 14), (0, 1));
        assert_eq!(conv(1, 1, (3, 3), 1, [1; 4]).out_hw(64, 48), (64, 48));
    }

    #[test]
    fn scratch_is_zero_for_pointwise_and_bounded_for_big_images() {
        assert_eq!(
            conv(512, 512, (1, 1), 1, [0; 4]).scratch_len(256, 256, 2),
            0
        );
        for threads in [1, 2, 3] {
            for c in [3, 128, 256, 512, 1280] {
                let p = conv(c, c, (3, 3), 1, [1; 4]);
                let len = p.scratch_len(512, 512, threads);
                let per_thread = SLOT_FLOATS
                    .max((c * 9 + c) * MIN_BLOCK)
                    .max(winograd::SLOT_FLOATS);
                // Winograd (up to 512 channels here): plus the shared transformed weights.
                let shared = if winograd::applies(&p, 512, 512) {
                    winograd::MAX_WEIGHT_FLOATS
                } else {
                    0
                };
                // (Wider convolutions take it in groups of output channels.)
                assert_eq!(shared > 0, winograd::enabled(), "c {c}: path");
                assert!(
                    len > 0 && len <= threads * per_thread + shared,
                    "c {c}: {len}"
                );
            }
        }
        // A tiny image needs no more than its own im2col and output.
        assert_eq!(
            conv(4, 4, (3, 3), 1, [1; 4]).scratch_len(5, 5, 2),
            (36 + 4) * 25
        );
    }

    /// Bit-identical on 1, 2 and 3 threads (block shapes never depend on the pool), also with a
    /// scratch planned for fewer threads than run, for blocked and pointwise convolutions and
    /// for images with fewer blocks than threads (each block's GEMM split over the pool).
    #[test]
    fn any_thread_count_gives_identical_bits() {
        let mut rng = Rng::new(40);
        for (p, h, w) in [
            (conv(16, 24, (3, 3), 1, [1; 4]), 40, 37),
            (conv(8, 70, (3, 3), 2, [0, 1, 0, 1]), 64, 61),
            (conv(40, 12, (3, 3), 1, [1; 4]), 9, 14),
            (conv(24, 80, (1, 1), 1, [0; 4]), 33, 35),
        ] {
            let (ho, wo) = p.out_hw(h, w);
            let x = rng.vec(p.c_in * h * w);
            let wt = rng.vec(p.c_out * p.c_in * p.kh * p.kw);
            let b = rng.vec(p.c_out);
            let run = |scratch_len: usize| {
                let mut out = vec![0f32; p.c_out * ho * wo];
                let mut scratch = vec![0f32; scratch_len];
                conv2d(&p, &x, h, w, &wt, Some(&b), &mut out, &mut scratch, false);
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let one_thread_scratch = p.scratch_len(h, w, 1);
            let one = in_pool(1, || run(one_thread_scratch));
            for threads in [2, 3] {
                let planned = p.scratch_len(h, w, threads);
                assert_eq!(
                    one,
                    in_pool(threads, || run(planned)),
                    "{p:?}, {threads} threads"
                );
                // Scratch planned for one thread, used from more: fewer slots, same bits.
                assert_eq!(
                    one,
                    in_pool(threads, || run(one_thread_scratch)),
                    "{p:?} starved"
                );
            }
        }
    }
}
