//! GroupNorm (VAE, U-Net) and LayerNorm (transformer blocks, DINOv2).
//!
//! Statistics are accumulated in f64: a VAE group holds up to millions of values, and an f32
//! running sum over that many loses digits that the goldens notice. The normalisation itself is
//! one f32 multiply-add per element with per-channel (or per-row) coefficients, in PyTorch's
//! order of operations.

use super::math;
use super::par::for_each_block;
use super::simd::{transcendental, vectorized};

/// GroupNorm of `x[c, hw]` into `out`: `groups` groups of `c/groups` channels, statistics over
/// each group's `(c/groups)·hw` values (biased variance), affine `gamma`/`beta` per channel, then
/// SiLU when `silu` (the VAE and U-Net always follow GroupNorm with SiLU; fusing saves a pass).
///
/// # Panics
/// When `groups` is 0 or does not divide `c`, or a slice is too short.
#[allow(clippy::too_many_arguments)]
pub fn group_norm(
    x: &[f32],
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    silu: bool,
    out: &mut [f32],
) {
    let g = GroupShape::new(c, hw, groups, gamma, beta);
    assert!(
        x.len() >= c * hw && out.len() >= c * hw,
        "group_norm: x or out too short"
    );
    let out = &mut out[..c * hw];
    for_each_block(out, g.len, |g0, block| {
        for (i, dst) in block.chunks_exact_mut(g.len).enumerate() {
            let src = &x[(g0 + i) * g.len..(g0 + i + 1) * g.len];
            let stats = Stats::of(src);
            g.apply(g0 + i, stats, eps, silu, src, dst);
        }
    });
}

/// [`group_norm`] in place.
///
/// # Panics
/// When `groups` is 0 or does not divide `c`, or a slice is too short.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_inplace(
    x: &mut [f32],
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    silu: bool,
) {
    let g = GroupShape::new(c, hw, groups, gamma, beta);
    assert!(x.len() >= c * hw, "group_norm_inplace: x too short");
    for_each_block(&mut x[..c * hw], g.len, |g0, block| {
        for (i, data) in block.chunks_exact_mut(g.len).enumerate() {
            let stats = Stats::of(data);
            g.apply_inplace(g0 + i, stats, eps, silu, data);
        }
    });
}

/// GroupNorm, then SiLU as a separate pass: the unfused composite, kept beside the fused op so
/// that the tests can hold the two against each other.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_silu_composite(
    x: &[f32],
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    out: &mut [f32],
) {
    group_norm(x, c, hw, groups, eps, gamma, beta, false, out);
    super::activation::silu_inplace(&mut out[..c * hw]);
}

/// LayerNorm over the last dimension of `x[rows, d]`: biased variance, f64 statistics,
/// `(x·rstd − mean·rstd)·gamma + beta` as PyTorch's CPU kernel evaluates it.
///
/// # Panics
/// When a slice is too short.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    x: &[f32],
    rows: usize,
    d: usize,
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    out: &mut [f32],
) {
    assert!(
        x.len() >= rows * d && out.len() >= rows * d,
        "layer_norm: x or out too short"
    );
    assert!(
        gamma.len() >= d && beta.len() >= d,
        "layer_norm: gamma or beta too short"
    );
    if d == 0 {
        return;
    }
    let (gamma, beta) = (&gamma[..d], &beta[..d]);
    for_each_block(&mut out[..rows * d], d, |r0, block| {
        for (i, dst) in block.chunks_exact_mut(d).enumerate() {
            let src = &x[(r0 + i) * d..(r0 + i + 1) * d];
            let (scale, shift) = Stats::of(src).scale_shift(eps);
            vectorized(
                #[inline(always)]
                || {
                    for (((o, &v), &g), &b) in dst.iter_mut().zip(src).zip(gamma).zip(beta) {
                        *o = (v * scale + shift) * g + b;
                    }
                },
            );
        }
    });
}

/// Mean and biased variance of a slice, accumulated in f64.
#[derive(Clone, Copy)]
struct Stats {
    mean: f64,
    var: f64,
}

impl Stats {
    fn of(x: &[f32]) -> Self {
        // Eight independent lanes: the compiler vectorises them (a single f64 accumulator
        // would serialise on the add latency), and they sum pairwise-ish for free.
        const LANES: usize = 8;
        let chunks = x.chunks_exact(LANES);
        let tail = chunks.remainder();
        // The accumulators live inside the closure and come back by value: captured by
        // reference they were kept in memory, a load and a store per element.
        let (mut sum, mut sq) = vectorized(
            #[inline(always)]
            || {
                let (mut sum, mut sq) = ([0f64; LANES], [0f64; LANES]);
                for ch in chunks {
                    for l in 0..LANES {
                        let v = ch[l] as f64;
                        sum[l] += v;
                        sq[l] += v * v;
                    }
                }
                (sum, sq)
            },
        );
        for (l, &v) in tail.iter().enumerate() {
            sum[l] += v as f64;
            sq[l] += v as f64 * v as f64;
        }
        let n = x.len().max(1) as f64;
        let mean = sum.iter().sum::<f64>() / n;
        let var = (sq.iter().sum::<f64>() / n - mean * mean).max(0.0);
        Self { mean, var }
    }

    /// `(rstd, −mean·rstd)`: normalising is then `x·rstd + shift`.
    fn scale_shift(self, eps: f32) -> (f32, f32) {
        let rstd = 1.0 / (self.var + eps as f64).sqrt();
        (rstd as f32, (-self.mean * rstd) as f32)
    }
}

/// Validated GroupNorm geometry and affine parameters.
struct GroupShape<'a> {
    hw: usize,
    /// Channels per group.
    cpg: usize,
    /// Floats per group.
    len: usize,
    gamma: &'a [f32],
    beta: &'a [f32],
}

impl<'a> GroupShape<'a> {
    fn new(c: usize, hw: usize, groups: usize, gamma: &'a [f32], beta: &'a [f32]) -> Self {
        assert!(
            groups > 0 && c % groups == 0,
            "group_norm: {groups} groups for {c} channels"
        );
        assert!(
            gamma.len() >= c && beta.len() >= c,
            "group_norm: gamma or beta too short"
        );
        let cpg = c / groups;
        Self {
            hw,
            cpg,
            len: (cpg * hw).max(1),
            gamma,
            beta,
        }
    }

    /// Per-channel `(a, b)` with `y = x·a + b`, as PyTorch folds rstd, mean and the affine.
    fn coefficients(&self, channel: usize, stats: Stats, eps: f32) -> (f32, f32) {
        let rstd = 1.0 / (stats.var + eps as f64).sqrt();
        let a = rstd * self.gamma[channel] as f64;
        (
            a as f32,
            (self.beta[channel] as f64 - stats.mean * a) as f32,
        )
    }

    fn apply(
        &self,
        group: usize,
        stats: Stats,
        eps: f32,
        silu: bool,
        src: &[f32],
        dst: &mut [f32],
    ) {
        for j in 0..self.cpg {
            let (a, b) = self.coefficients(group * self.cpg + j, stats, eps);
            let (s, d) = (
                &src[j * self.hw..(j + 1) * self.hw],
                &mut dst[j * self.hw..(j + 1) * self.hw],
            );
            if silu {
                transcendental(
                    #[inline(always)]
                    || {
                        d.iter_mut()
                            .zip(s)
                            .for_each(|(o, &v)| *o = math::silu(v * a + b))
                    },
                );
            } else {
                vectorized(
                    #[inline(always)]
                    || d.iter_mut().zip(s).for_each(|(o, &v)| *o = v * a + b),
                );
            }
        }
    }

    fn apply_inplace(&self, group: usize, stats: Stats, eps: f32, silu: bool, data: &mut [f32]) {
        for j in 0..self.cpg {
            let (a, b) = self.coefficients(group * self.cpg + j, stats, eps);
            let d = &mut data[j * self.hw..(j + 1) * self.hw];
            if silu {
                transcendental(
                    #[inline(always)]
                    || d.iter_mut().for_each(|v| *v = math::silu(*v * a + b)),
                );
            } else {
                vectorized(
                    #[inline(always)]
                    || d.iter_mut().for_each(|v| *v = *v * a + b),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, in_pool, rel_l2};
    use super::*;

    /// Two-pass f64 GroupNorm straight from the definition.
    #[allow(clippy::too_many_arguments)]
    fn group_norm_ref(
        x: &[f32],
        c: usize,
        hw: usize,
        groups: usize,
        eps: f32,
        gamma: &[f32],
        beta: &[f32],
        silu: bool,
    ) -> Vec<f32> {
        let cpg = c / groups;
        let mut out = vec![0f32; c * hw];
        for g in 0..groups {
            let vals = &x[g * cpg * hw..(g + 1) * cpg * hw];
            let n = vals.len() as f64;
            let mean = vals.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = vals.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            for ch in g * cpg..(g + 1) * cpg {
                for i in 0..hw {
                    let y = (x[ch * hw + i] as f64 - mean) / (var + eps as f64).sqrt()
                        * gamma[ch] as f64
                        + beta[ch] as f64;
                    out[ch * hw + i] = if silu { y / (1.0 + (-y).exp()) } else { y } as f32;
                }
            }
        }
        out
    }

    /// Inputs with a non-zero mean, so that a naive f32 E[x²] − E[x]² would be visible.
    fn input(rng: &mut Rng, n: usize) -> Vec<f32> {
        rng.vec(n).iter().map(|v| 3.0 + 2.0 * v).collect()
    }

    #[test]
    fn group_norm_matches_f64_reference() {
        let mut rng = Rng::new(11);
        for (c, hw, groups) in [
            (4, 1, 2),
            (6, 7, 3),
            (32, 13, 32),
            (64, 9 * 11, 32),
            (128, 1024, 32),
        ] {
            let x = input(&mut rng, c * hw);
            let gamma = rng.vec(c);
            let beta = rng.vec(c);
            for silu in [false, true] {
                let want = group_norm_ref(&x, c, hw, groups, 1e-6, &gamma, &beta, silu);
                let mut out = vec![f32::NAN; c * hw];
                group_norm(&x, c, hw, groups, 1e-6, &gamma, &beta, silu, &mut out);
                assert!(rel_l2(&out, &want) <= 1e-6, "c {c} hw {hw} silu {silu}");
                let mut inplace = x.clone();
                group_norm_inplace(&mut inplace, c, hw, groups, 1e-6, &gamma, &beta, silu);
                assert_eq!(inplace, out, "in place differs, c {c} hw {hw}");
            }
        }
    }

    #[test]
    fn fused_silu_matches_composite() {
        let mut rng = Rng::new(12);
        let (c, hw, groups) = (64, 17 * 19, 32);
        let x = input(&mut rng, c * hw);
        let (gamma, beta) = (rng.vec(c), rng.vec(c));
        let mut fused = vec![0f32; c * hw];
        group_norm(&x, c, hw, groups, 1e-5, &gamma, &beta, true, &mut fused);
        let mut composite = vec![0f32; c * hw];
        group_norm_silu_composite(&x, c, hw, groups, 1e-5, &gamma, &beta, &mut composite);
        assert!(rel_l2(&fused, &composite) <= 1e-7);
    }

    #[test]
    fn layer_norm_matches_f64_reference() {
        let mut rng = Rng::new(13);
        for (rows, d) in [(1, 1), (3, 5), (257, 384), (40, 1025)] {
            let x = input(&mut rng, rows * d);
            let (gamma, beta) = (rng.vec(d), rng.vec(d));
            let mut want = vec![0f32; rows * d];
            for r in 0..rows {
                let v = &x[r * d..(r + 1) * d];
                let mean = v.iter().map(|&a| a as f64).sum::<f64>() / d as f64;
                let var = v.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / d as f64;
                for j in 0..d {
                    want[r * d + j] = ((v[j] as f64 - mean) / (var + 1e-6).sqrt() * gamma[j] as f64
                        + beta[j] as f64) as f32;
                }
            }
            let mut out = vec![f32::NAN; rows * d];
            layer_norm(&x, rows, d, 1e-6, &gamma, &beta, &mut out);
            assert!(rel_l2(&out, &want) <= 1e-6, "{rows}×{d}");
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let mut rng = Rng::new(14);
        let (c, hw) = (128, 700);
        let x = input(&mut rng, c * hw);
        let (gamma, beta) = (rng.vec(c), rng.vec(c));
        let run = || {
            let mut g = vec![0f32; c * hw];
            group_norm(&x, c, hw, 32, 1e-6, &gamma, &beta, true, &mut g);
            let mut l = vec![0f32; c * hw];
            layer_norm(&x, hw, c, 1e-5, &gamma, &beta, &mut l);
            (g, l)
        };
        assert_eq!(in_pool(1, run), in_pool(2, run));
    }
}
