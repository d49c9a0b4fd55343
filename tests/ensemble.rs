//! The self-ensemble (`pipeline/ensemble.rs`): with 2 or 4 copies the output is the mean of
//! plain upscales of the mirrored inputs, mirrored back (mirrors made here, independently of
//! the library's), with an ROI too; a model's declared ensemble is the default and a call can
//! override it; progress counts every copy's tiles and can cancel; bad sizes are typed errors.

mod common;

use f2idiff::Error;
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::config::DinoContext;
use f2idiff::engine::Networks;
use f2idiff::pipeline::{Rect, UpscaleOptions, Upscaled, upscale};

/// An LR test image `[3, h, w]` in [0, 1] with no mirror symmetry.
fn image(h: usize, w: usize) -> Vec<f32> {
    (0..3 * h * w)
        .map(|i| {
            let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
            0.5 + 0.3 * ((x as f32 * 0.37 + c as f32).sin() * (y as f32 * 0.23 + 0.4).cos())
                + 0.01 * x as f32
        })
        .collect()
}

/// `img [3, h, w]` mirrored left-right (`lr`) and / or up-down (`ud`).
fn mirrored(img: &[f32], h: usize, w: usize, (lr, ud): (bool, bool)) -> Vec<f32> {
    let mut out = vec![0.0; img.len()];
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = (
                    if ud { h - 1 - y } else { y },
                    if lr { w - 1 - x } else { x },
                );
                out[(c * h + y) * w + x] = img[(c * h + sy) * w + sx];
            }
        }
    }
    out
}

fn run(
    b: &CpuBackend,
    nets: &Networks<CpuBackend>,
    lr: &[f32],
    (h, w): (usize, usize),
    opts: &UpscaleOptions,
) -> Upscaled {
    upscale(nets, b, lr, h, w, opts, &mut |_, _| true).unwrap()
}

/// The ensemble by hand: plain upscales of the mirrored input (ROI mirrored with it), mirrored
/// back, clamped to [0, 1], summed in the library's order, times 1 / n.
fn by_hand(
    b: &CpuBackend,
    nets: &Networks<CpuBackend>,
    lr: &[f32],
    (h, w): (usize, usize),
    opts: &UpscaleOptions,
    n: usize,
) -> Vec<f32> {
    let flips = [(false, false), (true, false), (false, true), (true, true)];
    let mut sum: Vec<f32> = Vec::new();
    for &f in &flips[..n] {
        let roi = opts.roi.map(|r| Rect {
            x: if f.0 { w - r.x - r.width } else { r.x },
            y: if f.1 { h - r.y - r.height } else { r.y },
            ..r
        });
        let one = UpscaleOptions {
            roi,
            ensemble: Some(1),
            ..opts.clone()
        };
        let out = run(b, nets, &mirrored(lr, h, w, f), (h, w), &one);
        let clamped: Vec<f32> = out.data.iter().map(|v| v.clamp(0.0, 1.0)).collect();
        let back = mirrored(&clamped, out.height, out.width, f);
        if sum.is_empty() {
            sum = back;
        } else {
            sum.iter_mut().zip(&back).for_each(|(s, v)| *s += v);
        }
    }
    let inv = 1.0 / n as f32;
    sum.iter().map(|v| v * inv).collect()
}

#[test]
fn the_ensemble_is_the_mean_of_the_mirrored_copies() {
    let (_t, b, nets) = common::sd_model();
    let (h, w) = (19, 14);
    let lr = image(h, w);
    let roi = Rect {
        x: 2,
        y: 3,
        width: 7,
        height: 9,
    };
    // values the colour fix put outside [0, 1], which each copy clamps before the mean
    let mut outside = 0;
    for context in [DinoContext::Tile, DinoContext::Image] {
        for roi in [None, Some(roi)] {
            let base = UpscaleOptions {
                tile: Some(32),
                overlap: 8,
                dino_context: Some(context),
                roi,
                ..Default::default()
            };
            let plain = run(&b, &nets, &lr, (h, w), &base);
            outside += plain
                .data
                .iter()
                .filter(|v| !(0.0..=1.0).contains(*v))
                .count();
            for n in [2, 4] {
                let opts = UpscaleOptions {
                    ensemble: Some(n),
                    ..base.clone()
                };
                let out = run(&b, &nets, &lr, (h, w), &opts);
                let what = format!("{context:?}, ROI {roi:?}, {n} copies");
                assert_eq!(
                    (out.width, out.height),
                    (plain.width, plain.height),
                    "{what}"
                );
                assert_eq!(out.tiles, n * plain.tiles, "{what}");
                let d = common::max_abs_diff(&out.data, &by_hand(&b, &nets, &lr, (h, w), &opts, n));
                assert!(d <= 1e-6, "{what}: {d}");
                // and it is not the plain output: the copies differ on this image
                assert!(
                    common::max_abs_diff(&out.data, &plain.data) > 1e-4,
                    "{what}"
                );
                assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)), "{what}");
            }
        }
    }
    assert!(
        outside > 0,
        "no value outside [0, 1]: the clamp is untested"
    );
}

#[test]
fn a_declared_ensemble_is_the_default_and_a_call_overrides_it() {
    let (_t, b, mut nets) = common::sd_model();
    let (h, w) = (12, 15);
    let lr = image(h, w);
    let opts = |ensemble| UpscaleOptions {
        tile: Some(32),
        overlap: 8,
        ensemble,
        ..Default::default()
    };
    let plain = run(&b, &nets, &lr, (h, w), &opts(None)).data;
    let two = run(&b, &nets, &lr, (h, w), &opts(Some(2))).data;
    assert_eq!(run(&b, &nets, &lr, (h, w), &opts(Some(1))).data, plain);
    nets.configs.pipeline.ensemble = Some(2);
    assert_eq!(run(&b, &nets, &lr, (h, w), &opts(None)).data, two);
    assert_eq!(run(&b, &nets, &lr, (h, w), &opts(Some(1))).data, plain);
}

#[test]
fn progress_counts_every_copy_and_cancels_between_them() {
    let (_t, b, nets) = common::sd_model();
    let (h, w) = (12, 15);
    let lr = image(h, w);
    let opts = UpscaleOptions {
        tile: Some(32),
        overlap: 8,
        ensemble: Some(4),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let out = upscale(&nets, &b, &lr, h, w, &opts, &mut |d, t| {
        seen.push((d, t));
        true
    })
    .unwrap();
    let total = out.tiles;
    assert_eq!(seen, (1..=total).map(|d| (d, total)).collect::<Vec<_>>());
    // cancelled in the second copy
    let mut calls = 0;
    let r = upscale(&nets, &b, &lr, h, w, &opts, &mut |_, _| {
        calls += 1;
        calls < total / 4 + 2
    });
    assert!(matches!(r, Err(Error::Cancelled)), "{:?}", r.err());
}

#[test]
fn bad_ensemble_sizes_are_typed_errors() {
    let (_t, b, nets) = common::sd_model();
    let lr = image(8, 8);
    for n in [0, 3, 8] {
        let opts = UpscaleOptions {
            ensemble: Some(n),
            ..Default::default()
        };
        let r = upscale(&nets, &b, &lr, 8, 8, &opts, &mut |_, _| true);
        assert!(
            matches!(r, Err(Error::InvalidArgument(_))),
            "{n}: {:?}",
            r.err()
        );
    }
}
