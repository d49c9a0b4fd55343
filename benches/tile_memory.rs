//! Peak memory of `upscale` for a small image and one with 8× the pixels, each in a fresh
//! process (peak RSS from /proc/self/status VmHWM, Linux). With a fixed tile, the arena is the
//! same for both; what grows is only the image buffers (input f32, output accumulator, u8
//! output), which the table lists beside the measurement.
//!
//! Run: `cargo bench --bench tile_memory` (uses the small SD-style test model).

use f2idiff::backend::cpu::CpuBackend;
use f2idiff::convert::{PackOptions, pack_folder};
use f2idiff::engine::Networks;
use f2idiff::pack::Pack;
use f2idiff::pipeline::{UpscaleOptions, image, upscale};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const TILE: usize = 128;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Child: upscale an `h × w` image with the pack at `model`, print peak RSS and buffer sizes.
fn child(model: &str, h: usize, w: usize) {
    let backend = CpuBackend::new(0).unwrap();
    let nets = Networks::load(&backend, Arc::new(Pack::open(model).unwrap()), 1.0).unwrap();
    let lr: Vec<f32> = (0..3 * h * w)
        .map(|i| 0.5 + 0.4 * ((i % 97) as f32 / 97.0 - 0.5))
        .collect();
    let opts = UpscaleOptions {
        tile: Some(TILE),
        overlap: 32,
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let out = upscale(&nets, &backend, &lr, h, w, &opts, &mut |_, _| true).unwrap();
    let u8s = image::planar_to_rgb8(&out.data, out.width, out.height);
    let secs = t0.elapsed().as_secs_f64();
    let (ow, oh) = (out.width, out.height);
    let buffers = lr.len() * 4 + ow * oh * 16 + u8s.len();
    println!(
        "{w}×{h} → {ow}×{oh}: {} tiles, {secs:.1} s, arena {:.1} MiB, image buffers {:.1} MiB, peak RSS {:.1} MiB",
        out.tiles,
        out.arena_bytes as f64 / (1 << 20) as f64,
        buffers as f64 / (1 << 20) as f64,
        peak_rss_kib().map_or(f64::NAN, |k| k as f64 / 1024.0)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let (Some(model), Some(h), Some(w)) = (
        std::env::var("F2IDIFF_MEM_MODEL").ok(),
        std::env::var("F2IDIFF_MEM_H").ok(),
        std::env::var("F2IDIFF_MEM_W").ok(),
    ) {
        child(&model, h.parse().unwrap(), w.parse().unwrap());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("sd.f2i");
    pack_folder(
        Path::new("tests/data/engine/sd"),
        &model,
        &PackOptions::default(),
    )
    .unwrap();
    // 8× the pixels: each side ×√8.
    for (h, w) in [(64usize, 96usize), (181, 272)] {
        let status = Command::new(&args[0])
            .env("F2IDIFF_MEM_MODEL", &model)
            .env("F2IDIFF_MEM_H", h.to_string())
            .env("F2IDIFF_MEM_W", w.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}
