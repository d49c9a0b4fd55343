//! The pack's JSON header: the configs the networks are built from, LoRA facts and provenance.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const FORMAT_NAME: &str = "f2idiff-pack";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// `f2idiff.json`, with defaults filled in.
    pub pipeline: Value,
    /// diffusers `AutoencoderKL` config.json, verbatim but for `_name_or_path` (a local path).
    pub vae: Value,
    /// diffusers `UNet2DConditionModel` config.json, verbatim but for `_name_or_path` (a local path).
    pub unet: Value,
    /// transformers `Dinov2Model` config.json, verbatim but for `_name_or_path` (a local path).
    pub dinov2: Value,
    /// Linear map from DINOv2 width to the U-Net's cross-attention width, when present.
    pub cond_proj: Option<CondProj>,
    /// Storage type of the weights ("f32", "f16", "bf16").
    pub dtype: String,
    pub lora: LoraInfo,
    pub provenance: Provenance,
    /// f16 pre-scales (`f2idiff calibrate`): convolution (full name, e.g.
    /// `vae.decoder.up_blocks.0.upsamplers.0.conv`) → `k`, its output stored × 2⁻ᵏ by backends
    /// that store activations in f16, where its f32 range would overflow f16. Absent in packs
    /// made before calibration existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub f16_prescales: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CondProj {
    pub in_features: usize,
    pub out_features: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoraMode {
    /// No adapter was given.
    None,
    /// Adapters folded into the base weights at pack time, in f32.
    Merge,
    /// `lora_A` / `lora_B` kept beside the base weights; `lora_B` carries `alpha/r`.
    Runtime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraInfo {
    pub mode: LoraMode,
    pub adapters: Vec<AdapterInfo>,
}

/// One adapter as found in the source folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterInfo {
    /// "unet" or "vae".
    pub module: String,
    /// Adapter name ("default" for PEFT's unnamed spelling).
    pub name: String,
    /// Source file, relative to the model folder.
    pub source: String,
    /// Distinct ranks and `alpha / r` scales used by its targets.
    pub ranks: Vec<usize>,
    pub scales: Vec<f64>,
    /// Number of base modules it changes.
    pub targets: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `f2idiff <version>` that wrote the pack.
    pub tool: String,
    pub files: Vec<SourceFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Path relative to the model folder, `/`-separated.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}
