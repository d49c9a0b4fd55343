//! BasicSR PSNR / SSIM on the Y channel (crop_border 4) against the numpy reference, and GMSD
//! against `piq.gmsd` (piq 0.8.0, float64), both from `calib/reference/make_pipeline_goldens.py`
//! (`make_eval`), on three 64×64 HR / SR pairs.

use f2idiff::pipeline::metrics::{Rgb8, gmsd, psnr_y, ssim_y};
use std::path::Path;

const DIR: &str = "tests/data/pipeline";
const CROP_BORDER: usize = 4;
const TOL: f64 = 1e-6;
/// GMSD is computed in f64 like piq's float64 run; only summation order differs.
const TOL_GMSD: f64 = 1e-12;
const NAMES: [&str; 3] = ["astronaut", "chelsea", "coffee"];

fn read_png(path: &Path) -> (Vec<u8>, usize, usize) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    (img.into_raw(), w, h)
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/eval_expected.json")).unwrap())
        .unwrap()
}

/// The HR and SR images of one eval pair (same size, checked).
fn pair(name: &str) -> (Vec<u8>, Vec<u8>, usize, usize) {
    let (hr, w, h) = read_png(&Path::new(DIR).join("eval/hr").join(format!("{name}.png")));
    let (sr, ws, hs) = read_png(&Path::new(DIR).join("eval/sr").join(format!("{name}.png")));
    assert_eq!((w, h), (ws, hs), "{name}: HR and SR sizes differ");
    (hr, sr, w, h)
}

fn rgb(data: &[u8], width: usize, height: usize) -> Rgb8<'_> {
    Rgb8 {
        data,
        width,
        height,
    }
}

/// The `rows × cols` window of an interleaved RGB image starting at (top, left).
fn window(data: &[u8], width: usize, top: usize, left: usize, rows: usize, cols: usize) -> Vec<u8> {
    (top..top + rows)
        .flat_map(|r| data[(r * width + left) * 3..(r * width + left + cols) * 3].to_vec())
        .collect()
}

/// 3×3 box blur with clamped edges, rounded back to u8.
fn box_blur(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for r in 0..h {
        for c in 0..w {
            for ch in 0..3 {
                let mut s = 0u32;
                for dr in [-1isize, 0, 1] {
                    for dc in [-1isize, 0, 1] {
                        let rr = (r as isize + dr).clamp(0, h as isize - 1) as usize;
                        let cc = (c as isize + dc).clamp(0, w as isize - 1) as usize;
                        s += u32::from(data[(rr * w + cc) * 3 + ch]);
                    }
                }
                out[(r * w + c) * 3 + ch] = ((s as f64) / 9.0).round() as u8;
            }
        }
    }
    out
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

#[test]
fn gmsd_matches_piq() {
    let expected = expected();
    let mut max_d = 0.0f64;
    let mut check = |name: &str, key: &str, got: f64| {
        let want = expected[name][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}.{key} missing from eval_expected.json"));
        let d = (got - want).abs();
        eprintln!("{name:10} {key:10}: ours {got:.17} piq {want:.17} |diff| {d:.3e}");
        assert!(
            d <= TOL_GMSD,
            "{name} {key}: {got} vs {want} (|diff| {d:e} > {TOL_GMSD:e})"
        );
        max_d = max_d.max(d);
    };
    let mut sum = 0.0f64;
    for name in NAMES {
        let (hr, sr, w, h) = pair(name);
        let g = gmsd(&rgb(&sr, w, h), &rgb(&hr, w, h), CROP_BORDER).unwrap();
        assert_eq!(
            g,
            gmsd(&rgb(&hr, w, h), &rgb(&sr, w, h), CROP_BORDER).unwrap()
        );
        check(name, "gmsd", g);
        sum += g;
        // 57 rows × 56 columns at (4, 4): piq pads both sides when one is odd.
        let (rows, cols) = (57, 56);
        let (hw, sw) = (
            window(&hr, w, CROP_BORDER, CROP_BORDER, rows, cols),
            window(&sr, w, CROP_BORDER, CROP_BORDER, rows, cols),
        );
        let g = gmsd(&rgb(&sw, cols, rows), &rgb(&hw, cols, rows), 0).unwrap();
        check(name, "gmsd_57x56", g);
    }
    check("mean", "gmsd", sum / NAMES.len() as f64);
    eprintln!("max |gmsd - piq|: {max_d:.3e}");
}

#[test]
fn gmsd_is_zero_for_identical_images_and_grows_with_blur() {
    for name in NAMES {
        let (hr, sr, w, h) = pair(name);
        let hr_img = rgb(&hr, w, h);
        assert_eq!(gmsd(&hr_img, &hr_img, CROP_BORDER).unwrap(), 0.0);
        assert_eq!(gmsd(&hr_img, &hr_img, 0).unwrap(), 0.0);
        // Blurring the HR once, then twice, moves it further from the HR.
        let b1 = box_blur(&hr, w, h);
        let b2 = box_blur(&b1, w, h);
        let g1 = gmsd(&rgb(&b1, w, h), &hr_img, CROP_BORDER).unwrap();
        let g2 = gmsd(&rgb(&b2, w, h), &hr_img, CROP_BORDER).unwrap();
        eprintln!("{name:10} gmsd(blur(hr), hr) {g1:.5}, gmsd(blur²(hr), hr) {g2:.5}");
        assert!(0.0 < g1 && g1 < g2, "{name}: {g1} {g2}");
        // Blurring the (already soft, bicubic) SR makes it worse too; coffee's SR carries noise,
        // which a blur partly removes, so it is left out.
        if name != "coffee" {
            let g0 = gmsd(&rgb(&sr, w, h), &hr_img, CROP_BORDER).unwrap();
            let gb = gmsd(&rgb(&box_blur(&sr, w, h), w, h), &hr_img, CROP_BORDER).unwrap();
            eprintln!("{name:10} gmsd(sr, hr) {g0:.5}, gmsd(blur(sr), hr) {gb:.5}");
            assert!(gb > g0, "{name}: {gb} <= {g0}");
        }
    }
}

#[test]
fn gmsd_rejects_mismatched_sizes() {
    let (hr, _, w, h) = pair("astronaut");
    let small = window(&hr, w, 0, 0, h - 1, w);
    let e = gmsd(&rgb(&small, w, h - 1), &rgb(&hr, w, h), CROP_BORDER).unwrap_err();
    assert!(e.to_string().contains("must match"), "{e}");
    let e = gmsd(&rgb(&hr, w, h), &rgb(&hr, w, h), w / 2).unwrap_err();
    assert!(e.to_string().contains("leaves 0x0"), "{e}");
}
