//! The GPU executor's contract on every machine. Without a GPU (CI): opening one is a typed
//! `Unsupported` error naming what is missing (the driver library, or a device), never a panic.
//! With one (and always under `F2I_REQUIRE_GPU=1`, where a missing GPU fails): kernels load from
//! NVRTC and from a precompiled kernel folder, and a launch through the CUDA backend matches
//! the host.
#![cfg(feature = "cuda")]

use f2idiff::ErrorKind;
use f2idiff::backend::cuda::device::{self, DeviceExecutor, nvrtc};
use f2idiff::backend::cuda::sources::MODULES;
use f2idiff::backend::cuda::{CudaBackend, Executor, Precision};
use f2idiff::backend::{Backend, View};

fn require_gpu() -> bool {
    std::env::var("F2I_REQUIRE_GPU").is_ok_and(|v| v.trim() == "1")
}

/// Device 0, or `None` after checking the error is typed and says what is missing.
fn open(kernel_dir: Option<std::path::PathBuf>) -> Option<DeviceExecutor> {
    let result = std::panic::catch_unwind(|| DeviceExecutor::new(0, kernel_dir))
        .expect("DeviceExecutor::new panicked instead of returning an error");
    match result {
        Ok(e) => Some(e),
        Err(e) => {
            let msg = e.to_string();
            assert!(!require_gpu(), "F2I_REQUIRE_GPU=1 but no usable GPU: {msg}");
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{msg}");
            if device::driver_present() {
                assert!(
                    msg.contains("CUDA device") || msg.contains("CUDA driver library"),
                    "message names no device: {msg}"
                );
            } else {
                assert!(
                    msg.contains("libcuda.so"),
                    "message names no libcuda: {msg}"
                );
            }
            eprintln!("skipped: no GPU ({msg})");
            None
        }
    }
}

#[test]
fn opening_a_gpu_is_a_device_or_a_typed_error() {
    if let Some(e) = open(None) {
        eprintln!("opened {}", e.describe());
        assert!(e.arch().starts_with("sm_"));
    }
}

#[test]
fn a_bad_ordinal_is_a_typed_error() {
    let err = std::panic::catch_unwind(|| DeviceExecutor::new(4096, None))
        .expect("panicked")
        .err()
        .expect("device 4096 exists?");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
}

#[test]
fn a_missing_kernel_folder_is_a_typed_error() {
    let dir = std::path::PathBuf::from("/nonexistent/f2idiff-kernels");
    let err = std::panic::catch_unwind(|| DeviceExecutor::new(0, Some(dir)))
        .expect("panicked")
        .err()
        .expect("a missing kernel folder was accepted");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(
        err.to_string().contains("/nonexistent/f2idiff-kernels"),
        "{err}"
    );
}

/// silu through the backend on `exec`, against the host formula (f32 storage: within 1e-6
/// relative; f16: within f16 rounding).
fn silu_matches(exec: DeviceExecutor, precision: Precision) {
    let backend = CudaBackend::new(exec, precision);
    let n = 1000 * 37 + 13; // not a multiple of any block size
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 / 250.0 - 4.0)
        .collect();
    let mut arena = backend.alloc_arena(n + 64).expect("arena");
    let v = View { offset: 64, len: n };
    backend.write(&mut arena, v, &x).expect("write");
    backend.silu(&mut arena, v).expect("silu launch");
    backend.synchronize().expect("synchronize");
    let mut got = vec![0f32; n];
    backend.read(&arena, v, &mut got).expect("read");
    let tol = match precision {
        Precision::F32 => 1e-5,
        Precision::F16 => 2e-3,
    };
    for (i, (&g, &xi)) in got.iter().zip(&x).enumerate() {
        let xi = match precision {
            Precision::F32 => xi,
            Precision::F16 => half::f16::from_f32(xi).to_f32(),
        };
        let want = xi / (1.0 + (-xi).exp());
        assert!(
            (g - want).abs() <= tol * (1.0 + want.abs()),
            "silu[{i}]({xi}) = {g}, want {want} ({precision:?}, {})",
            backend.name()
        );
    }
}

/// Kernels from NVRTC (or the cache, or `$F2I_KERNEL_DIR` when set: scripts/gpu-check.sh runs
/// this test once without a folder and with a fresh cache, so NVRTC compiles).
#[test]
fn kernels_compiled_by_nvrtc_run() {
    let Some(exec) = open(None) else { return };
    exec.preload(Precision::F32)
        .expect("loading every module (f32)");
    silu_matches(exec, Precision::F32);
    silu_matches(open(None).unwrap(), Precision::F16);
}

#[test]
fn kernels_from_a_precompiled_folder_run() {
    let Some(probe) = open(None) else { return };
    let arch = probe.arch();
    drop(probe);
    let compiler = match nvrtc::Nvrtc::load() {
        Ok(c) => c,
        Err(e) => {
            assert!(!require_gpu(), "F2I_REQUIRE_GPU=1 but no NVRTC: {e}");
            eprintln!("skipped: no NVRTC ({e})");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    for m in MODULES {
        for p in [Precision::F16, Precision::F32] {
            let cubin = compiler
                .compile(m, p, &arch, nvrtc::Output::Cubin)
                .expect("NVRTC compile");
            std::fs::write(
                dir.path().join(device::cubin_file_name(m.name, p, &arch)),
                cubin,
            )
            .unwrap();
        }
    }
    let exec = DeviceExecutor::new(0, Some(dir.path().to_path_buf())).expect("open with folder");
    exec.preload(Precision::F16)
        .expect("loading from the folder");
    silu_matches(exec, Precision::F16);
}
