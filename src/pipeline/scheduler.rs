//! The DDPM constants of Stable Diffusion (`scaled_linear` betas from √0.00085 to √0.012 over
//! 1000 steps, squared; ᾱ = ∏(1 − β)), in f64, and the one-step x0 coefficients.
//! (diffusers' `DDPMScheduler.step` only returns x0 at t = 999 after `set_timesteps`; we use the
//! formula directly, as DESIGN.md §4 advises.)

use crate::config::pipeline::TRAIN_TIMESTEPS;

/// ᾱ_t for `t < 1000`.
pub fn alpha_cumprod(t: u32) -> f64 {
    let n = TRAIN_TIMESTEPS as usize;
    let (lo, hi) = (0.00085f64.sqrt(), 0.012f64.sqrt());
    let mut a = 1.0f64;
    for i in 0..=(t as usize).min(n - 1) {
        // torch.linspace(start, end, n): start + i·(end − start)/(n − 1)
        let sqrt_beta = lo + (hi - lo) * i as f64 / (n - 1) as f64;
        a *= 1.0 - sqrt_beta * sqrt_beta;
    }
    a
}

/// `(√(1 − ᾱ_t), √ᾱ_t)` as f32, for `x0 = (z − c1·ε) / c2`.
pub fn x0_coefficients(t: u32) -> (f32, f32) {
    let a = alpha_cumprod(t);
    ((1.0 - a).sqrt() as f32, a.sqrt() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // β_0 = 0.00085 exactly; ᾱ_999 of SD's schedule is ≈ 0.0046 (x0 gain ≈ 14.6).
        assert!((alpha_cumprod(0) - (1.0 - 0.00085)).abs() < 1e-15);
        let a = alpha_cumprod(999);
        assert!((a - 0.004660).abs() < 1e-5, "{a}");
        let (c1, c2) = x0_coefficients(999);
        assert!((1.0 / c2 - 14.65).abs() < 0.05, "{}", 1.0 / c2);
        assert!((c1 * c1 + c2 * c2 - 1.0).abs() < 1e-6);
    }
}
