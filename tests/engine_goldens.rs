//! The CPU engine against diffusers / transformers (goldens: calib/reference/make_engine_goldens.py):
//! each network packed with the real converter, run in a planned arena, compared by relative
//! L2 error — ≤ 1e-5 for f32 packs, ≤ 1e-2 for f16 packs.

mod common;

use common::{load_safetensors, rel_l2};
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::convert::{LoraChoice, PackOptions, pack_folder};
use f2idiff::engine::{Networks, run_planned};
use f2idiff::pack::Pack;
use f2idiff::tensor::DType;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

type Golden = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn pack(model: &str, dtype: DType, lora: LoraChoice) -> (tempfile::TempDir, Arc<Pack>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.f2i");
    let opts = PackOptions {
        dtype,
        lora,
        lora_alpha: None,
    };
    pack_folder(&Path::new("tests/data/engine").join(model), &out, &opts).unwrap();
    (dir, Arc::new(Pack::open(&out).unwrap()))
}

fn golden(model: &str) -> Golden {
    load_safetensors(&format!("tests/data/engine/{model}_expected.safetensors"))
}

/// Drops the leading batch dimension of a golden's shape.
fn unbatched<'a>(g: &'a Golden, key: &str) -> (Vec<usize>, &'a [f32]) {
    let (shape, v) = g.get(key).unwrap_or_else(|| panic!("golden lacks {key}"));
    assert_eq!(shape[0], 1, "{key}");
    (shape[1..].to_vec(), v)
}

struct Outputs {
    vae_enc: Vec<f32>,
    vae_dec: Vec<f32>,
    dinov2: Vec<f32>,
    unet: Vec<f32>,
    cond_proj: Option<Vec<f32>>,
    peaks: [usize; 4],
}

fn run_all(nets: &Networks<CpuBackend>, backend: &CpuBackend, g: &Golden) -> Outputs {
    let (xs, x) = unbatched(g, "vae.enc.input");
    let (vae_enc, p0) = run_planned(backend, |cx| {
        let t = cx.input(&xs, x)?;
        let z = nets.vae_encoder.forward(cx, &t)?;
        cx.read(&z)
    })
    .unwrap();
    let (zs, z) = unbatched(g, "vae.dec.input");
    let (vae_dec, p1) = run_planned(backend, |cx| {
        let t = cx.input(&zs, z)?;
        let y = nets.vae_decoder.forward(cx, &t)?;
        cx.read(&y)
    })
    .unwrap();
    let (ps, px) = unbatched(g, "dinov2.input");
    let ((dinov2, cond_proj), p2) = run_planned(backend, |cx| {
        let t = cx.input(&ps, px)?;
        let h = nets.dinov2.forward(cx, &t)?;
        let proj = match &nets.cond_proj {
            Some(c) => {
                let o = c.forward(cx, &h)?;
                Some(cx.read(&o)?)
            }
            None => None,
        };
        Ok((cx.read(&h)?, proj))
    })
    .unwrap();
    let (ss, s) = unbatched(g, "unet.sample");
    let (cs, c) = unbatched(g, "unet.context");
    let t = g["unet.timestep"].1[0];
    let (unet, p3) = run_planned(backend, |cx| {
        let x = cx.input(&ss, s)?;
        let ctx = cx.input(&cs, c)?;
        let e = nets.unet.forward(cx, &x, t, &ctx)?;
        cx.read(&e)
    })
    .unwrap();
    Outputs {
        vae_enc,
        vae_dec,
        dinov2,
        unet,
        cond_proj,
        peaks: [p0.peak, p1.peak, p2.peak, p3.peak],
    }
}

fn check(what: &str, got: &[f32], g: &Golden, key: &str, tol: f64) -> f64 {
    let want = &g.get(key).unwrap_or_else(|| panic!("golden lacks {key}")).1;
    let err = rel_l2(got, want);
    eprintln!("{what:<28} {key:<22} rel L2 {err:.3e}");
    assert!(err <= tol, "{what} {key}: rel L2 {err:e} > {tol:e}");
    err
}

fn backend() -> CpuBackend {
    CpuBackend::new(0).unwrap()
}

#[test]
fn sd_style_model_merged_lora_f32() {
    let b = backend();
    let g = golden("sd");
    let (_d, p) = pack("sd", DType::F32, LoraChoice::Merge);
    let nets = Networks::load(&b, p, 1.0).unwrap();
    let o = run_all(&nets, &b, &g);
    check("sd merge f32", &o.vae_enc, &g, "vae.enc.output_lora", 1e-5);
    check("sd merge f32", &o.vae_dec, &g, "vae.dec.output", 1e-5);
    check("sd merge f32", &o.dinov2, &g, "dinov2.output", 1e-5);
    check("sd merge f32", &o.unet, &g, "unet.output_lora", 1e-5);
    eprintln!("arena peaks (elements): {:?}", o.peaks);
}

#[test]
fn sd_style_model_runtime_lora_scale_0_and_1() {
    let b = backend();
    let g = golden("sd");
    let (_d, p) = pack("sd", DType::F32, LoraChoice::Runtime);
    let base = Networks::load(&b, p.clone(), 0.0).unwrap();
    let o = run_all(&base, &b, &g);
    check("sd runtime scale 0", &o.vae_enc, &g, "vae.enc.output", 1e-5);
    check("sd runtime scale 0", &o.unet, &g, "unet.output", 1e-5);
    let full = Networks::load(&b, p, 1.0).unwrap();
    let o = run_all(&full, &b, &g);
    check(
        "sd runtime scale 1",
        &o.vae_enc,
        &g,
        "vae.enc.output_lora",
        1e-5,
    );
    check("sd runtime scale 1", &o.unet, &g, "unet.output_lora", 1e-5);
}

#[test]
fn sd_style_model_f16_pack() {
    let b = backend();
    let g = golden("sd");
    let (_d, p) = pack("sd", DType::F16, LoraChoice::Merge);
    let nets = Networks::load(&b, p, 1.0).unwrap();
    let o = run_all(&nets, &b, &g);
    check("sd merge f16", &o.vae_enc, &g, "vae.enc.output_lora", 1e-2);
    check("sd merge f16", &o.vae_dec, &g, "vae.dec.output", 1e-2);
    check("sd merge f16", &o.dinov2, &g, "dinov2.output", 1e-2);
    check("sd merge f16", &o.unet, &g, "unet.output_lora", 1e-2);
}

/// DINOv2 on the 98×98 input (a 7×7 patch grid against the stored 16×16 table).
fn dinov2_odd(nets: &Networks<CpuBackend>, b: &CpuBackend, g: &Golden) -> Vec<f32> {
    let (s, x) = unbatched(g, "dinov2.input_odd");
    run_planned(b, |cx| {
        let t = cx.input(&s, x)?;
        let h = nets.dinov2.forward(cx, &t)?;
        cx.read(&h)
    })
    .unwrap()
    .0
}

#[test]
fn dinov2_position_embeddings_interpolated_to_an_odd_grid() {
    let b = backend();
    let g = golden("sd");
    let (_d, p) = pack("sd", DType::F32, LoraChoice::Merge);
    let nets = Networks::load(&b, p, 1.0).unwrap();
    let out = dinov2_odd(&nets, &b, &g);
    check("dinov2 98×98 (grid 7)", &out, &g, "dinov2.output_odd", 1e-5);
}

#[test]
fn eff_style_model_with_registers_swiglu_cond_proj_and_conv_projections() {
    let b = backend();
    let g = golden("eff");
    let (_d, p) = pack("eff", DType::F32, LoraChoice::Runtime);
    for (scale, unet_key) in [(0.0, "unet.output"), (1.0, "unet.output_lora")] {
        let nets = Networks::load(&b, p.clone(), scale).unwrap();
        let o = run_all(&nets, &b, &g);
        check("eff", &o.vae_enc, &g, "vae.enc.output", 1e-5);
        check("eff", &o.vae_dec, &g, "vae.dec.output", 1e-5);
        check("eff", &o.dinov2, &g, "dinov2.output", 1e-5);
        check(
            "eff",
            o.cond_proj.as_ref().unwrap(),
            &g,
            "cond_proj.output",
            1e-5,
        );
        check(
            &format!("eff lora scale {scale}"),
            &o.unet,
            &g,
            unet_key,
            1e-5,
        );
    }
}

#[test]
fn arena_plan_is_reused_and_smaller_than_no_reuse() {
    let b = backend();
    let g = golden("sd");
    let (_d, p) = pack("sd", DType::F32, LoraChoice::Merge);
    let nets = Networks::load(&b, p, 1.0).unwrap();
    let (xs, x) = unbatched(&g, "vae.enc.input");
    let f = |cx: &mut f2idiff::exec::Exec<CpuBackend>| {
        let t = cx.input(&xs, x)?;
        let z = nets.vae_encoder.forward(cx, &t)?;
        cx.read(&z)
    };
    let plan = f2idiff::engine::plan(&b, f).unwrap();
    assert!(
        plan.peak * 2 < plan.total,
        "peak {} vs total {}",
        plan.peak,
        plan.total
    );
    let mut arena = vec![0f32; plan.peak];
    let first = f2idiff::engine::run(&b, &mut arena, &plan, f).unwrap();
    let second = f2idiff::engine::run(&b, &mut arena, &plan, f).unwrap();
    assert_eq!(first, second, "a reused arena gives the same result");
    check(
        "sd vae encoder (reused arena)",
        &second,
        &g,
        "vae.enc.output_lora",
        1e-5,
    );
}

#[test]
fn a_plan_for_another_tile_size_is_refused() {
    let b = backend();
    let g = golden("sd");
    let (_d, p) = pack("sd", DType::F32, LoraChoice::Merge);
    let nets = Networks::load(&b, p, 1.0).unwrap();
    let (xs, x) = unbatched(&g, "vae.enc.input");
    let plan32 = f2idiff::engine::plan(&b, |cx| {
        let t = cx.input(&xs, x)?;
        nets.vae_encoder.forward(cx, &t).map(drop)
    })
    .unwrap();
    let mut arena = vec![0f32; plan32.peak];
    let other = vec![0.5f32; 3 * 48 * 48];
    let err = f2idiff::engine::run(&b, &mut arena, &plan32, |cx| {
        let t = cx.input(&[3, 48, 48], &other)?;
        nets.vae_encoder.forward(cx, &t).map(drop)
    })
    .unwrap_err();
    assert!(err.to_string().contains("plan"), "{err}");
}

#[test]
fn eff_style_model_merged_lora_f32_and_f16() {
    let b = backend();
    let g = golden("eff");
    for (dtype, tol) in [(DType::F32, 1e-5), (DType::F16, 1e-2)] {
        let (_d, p) = pack("eff", dtype, LoraChoice::Merge);
        let nets = Networks::load(&b, p, 1.0).unwrap();
        let o = run_all(&nets, &b, &g);
        let what = format!("eff merge {dtype}");
        check(&what, &o.vae_enc, &g, "vae.enc.output", tol);
        check(&what, &o.vae_dec, &g, "vae.dec.output", tol);
        check(&what, &o.dinov2, &g, "dinov2.output", tol);
        check(
            &what,
            o.cond_proj.as_ref().unwrap(),
            &g,
            "cond_proj.output",
            tol,
        );
        check(&what, &o.unet, &g, "unet.output_lora", tol);
    }
}

#[test]
fn dinov2_legacy_interpolation_with_offset() {
    let b = backend();
    let g = golden("sd");
    let (_d, p) = pack("sd", DType::F32, LoraChoice::Merge);
    let mut nets = Networks::load(&b, p, 1.0).unwrap();
    nets.dinov2.interpolate_offset = Some(0.1);
    let out = dinov2_odd(&nets, &b, &g);
    check(
        "dinov2 98×98 legacy +0.1",
        &out,
        &g,
        "dinov2.output_odd_legacy",
        1e-5,
    );
    // The two rules really differ here, so the check above cannot pass by accident.
    assert!(rel_l2(&out, &g["dinov2.output_odd"].1) > 1e-4);
}
