//! The three networks and the single-tile pipeline through the CUDA backend, its kernels
//! executed on the CPU execution harness, against the CPU backend (the oracle) on the same
//! packs and inputs: relative L2 ≤ 1e-5 per network in f32 storage (≤ 1e-2 in f16), and the
//! pipeline's u8 output within 2 levels (f32) / PSNR ≥ 40 dB (f16). The same checks run on a
//! real GPU when one is present (`scripts/gpu-check.sh`: `F2I_REQUIRE_GPU=1` makes a missing GPU
//! a failure, `F2I_SKIP_SIM=1` leaves the harness out there).
#![cfg(feature = "cuda-sim")]

mod common;
mod cuda_common;

use common::load_safetensors;
use cuda_common::{assert_close, psnr, sim_backend, skip_sim};
use f2idiff::backend::Backend;
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::backend::cuda::Precision;
use f2idiff::convert::{LoraChoice, PackOptions, pack_folder};
use f2idiff::engine::{LoraState, Networks, run_planned};
use f2idiff::pack::Pack;
use f2idiff::pipeline::{ColorFix, UpscaleOptions, image, upscale};
use f2idiff::tensor::DType;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

type Golden = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn pack(model: &str, lora: LoraChoice) -> (tempfile::TempDir, Arc<Pack>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.f2i");
    let opts = PackOptions {
        dtype: DType::F32,
        lora,
        lora_alpha: None,
    };
    pack_folder(&Path::new("tests/data/engine").join(model), &out, &opts).unwrap();
    (dir, Arc::new(Pack::open(&out).unwrap()))
}

/// A golden input without its batch dimension.
fn input<'a>(g: &'a Golden, key: &str) -> (Vec<usize>, &'a [f32]) {
    let (shape, v) = g.get(key).unwrap_or_else(|| panic!("golden lacks {key}"));
    (shape[1..].to_vec(), v)
}

/// VAE encoder, VAE decoder, DINOv2 and U-Net outputs on the goldens' inputs, runtime LoRA at
/// `lora_scale` (per call where `nets` apply it per call).
fn networks<B: Backend>(b: &B, nets: &Networks<B>, lora_scale: f32, g: &Golden) -> Vec<Vec<f32>> {
    let scale = nets.lora_scale_for(lora_scale).unwrap();
    let (xs, x) = input(g, "vae.enc.input");
    let enc = run_planned(b, |cx| {
        cx.set_lora_scale(scale);
        let t = cx.input(&xs, x)?;
        let z = nets.vae_encoder.forward(cx, &t)?;
        cx.read(&z)
    });
    let (zs, z) = input(g, "vae.dec.input");
    let dec = run_planned(b, |cx| {
        cx.set_lora_scale(scale);
        let t = cx.input(&zs, z)?;
        let y = nets.vae_decoder.forward(cx, &t)?;
        cx.read(&y)
    });
    let (ps, px) = input(g, "dinov2.input");
    let dino = run_planned(b, |cx| {
        cx.set_lora_scale(scale);
        let t = cx.input(&ps, px)?;
        let h = nets.dinov2.forward(cx, &t)?;
        cx.read(&h)
    });
    let (ss, s) = input(g, "unet.sample");
    let (cs, c) = input(g, "unet.context");
    let t = g["unet.timestep"].1[0];
    let unet = run_planned(b, |cx| {
        cx.set_lora_scale(scale);
        let x = cx.input(&ss, s)?;
        let ctx = cx.input(&cs, c)?;
        let e = nets.unet.forward(cx, &x, t, &ctx)?;
        cx.read(&e)
    });
    [enc, dec, dino, unet]
        .into_iter()
        .map(|r| r.unwrap().0)
        .collect()
}

const NAMES: [&str; 4] = ["VAE encoder", "VAE decoder", "DINOv2", "U-Net"];

/// The CUDA backend's networks against the CPU's at each of `lora_scales`. With runtime LoRA the
/// CPU merges the pairs at load (one load per scale) while the CUDA backend keeps them beside the
/// base weights and applies the scale per call: one load serves every scale.
fn compare_networks(model: &str, lora: LoraChoice, lora_scales: &[f32]) {
    let g = load_safetensors(&format!("tests/data/engine/{model}_expected.safetensors"));
    let (_d, p) = pack(model, lora);
    let cpu = CpuBackend::new(1).unwrap();
    let want: Vec<_> = lora_scales
        .iter()
        .map(|&s| networks(&cpu, &Networks::load(&cpu, p.clone(), s).unwrap(), s, &g))
        .collect();
    let compare = |on: &str, precision: Precision, got: Vec<Vec<Vec<f32>>>| {
        let tol = match precision {
            Precision::F32 => 1e-5,
            Precision::F16 => 1e-2,
        };
        for ((s, got), want) in lora_scales.iter().zip(&got).zip(&want) {
            for ((name, got), want) in NAMES.iter().zip(got).zip(want) {
                let what = format!("{model} {name} lora {s} {on} {precision:?}");
                assert_close(&what, got, want, tol);
            }
        }
    };
    let per_call = |b: &dyn Fn(f32, &Golden) -> Vec<Vec<f32>>| {
        lora_scales.iter().map(|&s| b(s, &g)).collect::<Vec<_>>()
    };
    for precision in [Precision::F32, Precision::F16] {
        if !skip_sim() {
            let sim = sim_backend(precision);
            let nets = Networks::load(&sim, p.clone(), 1.0).unwrap();
            assert_eq!(
                nets.lora,
                LoraState::PerCall,
                "{model}: LoRA kept beside the weights"
            );
            let got = per_call(&|s, g| networks(&sim, &nets, s, g));
            compare("cuda-sim", precision, got);
        }
        #[cfg(feature = "cuda")]
        if let Some(gpu) = cuda_common::gpu_backend(precision) {
            let nets = Networks::load(&gpu, p.clone(), 1.0).unwrap();
            let got = per_call(&|s, g| networks(&gpu, &nets, s, g));
            compare("gpu", precision, got);
        }
    }
}

#[test]
fn sd_style_networks_with_runtime_lora() {
    compare_networks("sd", LoraChoice::Runtime, &[1.0]);
}

/// Two scales on one load of the CUDA networks (runtime LoRA per call), against the CPU merged
/// at each scale.
#[test]
fn eff_style_networks_with_registers_swiglu_and_runtime_lora_per_call() {
    compare_networks("eff", LoraChoice::Runtime, &[0.5, 1.7]);
}

fn read_png(path: &Path) -> (Vec<u8>, usize, usize) {
    let img = ::image::open(path).unwrap().to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    (img.into_raw(), w, h)
}

/// The shipped path with the whole image as one tile.
fn super_resolve<B: Backend>(b: &B, pack: Arc<Pack>, lr: &[f32], h: usize, w: usize) -> Vec<u8> {
    let nets = Networks::load(b, pack, 1.0).unwrap();
    let opts = UpscaleOptions {
        tile: Some(0),
        color_fix: ColorFix::Wavelet,
        ..Default::default()
    };
    let out = upscale(&nets, b, lr, h, w, &opts, &mut |_, _| true).unwrap();
    image::planar_to_rgb8(&out.data, out.width, out.height)
}

#[test]
fn single_tile_pipeline_matches_the_cpu() {
    for (model, lr_png) in [
        ("sd", "sd_coffee_wavelet.lr.png"),
        ("eff", "eff_chelsea_wavelet.lr.png"),
    ] {
        let (_d, p) = pack(model, LoraChoice::Merge);
        let (lr, w, h) = read_png(&Path::new("tests/data/pipeline").join(lr_png));
        let lr01 = image::rgb8_to_planar(&lr, w, h);
        let want = super_resolve(&CpuBackend::new(1).unwrap(), p.clone(), &lr01, h, w);
        let compare = |on: &str, precision: Precision, got: Vec<u8>| {
            assert_eq!(got.len(), want.len());
            let max = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (*a as i32 - *b as i32).abs())
                .max()
                .unwrap();
            let db = psnr(&got, &want);
            eprintln!(
                "{model} pipeline {w}×{h} {on} {precision:?}: max |Δ| {max} levels, PSNR {db:.1} dB"
            );
            match precision {
                Precision::F32 => assert!(max <= 2, "{model} {on} f32: max |Δ| {max}"),
                Precision::F16 => assert!(db >= 40.0, "{model} {on} f16: PSNR {db:.1} dB"),
            }
        };
        for precision in [Precision::F32, Precision::F16] {
            if !skip_sim() {
                let got = super_resolve(&sim_backend(precision), p.clone(), &lr01, h, w);
                compare("cuda-sim", precision, got);
            }
            #[cfg(feature = "cuda")]
            if let Some(gpu) = cuda_common::gpu_backend(precision) {
                compare(
                    "gpu",
                    precision,
                    super_resolve(&gpu, p.clone(), &lr01, h, w),
                );
            }
        }
    }
}
