//! The C interface from C and C++: `tests/c/capi_test.c` (every argument check, cancel, pixel
//! formats, threads) and the examples in `c_examples/`, compiled with `-Wall -Wextra -Werror`
//! against `include/f2idiff.h` and the cdylib this build produced, run under valgrind (leaks
//! and memory errors fail the test) or, without valgrind, AddressSanitizer. The default RGB8
//! result must equal the CLI's PNG byte for byte.

mod common;

use common::skipped;
use f2idiff::backend::cpu::kernels::blas::{openblas_coretype, openblas_coretype_named};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn f2idiff(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_f2idiff"));
    same_kernels(&mut cmd);
    cmd.args(args).output().unwrap()
}

/// The C programs' output is compared with the CLI's byte for byte, so both must run the same
/// CPU kernels. Valgrind's CPU has no AVX-512, so a system BLAS (which picks its kernels from
/// the CPU it sees) would round differently under valgrind than in the native CLI run: with
/// valgrind, both sides use the gemm crate's kernels (`F2IDIFF_BLAS=off`). Without it, the CLI
/// names OpenBLAS's kernels from the CPU's features when `OPENBLAS_CORETYPE` is unset or empty,
/// which the library cannot (src/bin/f2idiff/openblas.rs): both sides get that value.
fn same_kernels(cmd: &mut Command) {
    static CHECK: std::sync::OnceLock<Checker> = std::sync::OnceLock::new();
    if *CHECK.get_or_init(checker) == Checker::Valgrind {
        cmd.env("F2IDIFF_BLAS", "off");
    } else if !openblas_coretype_named()
        && let Some(core) = openblas_coretype()
    {
        cmd.env("OPENBLAS_CORETYPE", core);
    }
}

/// The directory holding the `libf2idiff.so` / `libf2idiff.a` of this build: `cargo test`
/// builds the library target with all its crate types (cdylib and staticlib included) before
/// the test binaries, into `deps/` beside them (unhashed names), so the C programs link
/// against the same code the Rust tests exercise.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/deps
    let dir = exe.parent().unwrap().to_path_buf();
    assert!(
        dir.join("libf2idiff.so").is_file(),
        "{} has no libf2idiff.so: run through `cargo test`",
        dir.display()
    );
    dir
}

fn works(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// How the C programs run: under valgrind, or built with ASan, or (neither present) plain.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Checker {
    Valgrind,
    Asan,
    Plain,
}

/// `F2IDIFF_C_CHECKER=valgrind|asan|plain` chooses; by default the strongest available.
fn checker() -> Checker {
    match std::env::var("F2IDIFF_C_CHECKER").as_deref() {
        Ok("valgrind") => return Checker::Valgrind,
        Ok("asan") => return Checker::Asan,
        Ok("plain") => return Checker::Plain,
        _ => {}
    }
    if works("valgrind", "--version") {
        Checker::Valgrind
    } else if works("cc", "-fsanitize=address") || asan_links() {
        Checker::Asan
    } else {
        eprintln!("NOTE: neither valgrind nor AddressSanitizer here: C tests run unchecked");
        Checker::Plain
    }
}

fn asan_links() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    Command::new("cc")
        .args(["-fsanitize=address", src.to_str().unwrap(), "-o"])
        .arg(dir.path().join("a"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Compiles `sources` with `compiler` into `out`, warnings as errors, linked to the cdylib.
fn compile(compiler: &str, std: &str, sources: &[&str], out: &Path, check: Checker) {
    let lib = lib_dir();
    let mut cmd = Command::new(compiler);
    cmd.args([std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-O1"])
        .args(["-Iinclude", "-Ic_examples"])
        .args(sources)
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib.display()))
        .arg("-lf2idiff")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lpthread", "-lm", "-ldl"]);
    if check == Checker::Asan {
        cmd.arg("-fsanitize=address");
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{compiler} {sources:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs a compiled C program under the checker; returns its output, asserting success.
fn run_checked(exe: &Path, args: &[&str], check: Checker) -> Output {
    let mut cmd = match check {
        Checker::Valgrind => {
            let mut c = Command::new("valgrind");
            c.args([
                "-q",
                "--error-exitcode=99",
                "--leak-check=full",
                "--show-leak-kinds=definite,indirect",
                "--errors-for-leak-kinds=definite,indirect",
            ])
            .arg(exe)
            // Valgrind runs threads one at a time, where idle rayon workers spinning for work
            // cost minutes; one compute thread per engine keeps the run in seconds.
            .env("RAYON_NUM_THREADS", "1");
            c
        }
        _ => Command::new(exe),
    };
    same_kernels(&mut cmd);
    if check == Checker::Asan {
        cmd.env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0");
    }
    let o = cmd.args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{} ({check:?}) exited {:?}\nstdout:\n{}\nstderr:\n{}",
        exe.display(),
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

struct Fixture {
    dir: tempfile::TempDir,
    model: PathBuf,
    lr_png: PathBuf,
    lr_ppm: PathBuf,
    check: Checker,
}

/// A synthetic model small enough to run the whole C test under valgrind in seconds: an f8
/// VAE, attention only at the U-Net's lower level, four DINOv2 tokens.
fn small_pack(path: &Path) {
    use serde_json::json;
    let configs = (
        json!({"scale": 4, "timestep": 999, "dino_image_size": 28}),
        json!({"block_out_channels": [8, 8, 16, 16], "down_block_types": vec!["DownEncoderBlock2D"; 4],
            "up_block_types": vec!["UpDecoderBlock2D"; 4], "norm_num_groups": 4, "layers_per_block": 1,
            "latent_channels": 4}),
        json!({"block_out_channels": [16, 32], "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "attention_head_dim": 4,
            "cross_attention_dim": 24, "norm_num_groups": 4, "layers_per_block": 1,
            "use_linear_projection": true}),
        json!({"hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 28,
            "patch_size": 14}),
    );
    let header = common::header_for(&configs, f2idiff::tensor::DType::F32);
    let plans = common::required_plans(&header, f2idiff::tensor::DType::F32);
    common::write_synthetic(path, &header, &plans);
}

const LR: &str = "tests/data/pipeline/sd_astronaut_wavelet.lr.png";

fn fixture() -> Option<Fixture> {
    if skipped() {
        return None;
    }
    if !works("cc", "--version") {
        eprintln!("SKIPPED: no C compiler (cc) on this machine");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("small.f2i");
    small_pack(&model);
    // A 12×12 crop of a test photo keeps the valgrind run short.
    let lr = image::open(LR).unwrap().crop_imm(6, 4, 12, 12).to_rgb8();
    let lr_png = dir.path().join("lr.png");
    lr.save(&lr_png).unwrap();
    let lr_ppm = dir.path().join("lr.ppm");
    write_ppm8(&lr_ppm, &lr);
    Some(Fixture {
        model,
        lr_png,
        lr_ppm,
        check: checker(),
        dir,
    })
}

fn write_ppm8(path: &Path, img: &image::RgbImage) {
    let mut bytes = format!("P6\n{} {}\n255\n", img.width(), img.height()).into_bytes();
    bytes.extend_from_slice(img.as_raw());
    std::fs::write(path, bytes).unwrap();
}

/// An 8-bit binary PPM as the C side writes it (`P6\nW H\n255\n` + pixels).
fn read_ppm8(path: &Path) -> image::RgbImage {
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned();
    let fields: Vec<&str> = text.split_ascii_whitespace().take(4).collect();
    assert_eq!((fields[0], fields[3]), ("P6", "255"), "{}", path.display());
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let header = format!("P6\n{w} {h}\n255\n").len();
    image::RgbImage::from_raw(w, h, bytes[header..].to_vec()).unwrap()
}

#[test]
fn c_test_program_passes_and_matches_the_cli() {
    let Some(f) = fixture() else { return };
    eprintln!("C programs run under {:?}", f.check);
    let d = f.dir.path();
    // A pack whose last tensor's bytes are damaged: opening succeeds, the checksum does not.
    let corrupt = d.join("corrupt.f2i");
    let mut bytes = std::fs::read(&f.model).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x5A;
    std::fs::write(&corrupt, bytes).unwrap();

    let exe = d.join("capi_test");
    compile("cc", "-std=c11", &["tests/c/capi_test.c"], &exe, f.check);
    let out_dir = d.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let o = run_checked(
        &exe,
        &[
            f.model.to_str().unwrap(),
            corrupt.to_str().unwrap(),
            f.lr_ppm.to_str().unwrap(),
            out_dir.to_str().unwrap(),
        ],
        f.check,
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("all checks passed"));

    // The same input through the CLI, defaults on both sides: identical pixels.
    let png = d.join("cli.png");
    let o = f2idiff(&[
        "upscale",
        f.lr_png.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "-m",
        f.model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cli = image::open(&png).unwrap().to_rgb8();
    let c = read_ppm8(&out_dir.join("rgb8.ppm"));
    assert_eq!(c.dimensions(), cli.dimensions());
    assert!(
        c.as_raw() == cli.as_raw(),
        "C RGB8 output differs from the CLI's PNG"
    );
}

/// `f2idiff upscale` on `input` with extra arguments; the result's pixels.
fn cli_upscale(f: &Fixture, input: &Path, extra: &[&str]) -> image::RgbImage {
    let png = f.dir.path().join("cli-example.png");
    let mut args = vec![
        "upscale",
        input.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "-m",
        f.model.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = f2idiff(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    image::open(&png).unwrap().to_rgb8()
}

#[test]
fn c_and_cpp_examples_build_run_and_agree_with_the_cli() {
    let Some(f) = fixture() else { return };
    if !works("c++", "--version") {
        eprintln!("SKIPPED: no C++ compiler (c++) on this machine");
        return;
    }
    let d = f.dir.path();
    let upscale = d.join("upscale");
    let zoom = d.join("zoom");
    compile(
        "cc",
        "-std=c11",
        &["c_examples/upscale.c"],
        &upscale,
        f.check,
    );
    compile(
        "c++",
        "-std=c++17",
        &["c_examples/zoom.cpp"],
        &zoom,
        f.check,
    );
    // camera_loop.cpp: device memory on a GPU (scripts/gpu-check.sh runs it there); here it
    // must build, and say it skipped without a GPU.
    let camera = d.join("camera_loop");
    compile(
        "c++",
        "-std=c++17",
        &["c_examples/camera_loop.cpp"],
        &camera,
        f.check,
    );
    if std::env::var("F2I_REQUIRE_GPU").is_err() {
        let o = run_checked(&camera, &[f.model.to_str().unwrap()], f.check);
        let said = String::from_utf8_lossy(&o.stdout);
        assert!(
            said.contains("skipped") || said.contains("equal to the host path"),
            "{said}"
        );
    }

    // upscale.c: the whole image, as the CLI does it.
    let out = d.join("example.ppm");
    let args = [
        f.model.to_str().unwrap(),
        f.lr_ppm.to_str().unwrap(),
        out.to_str().unwrap(),
    ];
    let o = run_checked(&upscale, &args, f.check);
    assert!(String::from_utf8_lossy(&o.stderr).contains("tile 1/1"));
    assert!(read_ppm8(&out).as_raw() == cli_upscale(&f, &f.lr_png, &[]).as_raw());

    // zoom.cpp: an ROI through the C++ wrapper, as the CLI's --roi does it.
    let roi = ["3", "2", "7", "6"];
    let mut args = args.to_vec();
    args.extend_from_slice(&roi);
    run_checked(&zoom, &args, f.check);
    let got = read_ppm8(&out);
    assert_eq!(got.dimensions(), (28, 24));
    assert!(got.as_raw() == cli_upscale(&f, &f.lr_png, &["--roi", "3,2,7,6"]).as_raw());

    // Failures are reported with the status and message, exit code 1, no output file.
    let missing = d.join("missing.f2i");
    let gone = d.join("never.ppm");
    let o = Command::new(&upscale)
        .args([missing.to_str().unwrap(), f.lr_ppm.to_str().unwrap()])
        .arg(&gone)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("I/O error (2)") && err.contains("missing.f2i"),
        "{err}"
    );
    assert!(!gone.exists());
}

/// `scripts/install.sh` + pkg-config + CMake build the examples the way a C++ host would.
#[test]
fn cmake_builds_the_examples_from_an_installed_package() {
    let Some(f) = fixture() else { return };
    if !works("cmake", "--version") || !works("pkg-config", "--version") {
        eprintln!("SKIPPED: cmake or pkg-config is not installed (scripts/test.sh installs them)");
        return;
    }
    let d = f.dir.path();
    let prefix = d.join("prefix");
    let o = Command::new("scripts/install.sh")
        .args(["--prefix", prefix.to_str().unwrap(), "--from"])
        .arg(lib_dir())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pc = prefix.join("lib/pkgconfig");
    let o = Command::new("pkg-config")
        .args(["--modversion", "f2idiff"])
        .env("PKG_CONFIG_PATH", &pc)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        env!("CARGO_PKG_VERSION")
    );
    let build = d.join("build");
    for args in [
        vec!["-S", "c_examples", "-B", build.to_str().unwrap()],
        vec!["--build", build.to_str().unwrap()],
    ] {
        let o = Command::new("cmake")
            .args(&args)
            .env("PKG_CONFIG_PATH", &pc)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "cmake {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let out = d.join("cmake.ppm");
    let mut cmd = Command::new(build.join("upscale"));
    same_kernels(&mut cmd);
    let o = cmd
        .args([f.model.to_str().unwrap(), f.lr_ppm.to_str().unwrap()])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(read_ppm8(&out).as_raw() == cli_upscale(&f, &f.lr_png, &[]).as_raw());
}
