//! diffusers `AutoencoderKL` config (`diffusers/models/autoencoders/autoencoder_kl.py`).

use super::{check_groups, ensure, ensure_supported, from_value};
use crate::error::Result;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    #[serde(default = "default_down")]
    pub down_block_types: Vec<String>,
    #[serde(default = "default_up")]
    pub up_block_types: Vec<String>,
    #[serde(default = "default_channels")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "one")]
    pub layers_per_block: usize,
    #[serde(default = "silu")]
    pub act_fn: String,
    #[serde(default = "four")]
    pub latent_channels: usize,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    #[serde(default = "sd_scaling")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
}

fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn one() -> usize {
    1
}
fn thirty_two() -> usize {
    32
}
fn yes() -> bool {
    true
}
fn silu() -> String {
    "silu".into()
}
fn sd_scaling() -> f64 {
    0.18215
}
fn default_down() -> Vec<String> {
    vec!["DownEncoderBlock2D".into()]
}
fn default_up() -> Vec<String> {
    vec!["UpDecoderBlock2D".into()]
}
fn default_channels() -> Vec<usize> {
    vec![64]
}

impl VaeConfig {
    pub fn from_json(path: &Path, raw: &Value) -> Result<Self> {
        let cfg: VaeConfig = from_value(path, raw)?;
        let n = cfg.block_out_channels.len();
        ensure(n > 0, path, || "`block_out_channels` is empty".into())?;
        ensure(
            cfg.down_block_types.len() == n && cfg.up_block_types.len() == n,
            path,
            || {
                format!(
                    "{} down and {} up block types for {n} `block_out_channels`",
                    cfg.down_block_types.len(),
                    cfg.up_block_types.len()
                )
            },
        )?;
        for t in &cfg.down_block_types {
            ensure_supported(t == "DownEncoderBlock2D", path, || {
                format!("VAE down block type `{t}` (supported: DownEncoderBlock2D)")
            })?;
        }
        for t in &cfg.up_block_types {
            ensure_supported(t == "UpDecoderBlock2D", path, || {
                format!("VAE up block type `{t}` (supported: UpDecoderBlock2D)")
            })?;
        }
        ensure_supported(cfg.act_fn == "silu", path, || {
            format!("VAE act_fn `{}` (supported: silu)", cfg.act_fn)
        })?;
        ensure(
            cfg.in_channels > 0 && cfg.out_channels > 0 && cfg.latent_channels > 0,
            path,
            || "channel counts must be positive".into(),
        )?;
        ensure(cfg.layers_per_block > 0, path, || {
            "`layers_per_block` must be positive".into()
        })?;
        ensure(
            cfg.scaling_factor.is_finite() && cfg.scaling_factor != 0.0,
            path,
            || format!("`scaling_factor` {} is not usable", cfg.scaling_factor),
        )?;
        for &c in &cfg.block_out_channels {
            check_groups(path, "VAE block", c, cfg.norm_num_groups)?;
        }
        Ok(cfg)
    }
}
