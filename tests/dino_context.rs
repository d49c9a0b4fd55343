//! What DINOv2 conditions each tile on (`dino_context`): with the image context every tile
//! gets the whole input's tokens, so a change far from a tile changes its output, as it never
//! does with the tile context; on one tile both are the same computation; a model declaring
//! the image context in `f2idiff.json` uses it by default, and a call can override it.

mod common;

use f2idiff::backend::cpu::CpuBackend;
use f2idiff::config::DinoContext;
use f2idiff::convert::{PackOptions, pack_folder};
use f2idiff::engine::Networks;
use f2idiff::pack::Pack;
use f2idiff::pipeline::{Rect, UpscaleOptions, upscale};
use std::path::Path;
use std::sync::Arc;

const MODEL: &str = "tests/data/engine/sd";

/// The test model packed from `folder`.
fn load(folder: &Path, tmp: &Path) -> (CpuBackend, Networks<CpuBackend>) {
    let out = tmp.join("model.f2i");
    pack_folder(folder, &out, &PackOptions::default()).unwrap();
    let backend = CpuBackend::new(0).unwrap();
    let nets = Networks::load(&backend, Arc::new(Pack::open(&out).unwrap()), 1.0).unwrap();
    (backend, nets)
}

/// A smooth LR test image `[3, h, w]` in [0, 1].
fn image(h: usize, w: usize) -> Vec<f32> {
    (0..3 * h * w)
        .map(|i| {
            let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
            0.5 + 0.3 * ((x as f32 * 0.3 + c as f32).sin() * (y as f32 * 0.2).cos())
        })
        .collect()
}

fn run(
    b: &CpuBackend,
    nets: &Networks<CpuBackend>,
    lr: &[f32],
    (h, w): (usize, usize),
    opts: &UpscaleOptions,
) -> Vec<f32> {
    upscale(nets, b, lr, h, w, opts, &mut |_, _| true)
        .unwrap()
        .data
}

/// Max difference of two `[3, oh, ow]` outputs over rows and columns `0..n`.
fn corner_diff(a: &[f32], b: &[f32], (oh, ow): (usize, usize), n: usize) -> f32 {
    let mut m = 0.0f32;
    for c in 0..3 {
        for y in 0..n {
            for x in 0..n {
                let i = (c * oh + y) * ow + x;
                m = m.max((a[i] - b[i]).abs());
            }
        }
    }
    m
}

fn with(context: DinoContext, opts: &UpscaleOptions) -> UpscaleOptions {
    UpscaleOptions {
        dino_context: Some(context),
        ..opts.clone()
    }
}

#[test]
fn one_tile_is_the_same_computation_with_either_context() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, nets) = load(Path::new(MODEL), tmp.path());
    let (h, w) = (13, 9);
    let lr = image(h, w);
    let whole = UpscaleOptions {
        tile: Some(0),
        ..Default::default()
    };
    let tile = run(&b, &nets, &lr, (h, w), &with(DinoContext::Tile, &whole));
    let img = run(&b, &nets, &lr, (h, w), &with(DinoContext::Image, &whole));
    assert_eq!(tile, img);
}

#[test]
fn the_image_context_conditions_every_tile_on_the_whole_input() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, nets) = load(Path::new(MODEL), tmp.path());
    let (h, w) = (30, 26);
    let a = image(h, w);
    // b: a with its bottom-right corner (LR rows 20.., columns 18..) changed, far from the
    // first tile (LR 0..8 at 32 / 8: the next tiles start at 6, so the output's 0..24 comes
    // from the first tile alone).
    let mut bb = a.clone();
    for c in 0..3 {
        for y in 20..h {
            for x in 18..w {
                bb[(c * h + y) * w + x] = 1.0 - bb[(c * h + y) * w + x];
            }
        }
    }
    let opts = UpscaleOptions {
        tile: Some(32),
        overlap: 8,
        ..Default::default()
    };
    let out = (4 * h, 4 * w);
    for (context, far_changes_corner) in [(DinoContext::Tile, false), (DinoContext::Image, true)] {
        let o = with(context, &opts);
        let d = corner_diff(
            &run(&b, &nets, &a, (h, w), &o),
            &run(&b, &nets, &bb, (h, w), &o),
            out,
            24,
        );
        assert_eq!(d > 0.0, far_changes_corner, "{context:?}: {d}");
    }
    // Tiled, the two contexts differ.
    let t = run(&b, &nets, &a, (h, w), &with(DinoContext::Tile, &opts));
    let i = run(&b, &nets, &a, (h, w), &with(DinoContext::Image, &opts));
    assert!(
        common::max_abs_diff(&t, &i) > 1e-4,
        "{}",
        common::max_abs_diff(&t, &i)
    );

    // An ROI's tokens are the whole input's too: a change outside its grown crop reaches it.
    let roi = UpscaleOptions {
        roi: Some(Rect {
            x: 1,
            y: 1,
            width: 5,
            height: 6,
        }),
        ..opts
    };
    for (context, far_changes_roi) in [(DinoContext::Tile, false), (DinoContext::Image, true)] {
        let o = with(context, &roi);
        let d = common::max_abs_diff(
            &run(&b, &nets, &a, (h, w), &o),
            &run(&b, &nets, &bb, (h, w), &o),
        );
        assert_eq!(d > 0.0, far_changes_roi, "ROI, {context:?}: {d}");
    }
}

#[test]
fn a_model_declaring_the_image_context_uses_it_unless_a_call_overrides_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, plain) = load(Path::new(MODEL), tmp.path());
    let folder = tmp.path().join("image");
    common::copy_dir(Path::new(MODEL), &folder);
    std::fs::write(
        folder.join("f2idiff.json"),
        r#"{"scale": 4, "timestep": 999, "dino_image_size": 224, "dino_context": "image"}"#,
    )
    .unwrap();
    let dir = tmp.path().join("b");
    std::fs::create_dir(&dir).unwrap();
    let (_, declared) = load(&folder, &dir);
    assert_eq!(declared.configs.pipeline.dino_context, DinoContext::Image);

    let (h, w) = (21, 17);
    let lr = image(h, w);
    let opts = UpscaleOptions {
        tile: Some(32),
        overlap: 8,
        ..Default::default()
    };
    let default = run(&b, &declared, &lr, (h, w), &opts);
    assert_eq!(
        default,
        run(&b, &plain, &lr, (h, w), &with(DinoContext::Image, &opts))
    );
    assert_eq!(
        run(&b, &declared, &lr, (h, w), &with(DinoContext::Tile, &opts)),
        run(&b, &plain, &lr, (h, w), &opts)
    );
    assert_ne!(default, run(&b, &plain, &lr, (h, w), &opts));
}
