//! The tiler: the whole image as one tile equals the single-tile pipeline; tiles of any size
//! give the right output size for odd inputs; an ROI run equals a run over the margin-grown
//! crop, cropped; cancel and bad parameters give typed errors.

mod common;

use f2idiff::Error;
use f2idiff::pipeline::{ColorFix, Rect, UpscaleOptions, roi_margin, super_resolve, upscale};

/// A smooth, photo-like LR test image `[3, h, w]` in [0, 1].
fn image(h: usize, w: usize) -> Vec<f32> {
    (0..3 * h * w)
        .map(|i| {
            let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
            0.5 + 0.3 * ((x as f32 * 0.3 + c as f32).sin() * (y as f32 * 0.2).cos())
        })
        .collect()
}

fn never_cancel() -> impl FnMut(usize, usize) -> bool {
    |_, _| true
}

#[test]
fn whole_image_tile_equals_the_single_tile_pipeline() {
    let (_t, b, nets) = common::sd_model();
    let (h, w) = (13, 9);
    let lr = image(h, w);
    for fix in [ColorFix::Wavelet, ColorFix::Adain, ColorFix::None] {
        let (want, _) = super_resolve(&nets, &b, &lr, h, w, fix).unwrap();
        let opts = UpscaleOptions {
            tile: Some(0),
            color_fix: fix,
            ..Default::default()
        };
        let got = upscale(&nets, &b, &lr, h, w, &opts, &mut never_cancel()).unwrap();
        assert_eq!((got.width, got.height, got.tiles), (36, 52, 1));
        let max = got
            .data
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max < 1e-5, "{fix:?}: {max}");
    }
}

#[test]
fn tiles_cover_odd_sizes_and_blend_to_a_sane_image() {
    let (_t, b, nets) = common::sd_model();
    for (h, w, tile, overlap) in [(21, 13, 32, 8), (19, 30, 48, 16), (9, 40, 32, 4)] {
        let lr = image(h, w);
        let opts = UpscaleOptions {
            tile: Some(tile),
            overlap,
            ..Default::default()
        };
        let mut calls = Vec::new();
        let out = upscale(&nets, &b, &lr, h, w, &opts, &mut |d, n| {
            calls.push((d, n));
            true
        })
        .unwrap();
        assert_eq!((out.width, out.height), (4 * w, 4 * h));
        assert!(out.tiles > 1, "{h}×{w} with tile {tile}: one tile");
        assert_eq!(calls.len(), out.tiles);
        assert_eq!(*calls.last().unwrap(), (out.tiles, out.tiles));
        assert!(out.data.iter().all(|v| v.is_finite()), "{h}×{w}");
    }
}

#[test]
fn roi_equals_a_run_over_the_grown_crop_cropped() {
    let (_t, b, nets) = common::sd_model();
    let (h, w) = (30, 26);
    let lr = image(h, w);
    let roi = Rect {
        x: 7,
        y: 11,
        width: 5,
        height: 6,
    };
    let opts = UpscaleOptions {
        tile: Some(32),
        overlap: 8,
        roi: Some(roi),
        ..Default::default()
    };
    let zoomed = upscale(&nets, &b, &lr, h, w, &opts, &mut never_cancel()).unwrap();
    assert_eq!((zoomed.width, zoomed.height), (20, 24));

    // The same by hand: grow by the documented margin (clipped), upscale, crop.
    let m = roi_margin(4, 8);
    let (x0, y0) = (roi.x.saturating_sub(m), roi.y.saturating_sub(m));
    let (x1, y1) = (
        (roi.x + roi.width + m).min(w),
        (roi.y + roi.height + m).min(h),
    );
    let (cw, ch) = (x1 - x0, y1 - y0);
    let crop: Vec<f32> = (0..3 * ch * cw)
        .map(|i| lr[((i / (ch * cw)) * h + y0 + (i / cw) % ch) * w + x0 + i % cw])
        .collect();
    let full = upscale(
        &nets,
        &b,
        &crop,
        ch,
        cw,
        &UpscaleOptions {
            roi: None,
            ..opts.clone()
        },
        &mut never_cancel(),
    )
    .unwrap();
    for c in 0..3 {
        for y in 0..24 {
            for x in 0..20 {
                let want = full.data
                    [(c * full.height + (roi.y - y0) * 4 + y) * full.width + (roi.x - x0) * 4 + x];
                assert_eq!(zoomed.data[(c * 24 + y) * 20 + x], want);
            }
        }
    }
}

#[test]
fn cancel_and_bad_parameters_are_typed_errors() {
    let (_t, b, nets) = common::sd_model();
    let (h, w) = (20, 20);
    let lr = image(h, w);
    let opts = UpscaleOptions {
        tile: Some(32),
        overlap: 8,
        ..Default::default()
    };
    let err = upscale(&nets, &b, &lr, h, w, &opts, &mut |d, _| d < 2)
        .err()
        .unwrap();
    assert!(matches!(err, Error::Cancelled), "{err}");
    let bad = [
        UpscaleOptions {
            tile: Some(30),
            ..opts.clone()
        },
        UpscaleOptions {
            overlap: 6,
            ..opts.clone()
        },
        UpscaleOptions {
            overlap: 32,
            ..opts.clone()
        },
        UpscaleOptions {
            roi: Some(Rect {
                x: 15,
                y: 0,
                width: 6,
                height: 4,
            }),
            ..opts.clone()
        },
        UpscaleOptions {
            roi: Some(Rect {
                x: 0,
                y: 0,
                width: 0,
                height: 4,
            }),
            ..opts.clone()
        },
    ];
    for o in bad {
        let err = upscale(&nets, &b, &lr, h, w, &o, &mut never_cancel())
            .err()
            .unwrap();
        assert!(matches!(err, Error::InvalidArgument(_)), "{o:?}: {err}");
    }
    let err = upscale(&nets, &b, &lr[..10], h, w, &opts, &mut never_cancel())
        .err()
        .unwrap();
    assert!(matches!(err, Error::InvalidArgument(_)));
}

#[test]
fn default_tile_fits_the_budget() {
    let (_t, b, nets) = common::sd_model();
    let big = f2idiff::pipeline::auto_tile(&nets, &b, 512, 512, 1 << 30).unwrap();
    let small = f2idiff::pipeline::auto_tile(&nets, &b, 512, 512, 4 << 20).unwrap();
    assert!(big > small, "{big} vs {small}");
    assert_eq!(small % 8, 0);
}

#[test]
fn a_model_declared_tile_caps_the_default_tile() {
    let (_t, b, mut nets) = common::sd_model();
    let free = f2idiff::pipeline::auto_tile(&nets, &b, 512, 512, 1 << 30).unwrap();
    nets.configs.pipeline.tile = Some(96);
    assert!(free > 96, "{free}");
    assert_eq!(
        f2idiff::pipeline::auto_tile(&nets, &b, 512, 512, 1 << 30).unwrap(),
        96
    );
    // the budget still wins when the declared tile does not fit it (down to the smallest, 64)
    assert_eq!(
        f2idiff::pipeline::auto_tile(&nets, &b, 512, 512, 1).unwrap(),
        64
    );
    // and an explicit tile (or the whole image) still overrides the model's
    let lr = image(40, 40);
    let opts = |tile| UpscaleOptions {
        tile,
        overlap: 16,
        ..UpscaleOptions::default()
    };
    let auto = upscale(&nets, &b, &lr, 40, 40, &opts(None), &mut never_cancel()).unwrap();
    let whole = upscale(&nets, &b, &lr, 40, 40, &opts(Some(0)), &mut never_cancel()).unwrap();
    assert_eq!((auto.tiles, whole.tiles), (4, 1));
}
