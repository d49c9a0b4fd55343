//! The CLI runs OpenBLAS on the kernels of the CPU's features (src/bin/f2idiff/openblas.rs):
//! OpenBLAS picks them by CPU model and, on a model it does not know, falls back to SSE3 ones.
//! The BLAS in use, with OpenBLAS's kernels, is on `f2idiff bench`'s device line.

mod common;

use common::skipped;
use f2idiff::backend::cpu::kernels::blas::openblas_coretype;
use std::process::Command;

/// `f2idiff bench`'s device line for a tiny DINOv2 on the CPU, with `OPENBLAS_CORETYPE` as given
/// (None: unset) and the default choice of BLAS (`F2IDIFF_BLAS` unset).
fn device_line(coretype: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_f2idiff"));
    cmd.args([
        "bench", "--device", "cpu", "--stage", "dino", "--preset", "dinov2-s",
    ])
    .args(["--size", "28", "--runs", "1", "--warmup", "0"])
    .env_remove("F2IDIFF_BLAS")
    .env_remove("OPENBLAS_CORETYPE");
    if let Some(c) = coretype {
        cmd.env("OPENBLAS_CORETYPE", c);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find(|l| l.starts_with("device: cpu"))
        .unwrap_or_else(|| panic!("no device line in {text}"))
        .to_string()
}

#[test]
fn openblas_runs_the_kernels_of_the_cpus_features() {
    if skipped() {
        return;
    }
    let device = device_line(None);
    if !device.contains("libopenblas") {
        eprintln!("skipped: the default BLAS here is not OpenBLAS ({device})");
        return;
    }
    if let Some(core) = openblas_coretype() {
        assert!(device.contains(&format!("({core} kernels)")), "{device}");
        // An empty value names no kernels: the same as unset.
        let empty = device_line(Some(""));
        assert!(empty.contains(&format!("({core} kernels)")), "{empty}");
        // A value the user set is kept.
        // (an older family than the CPU's: newer ones would not run on it)
        let other = if core == "SkylakeX" {
            "Haswell"
        } else {
            "Sandybridge"
        };
        let chosen = device_line(Some(other));
        assert!(chosen.contains(&format!("({other} kernels)")), "{chosen}");
    }
}
