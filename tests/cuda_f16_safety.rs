//! f16 safety on a model built to overflow f16 in a known layer: the SD-style test model with
//! its VAE decoder's first upsampler convolution (`decoder.up_blocks.0.upsamplers.0.conv`)
//! multiplied by 2¹⁶. In f32 that is still a good model (the GroupNorms that follow undo the
//! factor; the CPU run is the reference), but in f16 storage that convolution's output is far
//! beyond ±65504: Inf, then NaN through the next GroupNorm.
//! - Without a fallback the f16 run is an error (never a silently broken image).
//! - With the f32 fallback the tile runs again in f32, is counted, and matches the CPU: the
//!   net for any tile the pre-scales do not cover.
//! - `calibrate` finds that layer from f32 ranges on the CPU and stores its pre-scale; with it
//!   the f16 run is clean (no rerun, no fallback needed) and matches the f32 CPU run.
//! - On the CPU (f32) applying the pre-scales changes nothing beyond rounding: the scale
//!   bookkeeping (convolution epilogues, GroupNorm ε, residual adds, concatenations) is exact.
//!
//! Runs the CUDA backend on the CPU execution harness, and on a GPU when one is present.
#![cfg(feature = "cuda-sim")]

mod common;
mod cuda_common;

use common::copy_dir;
use cuda_common::{psnr, rel_l2, sim_backend, skip_sim};
use f2idiff::Error;
use f2idiff::backend::Backend;
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::backend::cuda::Precision;
use f2idiff::calibrate::{Sample, prescales, ranges, write_prescaled};
use f2idiff::convert::{LoraChoice, PackOptions, pack_folder};
use f2idiff::engine::Networks;
use f2idiff::pack::Pack;
use f2idiff::pipeline::{
    ColorFix, F32Fallback, UpscaleOptions, Upscaled, image, upscale, upscale_checked,
};
use f2idiff::tensor::DType;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::path::Path;
use std::sync::Arc;

/// The layer made to overflow, and its factor.
const LAYER: &str = "decoder.up_blocks.0.upsamplers.0.conv";
const FACTOR: f32 = 65536.0;

/// The SD-style test model with [`LAYER`]'s weight and bias × [`FACTOR`], packed in f32.
fn overflow_model(dir: &Path) -> Arc<Pack> {
    let src = dir.join("model");
    copy_dir(Path::new("tests/data/engine/sd"), &src);
    let vae = src.join("vae/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&vae).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut scaled = 0;
    for (name, t) in st.tensors() {
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        let mut data = t.data().to_vec();
        if name.starts_with(LAYER) {
            for c in data.chunks_exact_mut(4) {
                let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * FACTOR;
                c.copy_from_slice(&v.to_le_bytes());
            }
            scaled += 1;
        }
        tensors.push((name, t.shape().to_vec(), data));
    }
    assert_eq!(scaled, 2, "{LAYER}: weight and bias");
    let views = tensors.iter().map(|(n, s, b)| {
        (
            n.clone(),
            TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
        )
    });
    std::fs::write(&vae, safetensors::serialize(views, None).unwrap()).unwrap();
    let out = dir.join("overflow.f2i");
    let opts = PackOptions {
        dtype: DType::F32,
        lora: LoraChoice::Merge,
        lora_alpha: None,
    };
    pack_folder(&src, &out, &opts).unwrap();
    Arc::new(Pack::open(&out).unwrap())
}

fn lr() -> (Vec<f32>, usize, usize) {
    let img = ::image::open("tests/data/pipeline/sd_coffee_wavelet.lr.png")
        .unwrap()
        .to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    (image::rgb8_to_planar(&img.into_raw(), w, h), w, h)
}

fn opts() -> UpscaleOptions {
    UpscaleOptions {
        tile: Some(0),
        color_fix: ColorFix::Wavelet,
        ..Default::default()
    }
}

fn run<B: Backend>(
    b: &B,
    nets: &Networks<B>,
    fb: Option<&F32Fallback<B>>,
) -> f2idiff::Result<Upscaled> {
    let (lr, w, h) = lr();
    upscale_checked(nets, b, fb, &lr, h, w, &opts(), &mut |_, _| true)
}

fn rgb8(u: &Upscaled) -> Vec<u8> {
    image::planar_to_rgb8(&u.data, u.width, u.height)
}

fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap()
}

#[test]
fn an_f16_overflow_is_an_error_without_fallback_and_rerun_in_f32_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let pack = overflow_model(dir.path());
    let cpu = CpuBackend::new(1).unwrap();
    let want = run(
        &cpu,
        &Networks::load(&cpu, pack.clone(), 1.0).unwrap(),
        None,
    )
    .unwrap();
    let want = rgb8(&want);

    if !skip_sim() {
        let twin = sim_backend(Precision::F32);
        overflow_then_rerun("cuda-sim", &sim_backend(Precision::F16), twin, &pack, &want);
    }
    #[cfg(feature = "cuda")]
    if let (Some(f16), Some(f32)) = (
        cuda_common::gpu_backend(Precision::F16),
        cuda_common::gpu_backend(Precision::F32),
    ) {
        overflow_then_rerun("gpu", &f16, f32, &pack, &want);
    }
}

/// On `f16`: an error without a fallback; with `f32` as the fallback, one rerun and the CPU's
/// image (`want`).
fn overflow_then_rerun<B: Backend>(on: &str, f16: &B, f32: B, pack: &Arc<Pack>, want: &[u8]) {
    let nets = Networks::load(f16, pack.clone(), 1.0).unwrap();
    let (lr, w, h) = lr();
    match upscale(&nets, f16, &lr, h, w, &opts(), &mut |_, _| true) {
        Err(Error::Numeric(msg)) => assert!(msg.contains("not finite"), "{on}: {msg}"),
        Err(e) => panic!("{on}: expected a numeric error, got {e}"),
        Ok(_) => panic!("{on}: the overflowing model ran clean in f16: the test model is wrong"),
    }
    let fallback = F32Fallback::new(f32, pack.clone());
    let got = run(f16, &nets, Some(&fallback)).unwrap();
    assert_eq!((got.tiles, got.f32_reruns), (1, 1), "{on}");
    let d = max_diff(&rgb8(&got), want);
    assert!(d <= 2, "{on}: f32 rerun vs CPU: max |Δ| {d} levels");
}

/// The overflowing model calibrated on the test photo: its pre-scales and the calibrated pack.
fn calibrated(
    dir: &Path,
    pack: &Arc<Pack>,
) -> (std::collections::BTreeMap<String, u32>, Arc<Pack>) {
    let cpu = CpuBackend::new(1).unwrap();
    let nets = Networks::load_with(&cpu, pack.clone(), 1.0, false).unwrap();
    let (lr, w, h) = lr();
    let sample = Sample::centre(&lr, w, h, 128);
    let r = ranges(&nets, &cpu, &[sample]).unwrap();
    let scales = prescales(&r, 3);
    let out = dir.join("calibrated.f2i");
    write_prescaled(pack, scales.clone(), &out).unwrap();
    (scales, Arc::new(Pack::open(&out).unwrap()))
}

#[test]
fn calibrated_prescales_keep_f16_finite_and_change_nothing_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    let pack = overflow_model(dir.path());
    let (scales, calibrated) = calibrated(dir.path(), &pack);
    let layer = format!("vae.{LAYER}");
    assert!(
        scales.get(&layer).is_some_and(|&k| k >= 2),
        "calibration missed {layer}: {scales:?}"
    );
    eprintln!("pre-scales: {scales:?}");

    // f32 on the CPU: with and without the pre-scales.
    let cpu = CpuBackend::new(1).unwrap();
    let plain = run(
        &cpu,
        &Networks::load(&cpu, calibrated.clone(), 1.0).unwrap(),
        None,
    )
    .unwrap();
    let nets = Networks::load_with(&cpu, calibrated.clone(), 1.0, true).unwrap();
    let scaled = run(&cpu, &nets, None).unwrap();
    let rel = rel_l2(&scaled.data, &plain.data);
    assert!(
        rel < 1e-5,
        "pre-scales changed the f32 result: rel L2 {rel:e}"
    );
    let want = rgb8(&plain);
    assert!(max_diff(&rgb8(&scaled), &want) <= 1);

    if !skip_sim() {
        clean_in_f16("cuda-sim", &sim_backend(Precision::F16), &calibrated, &want);
    }
    #[cfg(feature = "cuda")]
    if let Some(f16) = cuda_common::gpu_backend(Precision::F16) {
        clean_in_f16("gpu", &f16, &calibrated, &want);
    }
}

/// f16 storage applies the pre-scales by default; no fallback is given, so any overflow would
/// be an error. The image matches the f32 CPU run (`want`).
fn clean_in_f16<B: Backend>(on: &str, f16: &B, calibrated: &Arc<Pack>, want: &[u8]) {
    let nets = Networks::load(f16, calibrated.clone(), 1.0).unwrap();
    let got = run(f16, &nets, None).unwrap();
    assert_eq!(got.f32_reruns, 0, "{on}");
    let db = psnr(&rgb8(&got), want);
    eprintln!("{on}: calibrated f16 vs f32 CPU: PSNR {db:.1} dB");
    assert!(db >= 40.0, "{on}: calibrated f16: PSNR {db:.1} dB");
}
