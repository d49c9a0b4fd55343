//! `f2idiff upscale --device …` from the command line: `auto` on a machine without a usable GPU
//! runs on the CPU and says why; with the `cuda-sim` feature, `--device cuda-sim` runs the whole
//! pipeline through the CUDA kernels on the CPU execution harness and gives the CPU's image
//! (f32 storage: within 2 levels; f16: PSNR ≥ 40 dB); a bad device is one clear error line.

mod common;

use common::skipped;
use std::path::Path;
use std::process::{Command, Output};

const LR: &str = "tests/data/pipeline/eff_chelsea_wavelet.lr.png";

/// The CLI this test was built with, or `F2IDIFF_BIN` (scripts/gpu-check.sh on the GPU
/// machine, where the build tree is not). The harness runs one thread schedule
/// (`F2I_SIM_SCHEDULES=1`): this file checks the command line's wiring, and the same kernels on
/// the same image are checked under two schedules by tests/cuda_networks.rs
/// (`single_tile_pipeline_matches_the_cpu`).
fn f2idiff(args: &[&str]) -> Output {
    let bin = std::env::var("F2IDIFF_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_f2idiff").into());
    Command::new(bin)
        .args(args)
        .env("F2I_SIM_SCHEDULES", "1")
        .output()
        .unwrap()
}

fn model(dir: &Path) -> String {
    let out = dir.join("eff.f2i");
    let o = f2idiff(&["pack", "tests/data/engine/eff", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.to_str().unwrap().to_string()
}

fn upscale(m: &str, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "upscale",
        LR,
        "-o",
        out.to_str().unwrap(),
        "-m",
        m,
        "--tile",
        "0",
    ];
    args.extend(extra);
    let o = f2idiff(&args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{extra:?}: {err}");
    err
}

fn pixels(path: &Path) -> Vec<u8> {
    ::image::open(path).unwrap().to_rgb8().into_raw()
}

#[test]
fn bad_device_names_are_one_error_line() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    let out = tmp.path().join("x.png");
    for (device, culprit) in [("gpu", "device `gpu`"), ("cuda:x", "device `cuda:x`")] {
        let o = f2idiff(&[
            "upscale",
            LR,
            "-o",
            out.to_str().unwrap(),
            "-m",
            &m,
            "--device",
            device,
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(culprit), "{err}");
        assert!(!out.exists());
    }
}

#[test]
fn auto_says_which_device_ran() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    let out = tmp.path().join("auto.png");
    let err = upscale(&m, &out, &["--device", "auto"]);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("device: "), "{err}");
    if std::env::var("F2I_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        assert!(
            last.contains("cuda:0"),
            "GPU required but auto chose: {last}"
        );
    } else if !last.contains("cuda:") {
        // No usable GPU here: the CPU ran, and the line says why the GPU did not.
        assert!(
            last.contains("cpu") && last.contains("no usable GPU"),
            "{last}"
        );
        let cpu = tmp.path().join("cpu.png");
        upscale(&m, &cpu, &["--device", "cpu"]);
        assert_eq!(pixels(&out), pixels(&cpu));
    }
}

#[cfg(feature = "cuda-sim")]
#[test]
fn cuda_sim_device_gives_the_cpu_image() {
    if skipped() {
        return;
    }
    if std::env::var("F2I_SKIP_SIM").is_ok_and(|v| v.trim() == "1") {
        eprintln!("harness half not run: F2I_SKIP_SIM=1 (the GPU machine; CI runs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    let cpu = tmp.path().join("cpu.png");
    upscale(&m, &cpu, &["--device", "cpu"]);
    let want = pixels(&cpu);
    for precision in ["f32", "f16"] {
        let out = tmp.path().join(format!("sim-{precision}.png"));
        let err = upscale(
            &m,
            &out,
            &["--device", "cuda-sim", "--precision", precision],
        );
        assert!(err.contains("cuda-sim"), "{err}");
        let got = pixels(&out);
        assert_eq!(got.len(), want.len());
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        let mse = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            / got.len() as f64;
        let psnr = 10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10();
        eprintln!("--device cuda-sim --precision {precision}: max |Δ| {max}, PSNR {psnr:.1} dB");
        match precision {
            "f32" => assert!(max <= 2, "f32: max |Δ| {max}"),
            _ => assert!(psnr >= 40.0, "f16: PSNR {psnr:.1} dB"),
        }
    }
}
