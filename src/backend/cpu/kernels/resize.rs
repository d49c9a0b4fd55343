//! Image resizing: PyTorch's bicubic interpolation (DINOv2 preprocessing) and nearest ×2
//! upsampling (VAE decoder, U-Net up blocks).

use super::par::for_each_block;

/// `F.interpolate(x, (oh, ow), mode="bicubic", align_corners=False, antialias=False)` on
/// `x[c, h, w]` into `out[c, oh, ow]`, in f32 with PyTorch's CPU order of operations.
///
/// Per axis: scale = in/out in f32, or `1/scale_factor` (rounded from f64) when the caller passed
/// `scale_factor` to `F.interpolate` (with `recompute_scale_factor` not True). `scale_factor` is
/// `(height, width)`. Source coordinate `scale·(dst + 0.5) − 0.5` (not clamped at 0 for cubic),
/// taps at floor − 1 ..= floor + 2 clamped into the image, Keys cubic convolution with A = −0.75.
/// Each output is Σ_i wy_i · (Σ_j wx_j · x\[y_i, x_j\]), summed left to right as PyTorch does.
///
/// # Panics
/// When a slice is too short, or `h` or `w` is 0 while the output is not empty.
#[allow(clippy::too_many_arguments)]
pub fn bicubic(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    scale_factor: Option<(f64, f64)>,
    out: &mut [f32],
) {
    assert!(
        x.len() >= c * h * w && out.len() >= c * oh * ow,
        "bicubic: x or out too short"
    );
    if c * oh * ow == 0 {
        return;
    }
    assert!(h > 0 && w > 0, "bicubic: empty input");
    let sy = axis_scale(h, oh, scale_factor.map(|s| s.0));
    let sx = axis_scale(w, ow, scale_factor.map(|s| s.1));
    for_each_block(&mut out[..c * oh * ow], ow, |row0, block| {
        for (i, orow) in block.chunks_exact_mut(ow).enumerate() {
            let (ch, oy) = ((row0 + i) / oh, (row0 + i) % oh);
            let plane = &x[ch * h * w..(ch + 1) * h * w];
            let ty = Taps::new(sy, oy, h);
            for (ox, o) in orow.iter_mut().enumerate() {
                let tx = Taps::new(sx, ox, w);
                let mut acc = 0f32;
                for (i, (&y, &wy)) in ty.index.iter().zip(&ty.weight).enumerate() {
                    let r = &plane[y * w..(y + 1) * w];
                    let mut t = r[tx.index[0]] * tx.weight[0];
                    for j in 1..4 {
                        t += r[tx.index[j]] * tx.weight[j];
                    }
                    acc = if i == 0 { t * wy } else { acc + t * wy };
                }
                *o = acc;
            }
        }
    });
}

/// PyTorch's `area_pixel_compute_scale` for align_corners=False.
fn axis_scale(input: usize, output: usize, scale_factor: Option<f64>) -> f32 {
    match scale_factor {
        Some(s) if s > 0.0 => (1.0 / s) as f32,
        _ => input as f32 / output as f32,
    }
}

/// The four source indices and cubic weights of one output coordinate.
struct Taps {
    index: [usize; 4],
    weight: [f32; 4],
}

impl Taps {
    fn new(scale: f32, dst: usize, len: usize) -> Self {
        const A: f32 = -0.75;
        // Keys' cubic for |x| ≤ 1 and 1 < |x| < 2.
        let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
        let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
        let real = scale * (dst as f32 + 0.5) - 0.5;
        let last = len as i64 - 1;
        let base = (real.floor() as i64).min(last);
        let t = (real - base as f32).clamp(0.0, 1.0);
        let weight = [far(t + 1.0), near(t), near(1.0 - t), far((1.0 - t) + 1.0)];
        let index = [-1i64, 0, 1, 2].map(|d| (base + d).clamp(0, last) as usize);
        Self { index, weight }
    }
}

/// Nearest-neighbour ×2 upsampling: `out[c, 2h, 2w]`, each input pixel copied to a 2×2 square.
///
/// # Panics
/// When a slice is too short.
pub fn upsample_nearest2x(x: &[f32], c: usize, h: usize, w: usize, out: &mut [f32]) {
    assert!(
        x.len() >= c * h * w && out.len() >= c * 4 * h * w,
        "upsample_nearest2x: too short"
    );
    if c * h * w == 0 {
        return;
    }
    // One unit = the two output rows made from one input row.
    for_each_block(&mut out[..c * 4 * h * w], 4 * w, |r0, block| {
        for (i, pair) in block.chunks_exact_mut(4 * w).enumerate() {
            let src = &x[(r0 + i) * w..(r0 + i + 1) * w];
            let (top, bottom) = pair.split_at_mut(2 * w);
            for (d, &s) in top.chunks_exact_mut(2).zip(src) {
                d[0] = s;
                d[1] = s;
            }
            bottom.copy_from_slice(top);
        }
    });
}

/// PyTorch `F.interpolate(mode="nearest", size=(oh, ow))` on `x [c, h, w]`: source index
/// `floor(dst · in/out)` (scale in f32), with PyTorch's exact shortcuts for equal and doubled
/// sizes. The U-Net uses it when a latent side does not halve evenly at every level.
pub fn upsample_nearest(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    out: &mut [f32],
) {
    if oh == 2 * h && ow == 2 * w {
        return upsample_nearest2x(x, c, h, w, out);
    }
    let index = |dst: usize, n_in: usize, n_out: usize| -> usize {
        if n_out == n_in {
            dst
        } else if n_out == 2 * n_in {
            dst >> 1
        } else {
            let scale = n_in as f32 / n_out as f32;
            ((dst as f32 * scale).floor() as usize).min(n_in - 1)
        }
    };
    let cols: Vec<usize> = (0..ow).map(|j| index(j, w, ow)).collect();
    for ch in 0..c {
        for i in 0..oh {
            let src = &x[(ch * h + index(i, h, oh)) * w..][..w];
            let dst = &mut out[(ch * oh + i) * ow..][..ow];
            for (d, &j) in dst.iter_mut().zip(&cols) {
                *d = src[j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, in_pool, rel_l2};
    use super::*;

    /// Bicubic in f64 from the textbook definition (separable Keys kernel, A = −0.75, clamped
    /// taps), with PyTorch's f32 source coordinates.
    fn reference(
        x: &[f32],
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        sf: Option<(f64, f64)>,
    ) -> Vec<f32> {
        let kernel = |d: f64| {
            let (a, d) = (-0.75, d.abs());
            if d <= 1.0 {
                (a + 2.0) * d.powi(3) - (a + 3.0) * d * d + 1.0
            } else if d < 2.0 {
                a * d.powi(3) - 5.0 * a * d * d + 8.0 * a * d - 4.0 * a
            } else {
                0.0
            }
        };
        let src = |scale: f32, dst: usize| (scale * (dst as f32 + 0.5) - 0.5) as f64;
        let sy = axis_scale(h, oh, sf.map(|s| s.0));
        let sx = axis_scale(w, ow, sf.map(|s| s.1));
        let mut out = vec![0f32; c * oh * ow];
        for ch in 0..c {
            for oy in 0..oh {
                let ry = src(sy, oy);
                for ox in 0..ow {
                    let rx = src(sx, ox);
                    let mut acc = 0f64;
                    for dy in -1i64..=2 {
                        let yy = ry.floor() as i64 + dy;
                        let wy = kernel(ry - yy as f64);
                        let yi = yy.clamp(0, h as i64 - 1) as usize;
                        for dx in -1i64..=2 {
                            let xx = rx.floor() as i64 + dx;
                            let wx = kernel(rx - xx as f64);
                            let xi = xx.clamp(0, w as i64 - 1) as usize;
                            acc += wy * wx * x[(ch * h + yi) * w + xi] as f64;
                        }
                    }
                    out[(ch * oh + oy) * ow + ox] = acc as f32;
                }
            }
        }
        out
    }

    #[test]
    fn bicubic_matches_reference_up_and_down() {
        let mut rng = Rng::new(50);
        for &(c, h, w, oh, ow, sf) in &[
            (3, 7, 9, 14, 18, Some((2.0, 2.0))),
            (3, 7, 9, 14, 18, None),
            (3, 13, 11, 5, 4, None),
            (2, 9, 9, 9, 9, None),
            (1, 1, 1, 3, 2, None),
            (3, 37, 29, 56, 42, Some((56.0 / 37.0, 1.5))),
            (3, 64, 64, 224, 224, None),
        ] {
            let x = rng.vec(c * h * w);
            let want = reference(&x, c, h, w, oh, ow, sf);
            let mut out = vec![f32::NAN; c * oh * ow];
            bicubic(&x, c, h, w, oh, ow, sf, &mut out);
            let err = rel_l2(&out, &want);
            assert!(err <= 1e-6, "{c}×{h}×{w} → {oh}×{ow} sf {sf:?}: {err:e}");
        }
    }

    #[test]
    fn bicubic_identity_size_is_a_copy() {
        let mut rng = Rng::new(51);
        let x = rng.vec(2 * 5 * 6);
        let mut out = vec![0f32; x.len()];
        bicubic(&x, 2, 5, 6, 5, 6, None, &mut out);
        assert_eq!(out, x);
    }

    #[test]
    fn scale_factor_changes_the_source_grid() {
        // 10 → 15 with scale_factor 1.5 vs with size only: 1/1.5 and 10/15 round to the same
        // f32, so use a factor whose reciprocal differs from in/out: 7 → 10 with factor 1.5.
        let mut rng = Rng::new(52);
        let x = rng.vec(7 * 7);
        let (mut a, mut b) = (vec![0f32; 100], vec![0f32; 100]);
        bicubic(&x, 1, 7, 7, 10, 10, Some((1.5, 1.5)), &mut a);
        bicubic(&x, 1, 7, 7, 10, 10, None, &mut b);
        assert_ne!(a, b);
        assert!(rel_l2(&a, &reference(&x, 1, 7, 7, 10, 10, Some((1.5, 1.5)))) <= 1e-6);
    }

    #[test]
    fn nearest_doubles_every_pixel() {
        let mut rng = Rng::new(53);
        for (c, h, w) in [(1, 1, 1), (3, 5, 7), (64, 33, 31)] {
            let x = rng.vec(c * h * w);
            let mut out = vec![f32::NAN; c * 4 * h * w];
            upsample_nearest2x(&x, c, h, w, &mut out);
            for ch in 0..c {
                for y in 0..2 * h {
                    for xx in 0..2 * w {
                        assert_eq!(
                            out[(ch * 2 * h + y) * 2 * w + xx],
                            x[(ch * h + y / 2) * w + xx / 2]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let mut rng = Rng::new(54);
        let x = rng.vec(3 * 100 * 90);
        let run = || {
            let mut b = vec![0f32; 3 * 224 * 224];
            bicubic(&x, 3, 100, 90, 224, 224, None, &mut b);
            let mut n = vec![0f32; 3 * 200 * 180];
            upsample_nearest2x(&x, 3, 100, 90, &mut n);
            (b, n)
        };
        assert_eq!(in_pool(1, run), in_pool(2, run));
    }
}
