//! The CPU Winograd convolutions at real size: one SD-VAE resnet (diffusers `ResnetBlock2D`,
//! GroupNorm 32 / eps 1e-6, SiLU, two 3×3 convolutions, no time embedding, no shortcut conv) at
//! 512 channels on 64×64 and at 128 channels on 128×128, so both convolutions take the
//! F(4×4, 3×3) path (≥ 32×32 pixels, 36·c_out·c_in ≤ 36·512·512); the goldens of
//! engine_goldens.rs / engine_realwidth.rs run on smaller images. `F2IDIFF_WINOGRAD=2x2` or
//! `off` runs the same checks on the F(2×2) or im2col path.
//!
//! Weights and inputs come from formulas both sides implement (tests/common `formula_weight`,
//! `formula_input`; calib/reference/weights_formula.py); the reference is diffusers' block in
//! float64, stored as float32 for 8 output channels (full spatial size) plus every channel's L2
//! norm (calib/reference/make_winograd_goldens.py, tests/data/winograd/).

mod common;

use common::{FormulaWeights, formula_input, load_safetensors, rel_l2};
use f2idiff::backend::Backend;
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::engine::run_planned;
use f2idiff::model::Loader;
use f2idiff::model::resnet::ResnetBlock;
use serde_json::Value;

const GOLDEN: &str = "tests/data/winograd/resnet.safetensors";
const PARAMS: &str = "tests/data/winograd/resnet_params.json";

fn params() -> Value {
    serde_json::from_str(&std::fs::read_to_string(PARAMS).unwrap()).unwrap()
}

#[test]
fn input_formula_matches_the_python_generator() {
    let p = params();
    for (case, c, hw) in [("resnet512", 512, 64), ("resnet128", 128, 128)] {
        let x = formula_input(&format!("{case}.input"), c, hw, hw);
        let values = p["_check"][format!("{case}.input")]
            .as_array()
            .expect("_check values");
        assert!(values.len() >= 3);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(x[i], v.as_f64().unwrap() as f32, "{case} element {i}");
        }
    }
    // The first three, bit for bit, as the generator printed them.
    let x = formula_input("resnet512.input", 512, 64, 64);
    assert_eq!(
        [x[0].to_bits(), x[1].to_bits(), x[2].to_bits()],
        [0x3f74a1ba, 0xbf30e3ae, 0x3e7dc278]
    );
    let x = formula_input("resnet128.input", 128, 128, 128);
    assert_eq!(
        [x[0].to_bits(), x[1].to_bits(), x[2].to_bits()],
        [0x3facfa7d, 0xbccbf992, 0xc0253cb6]
    );
}

/// Runs the block of `case` and checks it against the golden; returns the rel L2 on the stored
/// channels.
fn check(case: &str) -> f64 {
    let p = &params()[case];
    let dim = |k: &str| p[k].as_u64().unwrap() as usize;
    let (c, h, w) = (dim("channels"), dim("height"), dim("width"));
    let groups = dim("groups");
    let eps = p["eps"].as_f64().unwrap();
    let sel: Vec<usize> = p["stored_channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let g = load_safetensors(GOLDEN);
    let (gs, golden) = &g[&format!("{case}.output")];
    assert_eq!(gs, &[1, sel.len(), h, w]);
    let (ns, norms) = &g[&format!("{case}.channel_norm")];
    assert_eq!(ns, &[c]);

    let b = CpuBackend::new(0).unwrap();
    let src = FormulaWeights;
    let block = ResnetBlock::load(&Loader::new(&b, &src), c, c, groups, eps, None).unwrap();
    let x = formula_input(&format!("{case}.input"), c, h, w);
    let t0 = std::time::Instant::now();
    let (out, _) = run_planned(&b, |cx| {
        let t = cx.input(&[c, h, w], &x)?;
        let y = block.forward(cx, &t, None)?;
        cx.read(&y)
    })
    .unwrap();
    let secs = t0.elapsed().as_secs_f64();

    let hw = h * w;
    let picked: Vec<f32> = sel
        .iter()
        .flat_map(|&ch| out[ch * hw..(ch + 1) * hw].iter().copied())
        .collect();
    let err = rel_l2(&picked, golden);
    // The residual branch alone (output − input; the input is exact on both sides).
    let x_sel: Vec<f32> = sel
        .iter()
        .flat_map(|&ch| x[ch * hw..(ch + 1) * hw].iter().copied())
        .collect();
    let diff = |a: &[f32]| -> Vec<f32> { a.iter().zip(&x_sel).map(|(a, x)| a - x).collect() };
    let err_res = rel_l2(&diff(&picked), &diff(golden));
    // Every channel's L2 norm: |‖a‖ − ‖b‖| ≤ ‖a − b‖, so this error is at most the full output's.
    let ours: Vec<f32> = out
        .chunks(hw)
        .map(|ch| ch.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt() as f32)
        .collect();
    let err_norms = rel_l2(&ours, norms);
    eprintln!(
        "{case} ({c} ch, {h}×{w}) on {}: rel L2 {err:.3e} (stored channels), residual branch \
         {err_res:.3e}, channel norms {err_norms:.3e}; {secs:.2} s",
        b.name()
    );
    assert!(err <= 1e-5, "{case}: {err:e}");
    assert!(err_norms <= 1e-5, "{case}: channel norms {err_norms:e}");
    err
}

#[test]
fn sd_vae_resnet_at_512_channels_64x64() {
    check("resnet512");
}

#[test]
fn sd_vae_resnet_at_128_channels_128x128() {
    check("resnet128");
}
