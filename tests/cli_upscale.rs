//! `f2idiff upscale`: the CLI's output equals the reference pipeline's PNG; 16-bit in gives
//! 16-bit out; folder mode skips and reports failures; bad input is one clear line on stderr,
//! a non-zero exit and no output file.

mod common;

use common::skipped;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const LR: &str = "tests/data/pipeline/sd_astronaut_wavelet.lr.png";
const SR: &str = "tests/data/pipeline/sd_astronaut_wavelet.sr.png";

fn f2idiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_f2idiff"))
        .args(args)
        .output()
        .unwrap()
}

fn model(dir: &Path) -> String {
    let out = dir.join("sd.f2i");
    let o = f2idiff(&["pack", "tests/data/engine/sd", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.to_str().unwrap().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn whole_image_output_equals_the_reference_png() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    let out = tmp.path().join("sr.png");
    let o = f2idiff(&[
        "upscale",
        LR,
        "-o",
        out.to_str().unwrap(),
        "-m",
        &m,
        "--tile",
        "0",
        "-s",
        "4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = image::open(&out).unwrap().to_rgb8();
    let want = image::open(SR).unwrap().to_rgb8();
    assert_eq!(got.dimensions(), want.dimensions());
    let d: Vec<i32> = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .collect();
    let max = *d.iter().max().unwrap();
    let mean = d.iter().sum::<i32>() as f64 / d.len() as f64;
    assert!(max <= 2 && mean <= 0.02, "max {max} mean {mean}");
    // Tiled, with an ROI: the right size.
    let zoom = tmp.path().join("zoom.png");
    let o = f2idiff(&[
        "upscale",
        LR,
        "-o",
        zoom.to_str().unwrap(),
        "-m",
        &m,
        "--tile",
        "32",
        "--overlap",
        "8",
        "--roi",
        "4,6,10,8",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(image::open(&zoom).unwrap().to_rgb8().dimensions(), (40, 32));
}

#[test]
fn sixteen_bit_in_gives_sixteen_bit_out() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    let lr8 = image::open(LR).unwrap().to_rgb8();
    let wide: Vec<u16> = lr8.as_raw().iter().map(|&v| v as u16 * 257).collect();
    let lr16 = image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(lr8.width(), lr8.height(), wide)
        .unwrap();
    let input = tmp.path().join("lr16.png");
    lr16.save(&input).unwrap();
    let out = tmp.path().join("sr16.png");
    let o = f2idiff(&[
        "upscale",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-m",
        &m,
        "--tile",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&out).unwrap();
    assert!(
        matches!(img, image::DynamicImage::ImageRgb16(_)),
        "{:?}",
        img.color()
    );
    // Same pixels as the 8-bit reference, to within the 8-bit rounding.
    let want = image::open(SR).unwrap().to_rgb8();
    let got = img.to_rgb16();
    let max = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| (*a as f64 / 257.0 - *b as f64).abs())
        .fold(0.0, f64::max);
    assert!(max <= 2.0, "{max}");
}

#[test]
fn folder_mode_skips_and_reports_bad_files() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(LR, input.join("a.png")).unwrap();
    let bytes = std::fs::read(LR).unwrap();
    std::fs::write(input.join("b_truncated.png"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(input.join("notes.txt"), "not an image").unwrap();
    let out = tmp.path().join("out");
    let o = f2idiff(&[
        "upscale",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-m",
        &m,
        "--tile",
        "0",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("b_truncated.png") && err.contains("1 of 2 images"),
        "{err}"
    );
    assert_eq!(files(&out), vec![out.join("a.png")]);
}

#[test]
fn bad_input_is_one_line_and_leaves_no_file() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    let bytes = std::fs::read(LR).unwrap();
    let truncated = tmp.path().join("truncated.png");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let zero = tmp.path().join("zero.png");
    std::fs::write(&zero, zero_size_png()).unwrap();
    let outdir = tmp.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("x.png");
    let out_s = out.to_str().unwrap();
    let bad_ext = outdir.join("x.bmpx");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![truncated.to_str().unwrap(), "-o", out_s, "-m", &m],
            "truncated.png",
        ),
        (
            vec![zero.to_str().unwrap(), "-o", out_s, "-m", &m],
            "zero.png",
        ),
        (
            vec!["tests/data/nope.png", "-o", out_s, "-m", &m],
            "nope.png",
        ),
        (vec![LR, "-o", out_s, "-m", &m, "-s", "3"], "×4"),
        (vec![LR, "-o", out_s, "-m", &m, "--roi", "20,0,10,4"], "ROI"),
        (
            vec![LR, "-o", "/nonexistent-dir/x.png", "-m", &m],
            "/nonexistent-dir/x.png",
        ),
        (
            vec![LR, "-o", bad_ext.to_str().unwrap(), "-m", &m],
            "unknown image type",
        ),
        (
            vec![LR, "-o", out_s, "-m", "tests/data/pack/tiny/f2idiff.json"],
            "not an f2idiff pack",
        ),
        (
            vec![LR, "-o", out_s, "-m", &m, "--device", "cuda:0"],
            "CUDA",
        ),
    ];
    for (args, culprit) in cases {
        let mut full = vec!["upscale"];
        full.extend(&args);
        let o = f2idiff(&full);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(culprit),
            "{args:?}: {err}"
        );
        assert!(
            files(&outdir).is_empty(),
            "{args:?} left {:?}",
            files(&outdir)
        );
    }
}

/// A PNG whose header claims 0×0 pixels (valid chunk CRCs).
fn zero_size_png() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = vec![0u8; 8];
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn eval_prints_basicsr_psnr_and_ssim() {
    if skipped() {
        return;
    }
    let o = f2idiff(&[
        "eval",
        "--sr",
        "tests/data/pipeline/eval/sr",
        "--hr",
        "tests/data/pipeline/eval/hr",
        "--crop-border",
        "4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/data/pipeline/eval_expected.json").unwrap(),
    )
    .unwrap();
    for (name, row) in [
        ("astronaut", "astronaut.png"),
        ("chelsea", "chelsea.png"),
        ("coffee", "coffee.png"),
        ("mean", "mean of 3"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("{row} in {text}"));
        let nums: Vec<f64> = line[row.len()..]
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            (nums[0] - want[name]["psnr_y"].as_f64().unwrap()).abs() < 1e-4,
            "{line}"
        );
        assert!(
            (nums[1] - want[name]["ssim_y"].as_f64().unwrap()).abs() < 1e-4,
            "{line}"
        );
        assert!(
            (nums[2] - want[name]["gmsd"].as_f64().unwrap()).abs() < 1e-4,
            "{line}"
        );
    }
    let o = f2idiff(&[
        "eval",
        "--sr",
        "tests/data/pipeline/eval/sr",
        "--hr",
        "tests/data/pipeline",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("astronaut.png"), "{}", stderr(&o));
}

/// `--lora-scale` on a pack made with `--lora runtime`: 1 gives the merged pack's image (within
/// a level: merged at pack time vs at load), 0 a different one (the base model); a merged pack
/// refuses any scale but 1 with one error line and no file.
#[test]
fn lora_scale_for_runtime_packs() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let merged = model(tmp.path());
    let runtime = tmp.path().join("runtime.f2i");
    let o = f2idiff(&[
        "pack",
        "tests/data/engine/sd",
        "-o",
        runtime.to_str().unwrap(),
        "--lora",
        "runtime",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = |m: &str, scale: &str, name: &str| {
        let out = tmp.path().join(name);
        let o = f2idiff(&[
            "upscale",
            LR,
            "-o",
            out.to_str().unwrap(),
            "-m",
            m,
            "--tile",
            "0",
            "--device",
            "cpu",
            "--lora-scale",
            scale,
        ]);
        (o, out)
    };
    let pixels = |p: &Path| ::image::open(p).unwrap().to_rgb8().into_raw();
    let (o, merged_png) = run(&merged, "1", "merged.png");
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, full) = run(runtime.to_str().unwrap(), "1", "full.png");
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, base) = run(runtime.to_str().unwrap(), "0", "base.png");
    assert!(o.status.success(), "{}", stderr(&o));
    let max = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    assert!(max(&pixels(&full), &pixels(&merged_png)) <= 1);
    assert!(
        max(&pixels(&base), &pixels(&full)) > 0,
        "scale 0 changed nothing"
    );
    let (o, refused) = run(&merged, "0.5", "refused.png");
    let err = stderr(&o);
    assert!(!o.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--lora-scale 0.5") && err.contains("merged"),
        "{err}"
    );
    assert!(!refused.exists());
}

/// `calibrate` on a model that fits f16 writes a copy with no pre-scales and says so; the copy
/// upscales to the same image; it refuses to overwrite its input and leaves nothing behind
/// when the images are missing.
#[test]
fn calibrate_writes_a_prescaled_copy() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    let out = tmp.path().join("calibrated.f2i");
    let o = f2idiff(&["calibrate", "-m", &m, LR, "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("0 f16 pre-scales"), "{text}");
    let run = |model: &str, name: &str| {
        let png = tmp.path().join(name);
        let o = f2idiff(&[
            "upscale",
            LR,
            "-o",
            png.to_str().unwrap(),
            "-m",
            model,
            "--device",
            "cpu",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(png).unwrap()
    };
    assert_eq!(run(&m, "a.png"), run(out.to_str().unwrap(), "b.png"));

    let o = f2idiff(&["calibrate", "-m", &m, LR, "-o", &m]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("new file"), "{}", stderr(&o));
    let missing = tmp.path().join("missing.f2i");
    let o = f2idiff(&[
        "calibrate",
        "-m",
        &m,
        "no-such.png",
        "-o",
        missing.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(!missing.exists());
}

#[test]
fn ensemble_is_checked_and_averages_mirrored_copies() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    let run = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let mut args = vec!["upscale", LR, "-o", out.to_str().unwrap(), "-m", &m];
        args.extend(extra);
        (f2idiff(&args), out)
    };
    let png = |o: &(Output, PathBuf)| {
        assert!(o.0.status.success(), "{}", stderr(&o.0));
        image::open(&o.1).unwrap().to_rgb8().into_raw()
    };
    // the test pack declares no ensemble: the default is one copy
    let default = png(&run("default.png", &[]));
    assert_eq!(png(&run("one.png", &["--ensemble", "1"])), default);
    assert_ne!(png(&run("two.png", &["--ensemble", "2"])), default);
    for bad in ["3", "0", "x"] {
        let (o, out) = run("bad.png", &["--ensemble", bad]);
        assert!(!o.status.success(), "--ensemble {bad} succeeded");
        assert!(stderr(&o).contains("--ensemble"), "{}", stderr(&o));
        assert!(!out.exists(), "--ensemble {bad} left a file");
    }
}
