//! Sinusoidal timestep embedding of the U-Net (diffusers `get_timestep_embedding`).

/// diffusers `get_timestep_embedding(t, dim, flip_sin_to_cos, downscale_freq_shift, scale=1,
/// max_period=10000)` for one timestep, into `out[dim]`.
///
/// `half = dim/2`; frequency i = exp(−ln(10000)·i / (half − shift)); the embedding is
/// `[sin(t·f), cos(t·f)]`, or `[cos, sin]` when `flip_sin_to_cos`, zero-padded when `dim` is
/// odd. Every step rounds to f32 where PyTorch's f32 tensors do (the arguments of sin/cos reach
/// ~1000 rad, where one f32 rounding moves the result by ~1e-5); exp, sin and cos are evaluated
/// in f64 and rounded once, within PyTorch's own 1-ulp vectorised versions.
///
/// # Panics
/// When `out` is shorter than `dim`.
pub fn timestep_embedding(
    t: f32,
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f32,
    out: &mut [f32],
) {
    assert!(out.len() >= dim, "timestep_embedding: out too short");
    let half = dim / 2;
    // Python scalars meet f32 tensors: each is rounded to f32 before the tensor op.
    let neg_log_period = -(10000f64.ln()) as f32;
    let denom = (half as f64 - freq_shift as f64) as f32;
    let (first, second) = out[..2 * half].split_at_mut(half);
    for (i, (a, b)) in first.iter_mut().zip(second.iter_mut()).enumerate() {
        let exponent = (i as f32 * neg_log_period) / denom;
        let freq = (exponent as f64).exp() as f32;
        let arg = (t * freq) as f64;
        let (sin, cos) = (arg.sin() as f32, arg.cos() as f32);
        (*a, *b) = if flip_sin_to_cos {
            (cos, sin)
        } else {
            (sin, cos)
        };
    }
    if dim % 2 == 1 {
        out[dim - 1] = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::rel_l2;
    use super::*;

    /// The embedding in exact (f64) arithmetic.
    fn exact(t: f64, dim: usize, flip: bool, shift: f64) -> Vec<f32> {
        let half = dim / 2;
        let mut out = vec![0f32; dim];
        for i in 0..half {
            let arg = t * (-(10000f64.ln()) * i as f64 / (half as f64 - shift)).exp();
            let (s, c) = (arg.sin() as f32, arg.cos() as f32);
            out[i] = if flip { c } else { s };
            out[half + i] = if flip { s } else { c };
        }
        out
    }

    #[test]
    fn matches_exact_math_for_small_timesteps() {
        // Small arguments: f32 rounding of t·f barely moves sin/cos.
        for (t, dim, flip, shift) in [
            (0.0, 320, true, 0.0),
            (1.0, 320, true, 0.0),
            (3.5, 7, false, 1.0),
            (0.25, 4, true, 1.0),
        ] {
            let mut out = vec![f32::NAN; dim];
            timestep_embedding(t, dim, flip, shift, &mut out);
            assert!(
                rel_l2(&out, &exact(t as f64, dim, flip, shift as f64)) <= 1e-6,
                "t {t} dim {dim}"
            );
        }
    }

    #[test]
    fn large_timesteps_follow_f32_argument_rounding() {
        // t = 999: arguments ~1000 rad. Close to the exact math only up to f32 argument
        // rounding, and layout/zero padding must hold.
        let mut out = vec![f32::NAN; 321];
        timestep_embedding(999.0, 321, true, 1.0, &mut out);
        assert_eq!(out[320], 0.0);
        assert!(rel_l2(&out, &exact(999.0, 321, true, 1.0)) <= 1e-4);
        // Frequency 0 is exactly 1: entry 0 is cos(999), entry 160 sin(999).
        assert_eq!(out[0], (999f64).cos() as f32);
        assert_eq!(out[160], (999f64).sin() as f32);
        // Every argument is the f32 product t·f, as in PyTorch.
        let f1 = ((1f32 * -(10000f64.ln()) as f32 / 159.0) as f64).exp() as f32;
        assert_eq!(out[1], ((999f32 * f1) as f64).cos() as f32);
    }
}
