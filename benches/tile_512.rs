//! One 512×512 output tile through the whole model at real size — SD VAE (encoder + decoder),
//! SD-2.1-base U-Net, DINOv2-L/14 at 224 — on the CPU backend, all cores. Weights come from the
//! test formula (values do not change the work; ≈1.3 G parameters, 5.2 GB of f32). DESIGN.md §4
//! counts ≈4.6 TFLOP for this tile; PyTorch's time for the same tile:
//! `calib/reference/bench_tile_512.py`.
//!
//! Run: `cargo bench --bench tile_512` (needs ~8 GB RAM; prints one line per run).

#[path = "../tests/common/mod.rs"]
mod common;

use f2idiff::backend::cpu::CpuBackend;
use f2idiff::config::ModelConfigs;
use f2idiff::engine::{self, Networks};
use f2idiff::model::Loader;
use f2idiff::model::dinov2::Dinov2;
use f2idiff::model::unet::UNet;
use f2idiff::model::vae::{VaeDecoder, VaeEncoder};
use f2idiff::pipeline::one_step;
use std::path::Path;
use std::time::Instant;

fn config(name: &str) -> serde_json::Value {
    let path = format!("tests/data/pack/manifests/{name}.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["config"].clone()
}

fn main() {
    let p = Path::new("bench");
    let pipeline = serde_json::json!({"scale": 4, "timestep": 999, "dino_image_size": 224});
    let (vae, unet, dino) = (
        config("vae_sd"),
        config("unet_sd21_base"),
        config("dinov2_large"),
    );
    let configs = ModelConfigs::parse((p, &pipeline), (p, &vae), (p, &unet), (p, &dino)).unwrap();
    let backend = CpuBackend::new(0).unwrap();
    let t0 = Instant::now();
    let l = Loader::new(&backend, &common::FormulaWeights);
    let nets = Networks {
        vae_encoder: VaeEncoder::load(&l, &configs.vae).unwrap(),
        vae_decoder: VaeDecoder::load(&l, &configs.vae).unwrap(),
        unet: UNet::load(&l, &configs.unet).unwrap(),
        dinov2: Dinov2::load(&l, &configs.dinov2).unwrap(),
        cond_proj: None,
        configs,
        lora: f2idiff::engine::LoraState::InPack,
    };
    println!(
        "weights generated in {:.1} s, {} threads",
        t0.elapsed().as_secs_f64(),
        backend.threads()
    );
    let lr: Vec<f32> = common::values(3, 3 * 128 * 128)
        .iter()
        .map(|v| 0.5 + 0.4 * v)
        .collect();
    let f = |cx: &mut f2idiff::exec::Exec<CpuBackend>| {
        let x = cx.input(&[3, 128, 128], &lr)?;
        let (sr, _lq) = one_step(&nets, cx, &x, None)?;
        cx.read(&sr)
    };
    let plan = engine::plan(&backend, f).unwrap();
    println!(
        "arena for a 512² tile: {:.0} MiB planned peak",
        plan.peak_bytes(4) as f64 / (1 << 20) as f64
    );
    let mut arena = vec![0f32; plan.peak];
    for run in 1..=3 {
        let t = Instant::now();
        let out = engine::run(&backend, &mut arena, &plan, f).unwrap();
        assert_eq!(out.len(), 3 * 512 * 512);
        println!(
            "run {run}: 512² tile (VAE enc + DINOv2-L + U-Net SD-2.1 + VAE dec) {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
}
