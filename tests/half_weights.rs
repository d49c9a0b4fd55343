//! f16 / bf16 packs on the CPU: their matrices stay in half precision in memory and are widened
//! per use (the Winograd weight transform widens its own; linear layers and the other
//! convolutions through the backend's buffer). Widening is exact, so a half-precision pack must
//! give the output, bit for bit, of an f32 pack that holds the same (widened) values — the
//! f32 pack is used in place with no widening at all, which is what the half path is checked
//! against here.

mod common;

use common::{emulated, header_for, required_plans, values};
use f2idiff::backend::cpu::{CpuBackend, HALF_MIN};
use f2idiff::engine::Networks;
use f2idiff::pack::{Pack, TensorPlan, write_pack};
use f2idiff::pipeline::{UpscaleOptions, upscale};
use f2idiff::tensor::{DType, decode_f32, encode_f32};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// A model whose larger matrices have at least [`HALF_MIN`] values (so they stay half): VAE
/// 3×3 convolutions of 128×128 channels (the Winograd path), U-Net feed-forwards of 128 → 1024
/// and DINOv2 MLPs of 128 → 512 (linear layers).
fn mid_configs() -> (
    serde_json::Value,
    serde_json::Value,
    serde_json::Value,
    serde_json::Value,
) {
    let pipeline = json!({"scale": 4, "timestep": 999, "dino_image_size": 56});
    let vae = json!({"block_out_channels": [64, 128], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "norm_num_groups": 8, "layers_per_block": 1, "latent_channels": 4});
    let unet = json!({"block_out_channels": [64, 128], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "attention_head_dim": [2, 4], "cross_attention_dim": 128,
        "norm_num_groups": 8, "layers_per_block": 1, "use_linear_projection": true});
    let dinov2 = json!({"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 56, "patch_size": 14});
    (pipeline, vae, unet, dinov2)
}

/// Writes the model with every tensor stored as `dtype`, holding the values of `half` (f16 or
/// bf16) rounding of [`values`]: identical numbers whichever of the two `dtype` is.
fn write(path: &Path, dtype: DType, half: DType) -> Vec<TensorPlan> {
    let header = header_for(&mid_configs(), dtype);
    let plans = required_plans(&header, dtype);
    write_pack(path, &header, &plans, |i| {
        let n: usize = plans[i].shape.iter().product();
        let rounded = decode_f32(half, &encode_f32(half, &values(i, n)));
        Ok(encode_f32(dtype, &rounded))
    })
    .unwrap();
    plans
}

/// The output's bits and the backend's widening buffer after one upscale.
fn run(pack: &Path, lr: &[f32], (h, w): (usize, usize)) -> (Vec<u32>, usize) {
    let backend = CpuBackend::new(2).unwrap();
    let pack = Arc::new(Pack::open(pack).unwrap());
    let nets = Networks::load(&backend, pack, 1.0).unwrap();
    let opts = UpscaleOptions {
        tile: Some(0),
        ..UpscaleOptions::default()
    };
    let sr = upscale(&nets, &backend, lr, h, w, &opts, &mut |_, _| true).unwrap();
    assert!(sr.data.iter().all(|v| v.is_finite()));
    let bits = sr.data.iter().map(|v| v.to_bits()).collect();
    (bits, backend.widen_buffer_bytes())
}

#[test]
fn half_packs_give_the_bits_of_the_f32_pack_with_the_same_values() {
    let tmp = tempfile::tempdir().unwrap();
    // Under qemu (scripts/test-aarch64.sh) a smaller frame: every run costs ~100× its native time,
    // and the widening paths are the same at any size.
    let (h, w) = if emulated() { (12, 16) } else { (20, 24) };
    let lr: Vec<f32> = (0..3 * h * w)
        .map(|i| 0.5 + 0.4 * ((i as f32) * 0.173).sin())
        .collect();
    for half in [DType::F16, DType::BF16] {
        let half_path = tmp.path().join(format!("{}.f2i", half.name()));
        let f32_path = tmp.path().join(format!("{}-as-f32.f2i", half.name()));
        let plans = write(&half_path, half, half);
        write(&f32_path, DType::F32, half);
        // The model really has matrices that stay half, of both kinds.
        let kept = |needle: &str| {
            plans.iter().any(|p| {
                p.name.contains(needle)
                    && p.shape.len() >= 2
                    && p.shape.iter().product::<usize>() >= HALF_MIN
            })
        };
        assert!(
            kept("vae.decoder") && kept("ff.net") && kept("mlp"),
            "{plans:?}"
        );

        let (want, f32_buffer) = run(&f32_path, &lr, (h, w));
        let (got, half_buffer) = run(&half_path, &lr, (h, w));
        assert_eq!(f32_buffer, 0, "an f32 pack is used in place, never widened");
        assert!(
            half_buffer > 0,
            "{}: linear weights were widened per use",
            half.name()
        );
        assert_eq!(want.len(), got.len());
        if let Some(i) = want.iter().zip(&got).position(|(a, b)| a != b) {
            panic!(
                "{}: value {i} is {} from the half pack, {} from the f32 pack",
                half.name(),
                f32::from_bits(got[i]),
                f32::from_bits(want[i])
            );
        }
    }
}
