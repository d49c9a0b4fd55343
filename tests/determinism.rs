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

use common::emulated;
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
/// each, and requires every output to equal the first bit for bit. Under qemu ([`emulated`]):
/// 1 and 3 threads, once each — the same claim (the NEON kernels' output does not depend on the
/// pool) with fewer repeats.
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
    let (threads_list, runs): (&[usize], usize) = if emulated() {
        (&[1, 3], 1)
    } else {
        (&[1, 2, 3], 2)
    };
    for &threads in threads_list {
        let backend = CpuBackend::new(threads).unwrap();
        let nets = Networks::load(&backend, pack.clone(), 1.0).unwrap();
        for r in 0..runs {
            compare(
                run(&nets, &backend, lr, hw, opts),
                format!("{threads} threads, run {r}"),
            );
        }
    }
    if emulated() {
        return;
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

/// The arena of one `t × t` LR tile (clamped to the image) on `backend`, as planned.
fn tile_peak(
    nets: &Networks<CpuBackend>,
    backend: &CpuBackend,
    t: usize,
    hw: (usize, usize),
) -> usize {
    let (th, tw) = (t.min(hw.0), t.min(hw.1));
    f2idiff::engine::plan(backend, |cx| {
        let x = cx.alloc(&[3, th, tw])?;
        drop(f2idiff::pipeline::one_step(nets, cx, &x, None)?);
        Ok(())
    })
    .unwrap()
    .peak_bytes(4)
}

/// The automatic tile fits the memory budget with the arena planned as for one thread: a
/// bigger pool (whose kernels plan more scratch) must not pick a smaller tile, which would
/// change the tiling and so the output. Budgets at the exact one-thread arena of each tile are
/// the ones where a thread-dependent choice would differ.
#[test]
fn automatic_tile_and_output_are_the_same_on_every_thread_count() {
    let pack = Arc::new(Pack::open(root().join("models/f2idiff-demo.f2i")).unwrap());
    let (w, h) = (72, 40);
    let lr = photo_crop(20, 20, w as u32, h as u32);
    let pools: Vec<CpuBackend> = [1, 2, 3].map(|t| CpuBackend::new(t).unwrap()).into();
    let nets: Vec<Networks<CpuBackend>> = pools
        .iter()
        .map(|b| Networks::load(b, pack.clone(), 1.0).unwrap())
        .collect();
    let scale = nets[0].configs.pipeline.scale as usize;
    let mut tight = None;
    for out_tile in [256, 128, 64] {
        let one_thread = tile_peak(&nets[0], &pools[0], out_tile / scale, (h, w));
        let three_threads = tile_peak(&nets[2], &pools[2], out_tile / scale, (h, w));
        assert!(
            three_threads >= one_thread,
            "more threads never plan less scratch"
        );
        let chosen: Vec<usize> = nets
            .iter()
            .zip(&pools)
            .map(|(n, b)| f2idiff::pipeline::auto_tile(n, b, h, w, one_thread).unwrap())
            .collect();
        assert!(
            chosen.iter().all(|&t| t == chosen[0]),
            "budget {one_thread} B (one-thread arena of tile {out_tile}; {three_threads} B on 3 \
             threads): automatic tiles {chosen:?} on 1/2/3 threads"
        );
        if three_threads > one_thread && chosen[0] < w.max(h) * scale {
            tight.get_or_insert(one_thread);
        }
    }
    // And the output, with the automatic tile at a budget where the pools' arenas differ.
    let budget = tight.expect("a budget where 3 threads plan more than 1, with several tiles");
    let opts = UpscaleOptions {
        tile: None,
        memory_budget: budget,
        overlap: 16,
        ..UpscaleOptions::default()
    };
    check(
        &pack,
        &lr,
        (h, w),
        &opts,
        &format!("automatic tile, budget {budget} B"),
    );
}
