//! transformers `Dinov2Model` / `Dinov2WithRegistersModel` config
//! (`transformers/models/dinov2/configuration_dinov2.py`).

use super::{ensure, ensure_supported, from_value};
use crate::error::Result;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct Dinov2Config {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    #[serde(default = "d768")]
    pub hidden_size: usize,
    #[serde(default = "twelve")]
    pub num_hidden_layers: usize,
    #[serde(default = "twelve")]
    pub num_attention_heads: usize,
    #[serde(default = "four")]
    pub mlp_ratio: f64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "d224")]
    pub image_size: usize,
    #[serde(default = "fourteen")]
    pub patch_size: usize,
    #[serde(default = "three")]
    pub num_channels: usize,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    #[serde(default)]
    pub use_swiglu_ffn: bool,
    /// Present in `dinov2_with_registers` configs (default 4 there, 0 for plain Dinov2).
    #[serde(default)]
    pub num_register_tokens: Option<usize>,
    /// transformers 5.x `Dinov2Config.use_mask_token`: whether `embeddings.mask_token` exists.
    /// The registers variant always has it.
    #[serde(default = "yes")]
    pub use_mask_token: bool,
}

fn default_model_type() -> String {
    "dinov2".into()
}
fn d768() -> usize {
    768
}
fn twelve() -> usize {
    12
}
fn four() -> f64 {
    4.0
}
fn gelu() -> String {
    "gelu".into()
}
fn eps() -> f64 {
    1e-6
}
fn d224() -> usize {
    224
}
fn fourteen() -> usize {
    14
}
fn three() -> usize {
    3
}
fn yes() -> bool {
    true
}

impl Dinov2Config {
    pub fn from_json(path: &Path, raw: &Value) -> Result<Self> {
        let cfg: Dinov2Config = from_value(path, raw)?;
        ensure_supported(
            matches!(cfg.model_type.as_str(), "dinov2" | "dinov2_with_registers"),
            path,
            || format!("DINOv2 model_type `{}`", cfg.model_type),
        )?;
        ensure(
            cfg.hidden_size > 0
                && cfg.num_attention_heads > 0
                && cfg.hidden_size % cfg.num_attention_heads == 0,
            path,
            || {
                format!(
                    "hidden_size {} does not split into {} heads",
                    cfg.hidden_size, cfg.num_attention_heads
                )
            },
        )?;
        ensure(
            cfg.patch_size > 0 && cfg.image_size >= cfg.patch_size && cfg.num_channels > 0,
            path,
            || "image_size, patch_size and num_channels must be positive".into(),
        )?;
        ensure(
            cfg.mlp_ratio.is_finite() && cfg.mlp_ratio > 0.0,
            path,
            || format!("mlp_ratio {} is not usable", cfg.mlp_ratio),
        )?;
        ensure_supported(
            cfg.use_swiglu_ffn
                || matches!(
                    cfg.hidden_act.as_str(),
                    "gelu" | "gelu_new" | "gelu_pytorch_tanh"
                ),
            path,
            || format!("DINOv2 hidden_act `{}`", cfg.hidden_act),
        )?;
        Ok(cfg)
    }

    pub fn register_tokens(&self) -> usize {
        match self.model_type.as_str() {
            "dinov2_with_registers" => self.num_register_tokens.unwrap_or(4),
            _ => 0,
        }
    }

    pub fn has_mask_token(&self) -> bool {
        self.use_mask_token || self.model_type == "dinov2_with_registers"
    }

    /// Patches per side of the position-embedding table (`image_size / patch_size`).
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Hidden width of the MLP (fc1 output, or SwiGLU's per-branch width).
    pub fn mlp_hidden(&self) -> usize {
        let hidden = (self.hidden_size as f64 * self.mlp_ratio) as usize;
        if self.use_swiglu_ffn {
            (hidden * 2 / 3).div_ceil(8) * 8
        } else {
            hidden
        }
    }
}
