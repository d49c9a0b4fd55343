//! f16 safety on a model built to overflow f16 in a known layer: the SD-style test model with
//! its VAE decoder's first upsampler convolution (`decoder.up_blocks.0.upsamplers.0.conv`)
//! multiplied by 2¹⁶. In f32 that is still a good model (the GroupNorms that follow undo the
//! factor; the CPU run is the reference), but in f16 storage that convolution's output is far
//! beyond ±65504: Inf, then NaN through the next GroupNorm.
//! - Without a fallback the f16 run is an error (never a silently broken image).
//! - With the f32 fallback the tile runs again in f32, is counted, and matches the CPU.
//! Runs the CUDA backend on the CPU execution harness (and on a GPU when one is present).
#![cfg(feature = "cuda-sim")]

mod cuda_common;

use cuda_common::{sim_backend, skip_sim};
use f2idiff::Error;
use f2idiff::backend::Backend;
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::backend::cuda::Precision;
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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

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
    if skip_sim() {
        return;
    }
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

    let f16 = sim_backend(Precision::F16);
    let nets = Networks::load(&f16, pack.clone(), 1.0).unwrap();
    let (lr, w, h) = lr();
    match upscale(&nets, &f16, &lr, h, w, &opts(), &mut |_, _| true) {
        Err(Error::Numeric(msg)) => assert!(msg.contains("not finite"), "{msg}"),
        Err(e) => panic!("expected a numeric error, got {e}"),
        Ok(_) => panic!("the overflowing model ran clean in f16: the test model is wrong"),
    }

    let fallback = F32Fallback::new(sim_backend(Precision::F32), pack.clone());
    let got = run(&f16, &nets, Some(&fallback)).unwrap();
    assert_eq!((got.tiles, got.f32_reruns), (1, 1));
    let d = max_diff(&rgb8(&got), &want);
    assert!(d <= 2, "f32 rerun vs CPU: max |Δ| {d} levels");
}
