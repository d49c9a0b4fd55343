//! One forward pass of the SD VAE encoder (diffusers `AutoencoderKL`, block_out_channels
//! [128, 256, 512, 512], 2 layers per block) at 256×256 on the CPU backend, all cores.
//! Weights from the test formula (values do not change the work). About 279 GFLOP
//! (DESIGN.md §4: 1117 GFLOP at 512²); PyTorch's time for the same config:
//! `calib/reference/bench_vae_encoder.py`.
//!
//! Run: `cargo bench --bench vae_encoder`

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::Criterion;
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::config::VaeConfig;
use f2idiff::engine::{plan, run};
use f2idiff::model::Loader;
use f2idiff::model::vae::VaeEncoder;
use std::path::Path;
use std::time::Duration;

fn main() {
    let path = Path::new("tests/data/pack/manifests/vae_sd.json");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cfg = VaeConfig::from_json(path, &golden["config"]).unwrap();
    let backend = CpuBackend::new(0).unwrap();
    let enc = VaeEncoder::load(&Loader::new(&backend, &common::FormulaWeights), &cfg).unwrap();
    let side = 256;
    let x: Vec<f32> = common::values(7, 3 * side * side);
    let f = |cx: &mut f2idiff::exec::Exec<CpuBackend>| {
        let t = cx.input(&[3, side, side], &x)?;
        let z = enc.forward(cx, &t)?;
        cx.read(&z)
    };
    let p = plan(&backend, f).unwrap();
    println!(
        "SD VAE encoder {side}²: arena {:.1} MiB (no reuse: {:.1} MiB), {} threads",
        p.peak_bytes(4) as f64 / (1 << 20) as f64,
        (p.total * 4) as f64 / (1 << 20) as f64,
        backend.threads()
    );
    let mut arena = vec![0f32; p.peak];
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("vae_encoder");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("sd_vae_encoder_256", |b| {
        b.iter(|| run(&backend, &mut arena, &p, f).unwrap())
    });
    g.finish();
    c.final_summary();
}
