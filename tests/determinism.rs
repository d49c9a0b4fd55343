//! Determinism on the CPU: the same input, model and options give bit-identical output (the
//! unquantised f32 image, compared bit for bit) across runs, across thread counts (1, 2, 3) and
//! across engines (networks loaded twice from the same pack, each on its own pool), for the
//! whole image as one tile and for several blended tiles. Kernels guarantee it by fixing every
//! reduction's order independently of the thread count (`src/backend/cpu/kernels/`: work is
//! split into blocks whose shapes depend only on the problem, never on the pool; the GEMM splits
//! rows and columns over threads, never the reduction).
//!
//! Models: the shipped demo model (real weights, f16 pack) on a crop of the example photo, and
//! the random SD-family test model, whose VAE has mid-block attention over every latent pixel.

mod common;

use f2idiff::backend::cpu::CpuBackend;
use f2idiff::convert::{PackOptions, pack_folder};
use f2idiff::engine::Networks;
use f2idiff::pack::Pack;
use f2idiff::pipeline::image::rgb8_to_planar;
use f2idiff::pipeline::{ColorFix, UpscaleOptions, upscale};
use std::path::Path;
use std::sync::Arc;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A `w×h` crop of the example photo at `(x, y)`, planar `[3, h, w]` in [0, 1].
fn photo_crop(x: u32, y: u32, w: u32, h: u32) -> Vec<f32> {
    let img = image::open(root().join("examples/coffee-lr.png"))
        .unwrap()
        .to_rgb8();
    let crop = image::imageops::crop_imm(&img, x, y, w, h).to_image();
    rgb8_to_planar(crop.as_raw(), w as usize, h as usize)
}

/// The output's bits.
fn run(
    nets: &Networks<CpuBackend>,
    backend: &CpuBackend,
    lr: &[f32],
    (h, w): (usize, usize),
    opts: &UpscaleOptions,
) -> Vec<u32> {
    let sr = upscale(nets, backend, lr, h, w, opts, &mut |_, _| true).unwrap();
    sr.data.iter().map(|v| v.to_bits()).collect()
}

/// Index and values of the first difference, for the failure message.
fn first_difference(a: &[u32], b: &[u32]) -> Option<(usize, f32, f32)> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .map(|i| (i, f32::from_bits(a[i]), f32::from_bits(b[i])))
}

/// Runs `opts` on `lr` with every thread count and with a second engine on 2 threads, twice
/// each, and requires every output to equal the first bit for bit.
fn check(pack: &Arc<Pack>, lr: &[f32], hw: (usize, usize), opts: &UpscaleOptions, what: &str) {
    let mut want: Option<Vec<u32>> = None;
    let mut compare = |got: Vec<u32>, how: String| match &want {
        None => want = Some(got),
        Some(w) => {
            assert_eq!(w.len(), got.len(), "{what}: {how}: output size differs");
            if let Some((i, a, b)) = first_difference(w, &got) {
                panic!("{what}: {how} differs from 1 thread at value {i}: {a} vs {b}");
            }
        }
    };
    for threads in [1, 2, 3] {
        let backend = CpuBackend::new(threads).unwrap();
        let nets = Networks::load(&backend, pack.clone(), 1.0).unwrap();
        for r in 0..2 {
            compare(
                run(&nets, &backend, lr, hw, opts),
                format!("{threads} threads, run {r}"),
            );
        }
    }
    // A second engine (its own networks and pool) on the same pack.
    let backend = CpuBackend::new(2).unwrap();
    let nets = Networks::load(&backend, pack.clone(), 1.0).unwrap();
    compare(
        run(&nets, &backend, lr, hw, opts),
        "second engine, 2 threads".into(),
    );
}

#[test]
fn demo_model_is_bit_identical_across_threads_engines_and_runs() {
    let pack = Arc::new(Pack::open(root().join("models/f2idiff-demo.f2i")).unwrap());
    let (w, h) = (40, 28);
    let lr = photo_crop(52, 30, w, h);
    // Whole image, then 64-pixel tiles (3×2 tiles, blended overlaps).
    for (tile, overlap) in [(0, 16), (64, 16)] {
        let opts = UpscaleOptions {
            tile: Some(tile),
            overlap,
            ..UpscaleOptions::default()
        };
        check(
            &pack,
            &lr,
            (h as usize, w as usize),
            &opts,
            &format!("tile {tile}"),
        );
    }
}

#[test]
fn random_sd_model_is_bit_identical_across_threads_engines_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sd.f2i");
    pack_folder(
        &root().join("tests/data/engine/sd"),
        &out,
        &PackOptions::default(),
    )
    .unwrap();
    let pack = Arc::new(Pack::open(&out).unwrap());
    let (h, w) = (21, 26);
    let lr: Vec<f32> = (0..3 * h * w)
        .map(|i| {
            let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
            0.5 + 0.4 * ((x as f32 * 0.37 + c as f32).sin() * (y as f32 * 0.23).cos())
        })
        .collect();
    for (tile, fix) in [(0, ColorFix::Adain), (48, ColorFix::Wavelet)] {
        let opts = UpscaleOptions {
            tile: Some(tile),
            overlap: 16,
            color_fix: fix,
            ..UpscaleOptions::default()
        };
        check(&pack, &lr, (h, w), &opts, &format!("sd, tile {tile}"));
    }
}
