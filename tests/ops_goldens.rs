//! Single ops through the CPU backend against PyTorch / diffusers on the same inputs
//! (tests/data/engine/ops.safetensors from calib/reference/make_engine_goldens.py): the resize
//! rules DINOv2 and the pipeline depend on, GroupNorm (fused with SiLU and not), GELU in both
//! forms, the timestep embedding.

mod common;

use common::{load_safetensors, rel_l2};
use f2idiff::backend::HostData;
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::engine::run_planned;
use f2idiff::exec::{Norm, upload};
use std::collections::BTreeMap;

type Golden = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn golden() -> Golden {
    load_safetensors("tests/data/engine/ops.safetensors")
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let err = rel_l2(got, want);
    eprintln!("{what:<24} rel L2 {err:.3e}");
    assert!(err <= tol, "{what}: {err:e}");
}

fn bicubic(g: &Golden, case: &str, scale: Option<(f64, f64)>, antialias: bool) {
    let b = CpuBackend::new(0).unwrap();
    let (is, x) = &g[&format!("{case}.input")];
    let (os, want) = &g[&format!("{case}.output")];
    let (got, _) = run_planned(&b, |cx| {
        let t = cx.input(&is[1..], x)?;
        let y = cx.bicubic(&t, os[2], os[3], scale, antialias)?;
        cx.read(&y)
    })
    .unwrap();
    assert_close(case, &got, want, 1e-6);
}

#[test]
fn bicubic_like_torch_up_down_odd_and_scale_factor() {
    let g = golden();
    bicubic(&g, "bicubic.up", None, false);
    bicubic(&g, "bicubic.down", None, false);
    bicubic(&g, "bicubic.odd", None, false);
    // The legacy DINOv2 path: scale_factor (7 + 0.1) / 37 maps coordinates with 37 / 7.1.
    let s = (7.0 + 0.1) / 37.0;
    bicubic(&g, "bicubic.scale", Some((s, s)), false);
}

#[test]
fn antialiased_bicubic_like_torch() {
    let g = golden();
    bicubic(&g, "bicubic_aa.up", None, true);
    bicubic(&g, "bicubic_aa.down", None, true);
}

#[test]
fn group_norm_fused_and_plain() {
    let g = golden();
    let b = CpuBackend::new(0).unwrap();
    let (is, x) = &g["group_norm.input"];
    let c = is[1];
    let norm = Norm {
        gamma: upload(&b, &[c], HostData::F32(g["group_norm.weight"].1.clone())).unwrap(),
        beta: upload(&b, &[c], HostData::F32(g["group_norm.bias"].1.clone())).unwrap(),
        eps: 1e-6,
        groups: 8,
    };
    let want = &g["group_norm.output"].1;
    let ((plain, fused, fused_inplace), _) = run_planned(&b, |cx| {
        let t = cx.input(&is[1..], x)?;
        let plain = cx.group_norm(&t, &norm, false)?;
        let fused = cx.group_norm(&t, &norm, true)?;
        let inplace = cx.group_norm_(t, &norm, true)?;
        Ok((cx.read(&plain)?, cx.read(&fused)?, cx.read(&inplace)?))
    })
    .unwrap();
    assert_close("group_norm", &plain, want, 1e-6);
    let silu: Vec<f32> = want.iter().map(|v| v / (1.0 + (-v).exp())).collect();
    assert_close("group_norm + silu", &fused, &silu, 1e-6);
    assert_eq!(fused, fused_inplace, "in place equals out of place");
}

#[test]
fn gelu_exact_and_tanh() {
    let g = golden();
    let b = CpuBackend::new(0).unwrap();
    let (s, x) = &g["gelu.input"];
    for (key, tanh) in [("gelu.exact", false), ("gelu.tanh", true)] {
        let (got, _) = run_planned(&b, |cx| {
            let t = cx.input(s, x)?;
            let y = cx.gelu_(t, tanh)?;
            cx.read(&y)
        })
        .unwrap();
        assert_close(key, &got, &g[key].1, 1e-6);
    }
}

#[test]
fn timestep_embedding_like_diffusers() {
    let g = golden();
    let b = CpuBackend::new(0).unwrap();
    for (key, flip, shift) in [
        ("timestep_embedding.flip1_shift0", true, 0.0),
        ("timestep_embedding.flip0_shift1", false, 1.0),
    ] {
        let (got, _) = run_planned(&b, |cx| {
            let e = cx.timestep_embedding(999.0, 32, flip, shift)?;
            cx.read(&e)
        })
        .unwrap();
        assert_close(key, &got, &g[key].1, 1e-6);
    }
}
