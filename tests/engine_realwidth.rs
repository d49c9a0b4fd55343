//! Real channel counts, so no width assumption can hide: the SD VAE mid-block at 512 channels and
//! the SD-2.1 U-Net mid-block at 1280 channels (20 heads, 1024-wide context), on small spatial
//! sizes. Weights come from a formula both sides implement (tests/common `formula_weight`,
//! calib/reference/make_engine_goldens.py); inputs and outputs from diffusers.

mod common;

use common::{FormulaWeights, load_safetensors, rel_l2};
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::config::{DownBlock, UNetLevel};
use f2idiff::engine::run_planned;
use f2idiff::model::Loader;
use f2idiff::model::resnet::ResnetBlock;
use f2idiff::model::transformer::Transformer2D;
use f2idiff::model::vae::MidBlock;

const GOLDEN: &str = "tests/data/engine/realwidth.safetensors";

#[test]
fn formula_matches_the_python_generator() {
    // First values for "resnets.0.conv1.weight" [512, 512, 3, 3], as the script records them.
    let w = common::formula_weight("resnets.0.conv1.weight", &[512, 512, 3, 3]);
    let params: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/data/engine/realwidth_params.json").unwrap(),
    )
    .unwrap();
    let values = params["_check"]["resnets.0.conv1.weight"]
        .as_array()
        .expect("_check values");
    assert!(values.len() >= 3);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(w[i], v.as_f64().unwrap() as f32, "element {i}");
    }
    // The first three, bit for bit, as the generator printed them.
    assert_eq!(
        [w[0].to_bits(), w[1].to_bits(), w[2].to_bits()],
        [0x3c62dd86, 0xbbad8272, 0xbc610ce5]
    );
    assert!(w.iter().all(|v| v.abs() <= 1.0 / (512.0f32 * 9.0).sqrt()));
}

#[test]
fn sd_vae_mid_block_at_512_channels() {
    let g = load_safetensors(GOLDEN);
    let b = CpuBackend::new(0).unwrap();
    let src = FormulaWeights;
    let block = MidBlock::load(&Loader::new(&b, &src), 512, 32, true).unwrap();
    let (shape, x) = &g["vae_mid.input"];
    let (out, plan) = run_planned(&b, |cx| {
        let t = cx.input(&shape[1..], x)?;
        let y = block.forward(cx, t)?;
        cx.read(&y)
    })
    .unwrap();
    let err = rel_l2(&out, &g["vae_mid.output"].1);
    eprintln!(
        "VAE mid-block 512ch: rel L2 {err:.3e}, arena {} floats",
        plan.peak
    );
    assert!(err <= 1e-5, "{err:e}");
}

#[test]
fn sd21_unet_mid_block_at_1280_channels() {
    let g = load_safetensors(GOLDEN);
    let b = CpuBackend::new(0).unwrap();
    let src = FormulaWeights;
    let l = Loader::new(&b, &src);
    let level = UNetLevel {
        channels: 1280,
        down: DownBlock::CrossAttn,
        layers: 1,
        transformer_layers: 1,
        heads: 20,
        cross_attention_dim: 1024,
        only_cross_attention: false,
    };
    let r0 = ResnetBlock::load(&l.at("resnets.0"), 1280, 1280, 32, 1e-5, Some(1280)).unwrap();
    let attn = Transformer2D::load(&l.at("attentions.0"), &level, 32, true).unwrap();
    let r1 = ResnetBlock::load(&l.at("resnets.1"), 1280, 1280, 32, 1e-5, Some(1280)).unwrap();
    let (xs, x) = &g["unet_mid.input"];
    let (ts, t) = &g["unet_mid.temb"];
    let (cs, c) = &g["unet_mid.context"];
    let (out, _) = run_planned(&b, |cx| {
        let x = cx.input(&xs[1..], x)?;
        let temb = cx.input(ts, t)?;
        let temb = cx.silu_(temb)?; // the resnets apply SiLU to the raw embedding
        let ctx = cx.input(&cs[1..], c)?;
        let h = r0.forward(cx, &x, Some(&temb))?;
        let h = attn.forward(cx, h, &ctx)?;
        let y = r1.forward(cx, &h, Some(&temb))?;
        cx.read(&y)
    })
    .unwrap();
    let err = rel_l2(&out, &g["unet_mid.output"].1);
    eprintln!("U-Net mid-block 1280ch: rel L2 {err:.3e}");
    assert!(err <= 1e-5, "{err:e}");
}
