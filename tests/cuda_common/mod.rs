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

/// `F2I_SKIP_SIM=1` (scripts/gpu-check.sh on the GPU machine): compare only the GPU with the
/// CPU; CI already ran the harness.
pub fn skip_sim() -> bool {
    std::env::var("F2I_SKIP_SIM").is_ok_and(|v| v.trim() == "1")
}

/// `F2I_REQUIRE_GPU=1` (the GPU machine): a missing GPU fails the test instead of skipping.
pub fn require_gpu() -> bool {
    std::env::var("F2I_REQUIRE_GPU").is_ok_and(|v| v.trim() == "1")
}

/// The CUDA backend on GPU 0, or `None` (with a "skipped: no GPU (reason)" line) when no usable
/// GPU exists; panics instead under `F2I_REQUIRE_GPU=1`. The first executor opened stays alive
/// for the process, so the device's primary context is created once, not per check.
#[cfg(feature = "cuda")]
pub fn gpu_backend(
    precision: Precision,
) -> Option<CudaBackend<f2idiff::backend::cuda::device::DeviceExecutor>> {
    use f2idiff::backend::cuda::device::DeviceExecutor;
    static FIRST: std::sync::OnceLock<Result<DeviceExecutor, String>> = std::sync::OnceLock::new();
    let first = FIRST.get_or_init(|| DeviceExecutor::new(0, None).map_err(|e| e.to_string()));
    let exec = match first {
        Ok(_) => DeviceExecutor::new(0, None).map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    match exec {
        Ok(e) => Some(CudaBackend::new(e, precision)),
        Err(e) if require_gpu() => panic!("F2I_REQUIRE_GPU=1 but no usable GPU: {e}"),
        Err(e) => {
            eprintln!("skipped: no GPU ({e})");
            None
        }
    }
}

pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        num += (*x as f64 - *y as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// PSNR of two 8-bit images, dB.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert!(
        got.iter().all(|v| v.is_finite()),
        "{what}: non-finite output"
    );
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
            if $crate::cuda_common::skip_sim() {
                break;
            }
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
        #[cfg(feature = "cuda")]
        for (prec, tol) in [
            (f2idiff::backend::cuda::Precision::F32, $tol32),
            (f2idiff::backend::cuda::Precision::F16, $tol16),
        ] {
            let Some(gpu) = $crate::cuda_common::gpu_backend(prec) else {
                break;
            };
            let got: Vec<f32> = {
                let $b = &gpu;
                $body
            };
            $crate::cuda_common::assert_close(
                &format!("{} (cuda {:?})", $what, prec),
                &got,
                &want,
                tol,
            );
        }
    }};
}

/// Self-attention over `t` tokens whose q, k, v are column blocks of one fused `[t, rs]` matrix
/// through the `Backend` directly: `rs` a multiple of 8 takes the cp.async path, an odd one
/// the plain loads.
pub fn run_fused_qkv<B: f2idiff::backend::Backend>(
    b: &B,
    t: usize,
    heads: usize,
    hd: usize,
    rs: usize,
) -> Vec<f32> {
    let width = heads * hd;
    assert!(rs >= 3 * width);
    let fused = random(50 + t as u64, t * rs, 1.5);
    let m_len = (t - 1) * rs + width;
    let scratch_len = b.attention_scratch(t, t, heads, hd);
    let out = f2idiff::backend::View {
        offset: t * rs,
        len: t * width,
    };
    let scratch = f2idiff::backend::View {
        offset: out.end(),
        len: scratch_len,
    };
    let mut arena = b.alloc_arena(scratch.end()).unwrap();
    b.write(
        &mut arena,
        f2idiff::backend::View {
            offset: 0,
            len: t * rs,
        },
        &fused,
    )
    .unwrap();
    let block = |i: usize| f2idiff::backend::Rows {
        view: f2idiff::backend::View {
            offset: i * width,
            len: m_len,
        },
        row_stride: rs,
    };
    let scale = 1.0 / (hd as f32).sqrt();
    b.attention(
        &mut arena,
        block(0),
        block(1),
        block(2),
        t,
        t,
        heads,
        hd,
        scale,
        out,
        scratch,
    )
    .unwrap();
    let mut got = vec![0.0; out.len];
    b.read(&arena, out, &mut got).unwrap();
    got
}
