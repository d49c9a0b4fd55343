//! Shared by the CUDA backend's tests: the backends to compare against the CPU oracle and the
//! comparison itself. `check_backends!` runs one body on the CPU backend, then on the CUDA
//! backend on the CPU execution harness (f32 and f16 storage), and on a real GPU when one is
//! present, and compares each result with the CPU's by relative L2 error.
#![allow(dead_code)]

use f2idiff::backend::cuda::sim::SimExecutor;
use f2idiff::backend::cuda::{CudaBackend, Precision};

/// The CUDA backend on the harness, checking every launch under two thread schedules.
pub fn sim_backend(precision: Precision) -> CudaBackend<SimExecutor> {
    CudaBackend::new(SimExecutor::default(), precision)
}

pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        num += (*x as f64 - *y as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    if den == 0.0 { num.sqrt() } else { (num / den).sqrt() }
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert!(got.iter().all(|v| v.is_finite()), "{what}: non-finite output");
    let err = rel_l2(got, want);
    eprintln!("{what:<40} rel L2 {err:.3e} (tol {tol:.0e})");
    assert!(err <= tol, "{what}: rel L2 {err:e} > {tol:e}");
}

/// Seeded uniform values in [-scale, scale] (xorshift; no dependency).
pub fn random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Relative L2 tolerances of the issue: f32 storage 1e-5, f16 storage 2e-3.
pub const TOL_F32: f64 = 1e-5;
pub const TOL_F16: f64 = 2e-3;

/// `check_backends!(what, tol_f32, tol_f16, |b| { ...; vec })`: `b` is bound to each backend
/// in turn (CPU first, the oracle); the body returns the `Vec<f32>` to compare.
#[macro_export]
macro_rules! check_backends {
    ($what:expr, $tol32:expr, $tol16:expr, |$b:ident| $body:block) => {{
        let cpu = f2idiff::backend::cpu::CpuBackend::new(1).unwrap();
        let want: Vec<f32> = {
            let $b = &cpu;
            $body
        };
        for (prec, tol) in [
            (f2idiff::backend::cuda::Precision::F32, $tol32),
            (f2idiff::backend::cuda::Precision::F16, $tol16),
        ] {
            let sim = $crate::cuda_common::sim_backend(prec);
            let got: Vec<f32> = {
                let $b = &sim;
                $body
            };
            $crate::cuda_common::assert_close(
                &format!("{} (cuda-sim {:?})", $what, prec),
                &got,
                &want,
                tol,
            );
        }
    }};
}
