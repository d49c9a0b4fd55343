//! The C interface called from Rust (so it also runs under qemu for aarch64): `lora_scale` on a
//! runtime-LoRA pack moves the result from the base model (0) to the merged model (1), and is
//! ignored by a merged pack; a model that computes NaN gives `F2I_ERR_NUMERIC`; `ensemble` is
//! checked, defaults to the pack's, and reads as the default from a caller's older struct.

mod common;

use f2idiff::capi::types::{f2i_image, f2i_pixel_format, f2i_status, f2i_upscale_params};
use f2idiff::capi::*;
use f2idiff::convert::{LoraChoice, PackOptions, pack_folder};
use f2idiff::tensor::DType;
use std::ffi::CString;
use std::path::{Path, PathBuf};

const W: u32 = 12;

fn pack(dir: &Path, src: &Path, name: &str, lora: LoraChoice) -> CString {
    let out = dir.join(name);
    let opts = PackOptions {
        dtype: DType::F32,
        lora,
        lora_alpha: None,
    };
    pack_folder(src, &out, &opts).unwrap();
    CString::new(out.to_str().unwrap()).unwrap()
}

/// The sd test model without its adapters.
fn base_folder(dir: &Path) -> PathBuf {
    let src = Path::new("tests/data/engine/sd");
    let dst = dir.join("base");
    for sub in ["vae", "unet", "dinov2"] {
        std::fs::create_dir_all(dst.join(sub)).unwrap();
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, dst.join(sub).join(p.file_name().unwrap())).unwrap();
        }
    }
    for f in ["f2idiff.json", "cond_proj.safetensors"] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), dst.join(f)).unwrap();
        }
    }
    dst
}

fn input() -> Vec<u8> {
    (0..W * W * 3)
        .map(|i| ((i * 37 + i / 5) % 251) as u8)
        .collect()
}

/// RGB8 upscale of the 12×12 test input with `lora_scale`.
fn run(model: &CString, lora_scale: f32) -> Vec<u8> {
    let (s, out) = try_run(model, lora_scale);
    assert_eq!(s, f2i_status::F2I_OK);
    out
}

fn try_run(model: &CString, lora_scale: f32) -> (f2i_status, Vec<u8>) {
    try_run_with(model, |p| p.lora_scale = lora_scale)
}

/// RGB8 upscale of the 12×12 test input with the default params changed by `set`.
fn try_run_with(
    model: &CString,
    set: impl FnOnce(&mut f2i_upscale_params),
) -> (f2i_status, Vec<u8>) {
    let mut engine = std::ptr::null_mut();
    // SAFETY: valid C string and out-pointer; NULL options mean defaults.
    let s = unsafe { f2i_engine_create(model.as_ptr(), std::ptr::null(), &mut engine) };
    assert_eq!(s, f2i_status::F2I_OK);
    let mut params = std::mem::MaybeUninit::<f2i_upscale_params>::uninit();
    // SAFETY: init writes the whole struct.
    let mut params = unsafe {
        f2i_upscale_params_init(params.as_mut_ptr());
        params.assume_init()
    };
    set(&mut params);
    let mut src = input();
    let mut out = vec![0u8; (4 * W * 4 * W * 3) as usize];
    let image = |data: *mut u8, side: u32| f2i_image {
        format: f2i_pixel_format::F2I_PIXEL_RGB8 as u32,
        width: side,
        height: side,
        stride: side as usize * 3,
        data: data.cast(),
        uv_data: std::ptr::null_mut(),
    };
    let (i, o) = (image(src.as_mut_ptr(), W), image(out.as_mut_ptr(), 4 * W));
    // SAFETY: both images describe live buffers of their sizes; the engine is live.
    let s = unsafe { f2i_upscale(engine, &i, &o, &params) };
    // SAFETY: created above, freed once.
    unsafe { f2i_engine_free(engine) };
    assert_eq!(src, input(), "the input was written");
    (s, out)
}

fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap()
}

#[test]
fn lora_scale_moves_a_runtime_pack_from_base_to_merged() {
    let dir = tempfile::tempdir().unwrap();
    let sd = Path::new("tests/data/engine/sd");
    let runtime = pack(dir.path(), sd, "runtime.f2i", LoraChoice::Runtime);
    let merged = pack(dir.path(), sd, "merged.f2i", LoraChoice::Merge);
    let base = pack(
        dir.path(),
        &base_folder(dir.path()),
        "base.f2i",
        LoraChoice::Merge,
    );

    let (r0, r1, rh) = (run(&runtime, 0.0), run(&runtime, 1.0), run(&runtime, 0.5));
    let (m1, m0, b) = (run(&merged, 1.0), run(&merged, 0.0), run(&base, 1.0));
    // Scale 1 = the merge and scale 0 = no adapter, to f32 rounding of the two computations.
    assert!(
        max_diff(&r1, &m1) <= 1,
        "runtime 1 vs merged: {}",
        max_diff(&r1, &m1)
    );
    assert!(
        max_diff(&r0, &b) <= 1,
        "runtime 0 vs base: {}",
        max_diff(&r0, &b)
    );
    // The adapter matters, half of it is neither end, and merged packs ignore the scale.
    assert!(
        max_diff(&m1, &b) > 8,
        "the test LoRA changes too little to tell"
    );
    assert!(max_diff(&rh, &r0) > 2 && max_diff(&rh, &r1) > 2);
    assert_eq!(m0, m1);
}

#[test]
fn a_model_computing_nan_is_a_numeric_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.f2i");
    let header = common::header_for(&common::tiny_configs(), DType::F32);
    let plans = common::required_plans(&header, DType::F32);
    f2idiff::pack::write_pack(&path, &header, &plans, |i| {
        let n: usize = plans[i].shape.iter().product();
        let mut v = common::values(i, n);
        if plans[i].name == "vae.decoder.conv_out.bias" {
            v[0] = f32::NAN;
        }
        Ok(f2idiff::tensor::encode_f32(DType::F32, &v))
    })
    .unwrap();
    let model = CString::new(path.to_str().unwrap()).unwrap();
    let (s, _) = try_run(&model, 1.0);
    assert_eq!(s, f2i_status::F2I_ERR_NUMERIC);
    // SAFETY: f2i_last_error never returns NULL.
    let msg = unsafe { std::ffi::CStr::from_ptr(f2i_last_error()) };
    assert!(msg.to_str().unwrap().contains("NaN"), "{msg:?}");
}

#[test]
fn ensemble_is_checked_and_defaults_to_the_packs() {
    let dir = tempfile::tempdir().unwrap();
    let sd = Path::new("tests/data/engine/sd");
    let plain = pack(dir.path(), sd, "plain.f2i", LoraChoice::Merge);
    let folder = dir.path().join("declared");
    common::copy_dir(sd, &folder);
    let json = folder.join("f2idiff.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    cfg["ensemble"] = 2.into();
    std::fs::write(&json, cfg.to_string()).unwrap();
    let declared = pack(dir.path(), &folder, "declared.f2i", LoraChoice::Merge);
    let ok = |model, set: &dyn Fn(&mut f2i_upscale_params)| {
        let (s, out) = try_run_with(model, set);
        assert_eq!(s, f2i_status::F2I_OK);
        out
    };
    let one = ok(&plain, &|p| p.ensemble = 1);
    let two = ok(&plain, &|p| p.ensemble = 2);
    assert!(max_diff(&one, &two) > 0, "the copies should differ");
    // The pack's ensemble is the default (0), also for a caller whose struct ends before
    // `ensemble`; 1 overrides it.
    assert_eq!(ok(&plain, &|_| ()), one);
    assert_eq!(ok(&declared, &|_| ()), two);
    let older = std::mem::offset_of!(f2i_upscale_params, ensemble) as u32;
    assert_eq!(ok(&declared, &|p| p.struct_size = older), two);
    assert_eq!(ok(&declared, &|p| p.ensemble = 1), one);
    // Sizes there are not: invalid, nothing written.
    for n in [3, 8, u32::MAX] {
        let (s, out) = try_run_with(&plain, |p| p.ensemble = n);
        assert_eq!(s, f2i_status::F2I_ERR_INVALID_ARGUMENT, "{n}");
        assert!(out.iter().all(|&v| v == 0), "{n}: output written");
    }
}
