//! The whole-image pipeline (DESIGN.md §1) against diffusers + transformers + peft composed the
//! same way (calib/reference/make_pipeline_goldens.py) on real photo crops: the u8 output must be
//! within 2 levels everywhere and 0.02 levels on average (the reference itself moves up to 1
//! level between f32 and f64), for every colour fix and for a size that needs the reflect pad.

mod common;

use f2idiff::backend::cpu::CpuBackend;
use f2idiff::convert::{PackOptions, pack_folder};
use f2idiff::engine::Networks;
use f2idiff::pack::Pack;
use f2idiff::pipeline::{ColorFix, UpscaleOptions, image, upscale};
use std::path::Path;
use std::sync::Arc;

const DIR: &str = "tests/data/pipeline";

fn read_png(path: &Path) -> (Vec<u8>, usize, usize) {
    let img = ::image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    (img.into_raw(), w, h)
}

#[test]
fn whole_image_pipeline_matches_the_reference() {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/cases.json")).unwrap())
            .unwrap();
    let backend = CpuBackend::new(0).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut loaded: Vec<(String, Networks<CpuBackend>)> = Vec::new();
    for case in cases.as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        let model = case["model"].as_str().unwrap();
        if !loaded.iter().any(|(m, _)| m == model) {
            let out = tmp.path().join(format!("{model}.f2i"));
            pack_folder(
                &Path::new("tests/data/engine").join(model),
                &out,
                &PackOptions::default(),
            )
            .unwrap();
            let nets = Networks::load(&backend, Arc::new(Pack::open(&out).unwrap()), 1.0).unwrap();
            loaded.push((model.to_string(), nets));
        }
        let nets = &loaded.iter().find(|(m, _)| m == model).unwrap().1;
        assert_eq!(
            nets.configs.pipeline.scale as u64,
            case["scale"].as_u64().unwrap()
        );

        let (lr, w, h) = read_png(&Path::new(DIR).join(case["lr"].as_str().unwrap()));
        let (want, sw, sh) = read_png(&Path::new(DIR).join(case["sr"].as_str().unwrap()));
        let fix = ColorFix::from_name(case["color_fix"].as_str().unwrap()).unwrap();
        // The path the CLI ships: `upscale` with the whole image as one tile.
        let opts = UpscaleOptions {
            tile: Some(0),
            color_fix: fix,
            ..Default::default()
        };
        let lr01 = image::rgb8_to_planar(&lr, w, h);
        let out = upscale(nets, &backend, &lr01, h, w, &opts, &mut |_, _| true).unwrap();
        assert_eq!((out.width, out.height), (sw, sh), "{name}: output size");
        let (sr, peak) = (out.data, out.arena_bytes / 4);
        let got = image::planar_to_rgb8(&sr, sw, sh);
        assert_eq!(got.len(), want.len(), "{name}: output size");
        let diffs: Vec<u32> = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (*a as i32 - *b as i32).unsigned_abs())
            .collect();
        let max = *diffs.iter().max().unwrap();
        let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
        eprintln!(
            "{name:<22} {w}×{h} → {sw}×{sh}: max |Δ| {max} levels, mean |Δ| {mean:.5}, arena {:.1} MiB",
            peak as f64 * 4.0 / (1 << 20) as f64
        );
        assert!(max <= 2 && mean <= 0.02, "{name}: max {max}, mean {mean}");
    }
}
