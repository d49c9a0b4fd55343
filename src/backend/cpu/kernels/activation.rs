//! Elementwise activations, gated feed-forward activations and residual adds.
//!
//! All of them stream memory once; the transcendental ones use the vectorisable functions of
//! `math`, so they run at SIMD speed and in parallel on the current pool.

use super::math;
use super::par::for_each_block;
use super::simd::transcendental;

/// x ← x·σ(x).
pub fn silu_inplace(x: &mut [f32]) {
    for_each_block(x, 1, |_, b| map_inplace(b, math::silu));
}

/// x ← GELU(x): exact 0.5·x·(1 + erf(x/√2)), or PyTorch's `approximate="tanh"` form.
pub fn gelu_inplace(x: &mut [f32], tanh_approx: bool) {
    if tanh_approx {
        for_each_block(x, 1, |_, b| map_inplace(b, math::gelu_tanh));
    } else {
        for_each_block(x, 1, |_, b| map_inplace(b, math::gelu_erf));
    }
}

/// x ← f(x), SIMD-compiled.
#[inline(always)]
fn map_inplace(x: &mut [f32], f: impl Fn(f32) -> f32) {
    transcendental(
        #[inline(always)]
        || x.iter_mut().for_each(|v| *v = f(*v)),
    );
}

/// diffusers GEGLU: `x[rows, 2d]` → `out[rows, d]` = `x[:, :d] · gelu_exact(x[:, d:])`.
///
/// # Panics
/// When `x` or `out` is shorter than the shapes require.
pub fn geglu(x: &[f32], rows: usize, d: usize, out: &mut [f32]) {
    gated(x, rows, d, out, |value, gate| value * math::gelu_erf(gate));
}

/// DINOv2 SwiGLU: `x[rows, 2d]` → `out[rows, d]` = `silu(x[:, :d]) · x[:, d:]`.
///
/// # Panics
/// When `x` or `out` is shorter than the shapes require.
pub fn swiglu(x: &[f32], rows: usize, d: usize, out: &mut [f32]) {
    gated(x, rows, d, out, |first, second| math::silu(first) * second);
}

/// `out[r, j] = f(x[r, j], x[r, d + j])` over `rows` rows.
fn gated(
    x: &[f32],
    rows: usize,
    d: usize,
    out: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Send + Sync,
) {
    assert!(x.len() >= rows * 2 * d, "gated activation: input too short");
    assert!(out.len() >= rows * d, "gated activation: output too short");
    if d == 0 {
        return;
    }
    for_each_block(&mut out[..rows * d], d, |r0, block| {
        transcendental(
            #[inline(always)]
            || {
                for (i, o) in block.chunks_exact_mut(d).enumerate() {
                    let row = &x[(r0 + i) * 2 * d..(r0 + i + 1) * 2 * d];
                    let (a, b) = row.split_at(d);
                    for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                        *o = f(a, b);
                    }
                }
            },
        )
    });
}

/// x ← x + y.
///
/// # Panics
/// When `y` is shorter than `x`.
pub fn add_inplace(x: &mut [f32], y: &[f32]) {
    assert!(y.len() >= x.len(), "add_inplace: y shorter than x");
    for_each_block(x, 1, |o, b| {
        let y = &y[o..o + b.len()];
        for (v, &w) in b.iter_mut().zip(y) {
            *v += w;
        }
    });
}

/// `x[r, j] += s[j]·y[r, j]` for rows `r` of length `d` (`rows = x.len() / d`): DINOv2's
/// layer-scaled residual.
///
/// # Panics
/// When `x.len()` is not a multiple of `d`, or `y`/`s` are too short.
pub fn scale_add_inplace(x: &mut [f32], y: &[f32], s: &[f32], d: usize) {
    if x.is_empty() {
        return;
    }
    assert!(
        d > 0 && x.len() % d == 0,
        "scale_add_inplace: len not a multiple of d"
    );
    assert!(
        y.len() >= x.len() && s.len() >= d,
        "scale_add_inplace: inputs too short"
    );
    let s = &s[..d];
    for_each_block(x, d, |r0, block| {
        let y = &y[r0 * d..r0 * d + block.len()];
        for (xr, yr) in block.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
            for ((v, &w), &g) in xr.iter_mut().zip(yr).zip(s) {
                *v += g * w;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, in_pool, rel_l2};
    use super::*;

    fn silu64(x: f64) -> f64 {
        x / (1.0 + (-x).exp())
    }

    fn gelu64(x: f64) -> f64 {
        0.5 * x * libm::erfc(-x / 2f64.sqrt())
    }

    fn gelu_tanh64(x: f64) -> f64 {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        0.5 * x * (1.0 + u.tanh())
    }

    fn map64(x: &[f32], f: impl Fn(f64) -> f64) -> Vec<f32> {
        x.iter().map(|&v| f(v as f64) as f32).collect()
    }

    /// Sizes below and above the parallel split, with an odd tail.
    const SIZES: [usize; 3] = [1, 37, 50_001];

    #[test]
    fn unary_activations_match_f64() {
        let mut rng = Rng::new(1);
        for n in SIZES {
            let x = rng.vec_scaled(n, 6.0);
            let mut y = x.clone();
            silu_inplace(&mut y);
            assert!(rel_l2(&y, &map64(&x, silu64)) <= 1e-6);
            let mut y = x.clone();
            gelu_inplace(&mut y, false);
            assert!(rel_l2(&y, &map64(&x, gelu64)) <= 1e-6);
            let mut y = x.clone();
            gelu_inplace(&mut y, true);
            assert!(rel_l2(&y, &map64(&x, gelu_tanh64)) <= 1e-6);
        }
    }

    /// The SIMD levels compute the bits of the scalar functions (nothing is fused or reordered):
    /// one element at a time through `black_box`, which keeps these calls out of any vector.
    #[test]
    fn wide_code_gives_the_scalar_bits() {
        let mut rng = Rng::new(5);
        let x = rng.vec_scaled(10_007, 12.0);
        let scalar = |f: fn(f32) -> f32| -> Vec<u32> {
            x.iter()
                .map(|&v| std::hint::black_box(f)(std::hint::black_box(v)).to_bits())
                .collect()
        };
        let bits = |v: Vec<f32>| -> Vec<u32> { v.iter().map(|f| f.to_bits()).collect() };
        let mut y = x.clone();
        silu_inplace(&mut y);
        assert_eq!(bits(y), scalar(math::silu));
        let mut y = x.clone();
        gelu_inplace(&mut y, false);
        assert_eq!(bits(y), scalar(math::gelu_erf));
        let mut y = x.clone();
        gelu_inplace(&mut y, true);
        assert_eq!(bits(y), scalar(math::gelu_tanh));
        let d = x.len() / 2;
        let mut y = vec![0f32; d];
        geglu(&x, 1, d, &mut y);
        let want: Vec<u32> = (0..d)
            .map(|j| (x[j] * std::hint::black_box(math::gelu_erf)(x[d + j])).to_bits())
            .collect();
        assert_eq!(bits(y), want);
    }

    #[test]
    fn gated_activations_match_f64() {
        let mut rng = Rng::new(2);
        for (rows, d) in [(1, 1), (3, 7), (129, 320)] {
            let x = rng.vec_scaled(rows * 2 * d, 4.0);
            let mut want_geglu = vec![0f32; rows * d];
            let mut want_swiglu = vec![0f32; rows * d];
            for r in 0..rows {
                for j in 0..d {
                    let (a, b) = (x[r * 2 * d + j] as f64, x[r * 2 * d + d + j] as f64);
                    want_geglu[r * d + j] = (a * gelu64(b)) as f32;
                    want_swiglu[r * d + j] = (silu64(a) * b) as f32;
                }
            }
            let mut out = vec![f32::NAN; rows * d];
            geglu(&x, rows, d, &mut out);
            assert!(rel_l2(&out, &want_geglu) <= 1e-6, "geglu {rows}×{d}");
            swiglu(&x, rows, d, &mut out);
            assert!(rel_l2(&out, &want_swiglu) <= 1e-6, "swiglu {rows}×{d}");
        }
    }

    #[test]
    fn residual_adds_match_f64() {
        let mut rng = Rng::new(3);
        for (rows, d) in [(1, 1), (5, 9), (70, 1024)] {
            let x = rng.vec(rows * d);
            let y = rng.vec(rows * d);
            let s = rng.vec(d);
            let mut got = x.clone();
            add_inplace(&mut got, &y);
            let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
            assert_eq!(got, want);
            let mut got = x.clone();
            scale_add_inplace(&mut got, &y, &s, d);
            let want: Vec<f32> = (0..rows * d)
                .map(|i| (x[i] as f64 + s[i % d] as f64 * y[i] as f64) as f32)
                .collect();
            assert!(rel_l2(&got, &want) <= 1e-7);
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let mut rng = Rng::new(4);
        let (rows, d) = (300, 257);
        let x = rng.vec_scaled(rows * 2 * d, 5.0);
        let run = || {
            let mut a = x.clone();
            gelu_inplace(&mut a, false);
            silu_inplace(&mut a);
            let mut g = vec![0f32; rows * d];
            geglu(&x, rows, d, &mut g);
            let mut s = vec![0f32; rows * d];
            swiglu(&x, rows, d, &mut s);
            scale_add_inplace(&mut s, &g, &x[..d], d);
            add_inplace(&mut a[..rows * d], &s);
            (a, g, s)
        };
        assert_eq!(in_pool(1, run), in_pool(2, run));
    }
}
