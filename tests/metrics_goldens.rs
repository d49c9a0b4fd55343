//! BasicSR PSNR / SSIM on the Y channel (crop_border 4) against the numpy reference
//! (`calib/reference/make_pipeline_goldens.py`, `make_eval`), on three 64×64 HR / SR pairs.

use f2idiff::pipeline::metrics::{Rgb8, psnr_y, ssim_y};
use std::path::Path;

const DIR: &str = "tests/data/pipeline";
const CROP_BORDER: usize = 4;
const TOL: f64 = 1e-6;

fn read_png(path: &Path) -> (Vec<u8>, usize, usize) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    (img.into_raw(), w, h)
}

#[test]
fn psnr_and_ssim_match_the_basicsr_reference() {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DIR}/eval_expected.json")).unwrap(),
    )
    .unwrap();
    let names = ["astronaut", "chelsea", "coffee"];
    let (mut max_dp, mut max_ds) = (0.0f64, 0.0f64);
    let (mut sum_p, mut sum_s) = (0.0f64, 0.0f64);
    let check = |name: &str, key: &str, got: f64| -> f64 {
        let want = expected[name][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}.{key} missing from eval_expected.json"));
        let d = (got - want).abs();
        eprintln!("{name:10} {key}: ours {got:.15} reference {want:.15} |diff| {d:.3e}");
        assert!(
            d <= TOL,
            "{name} {key}: {got} vs {want} (|diff| {d:e} > {TOL:e})"
        );
        d
    };
    for name in names {
        let (hr, w, h) = read_png(&Path::new(DIR).join("eval/hr").join(format!("{name}.png")));
        let (sr, ws, hs) = read_png(&Path::new(DIR).join("eval/sr").join(format!("{name}.png")));
        assert_eq!((w, h), (ws, hs), "{name}: HR and SR sizes differ");
        let hr = Rgb8 {
            data: &hr,
            width: w,
            height: h,
        };
        let sr = Rgb8 {
            data: &sr,
            width: w,
            height: h,
        };
        let p = psnr_y(&sr, &hr, CROP_BORDER).unwrap();
        let s = ssim_y(&sr, &hr, CROP_BORDER).unwrap();
        // Both metrics are symmetric in their arguments.
        assert_eq!(p, psnr_y(&hr, &sr, CROP_BORDER).unwrap());
        assert!((s - ssim_y(&hr, &sr, CROP_BORDER).unwrap()).abs() < 1e-14);
        max_dp = max_dp.max(check(name, "psnr_y", p));
        max_ds = max_ds.max(check(name, "ssim_y", s));
        sum_p += p;
        sum_s += s;
    }
    let n = names.len() as f64;
    max_dp = max_dp.max(check("mean", "psnr_y", sum_p / n));
    max_ds = max_ds.max(check("mean", "ssim_y", sum_s / n));
    eprintln!("max |diff|: psnr_y {max_dp:.3e} dB, ssim_y {max_ds:.3e}");
}
