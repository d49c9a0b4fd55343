//! Typed, validated views of the configs a model folder carries: diffusers `AutoencoderKL` and
//! `UNet2DConditionModel` `config.json`, transformers `Dinov2Model` `config.json`, and our own
//! `f2idiff.json`. Defaults are those of the reference classes, so a config that omits a field
//! means what it means to diffusers / transformers.
//!
//! Each config keeps its raw JSON beside the typed view: the pack stores the raw JSON verbatim.

mod dinov2;
pub mod pipeline;
mod unet;
mod vae;

pub use dinov2::Dinov2Config;
pub use pipeline::{DinoContext, PipelineConfig};
pub use unet::{DownBlock, UNetConfig, UNetLevel, UpBlock};
pub use vae::VaeConfig;

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;

/// Reads and parses a JSON file.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::config(path, format!("unparsable JSON: {e}")))
}

/// Deserializes `raw` into `T`, naming `path` (the config's origin) in any error.
pub(crate) fn from_value<T: DeserializeOwned>(path: &Path, raw: &Value) -> Result<T> {
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let field = e.path().to_string();
        Error::config(
            path,
            format!("invalid config field `{field}`: {}", e.into_inner()),
        )
    })
}

/// A config field that diffusers accepts either as one value or as one value per block.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// One value per block: a scalar is repeated, a list must have exactly `n` entries.
    pub(crate) fn per_block(&self, n: usize, path: &Path, field: &str) -> Result<Vec<T>> {
        match self {
            OneOrMany::One(v) => Ok(vec![v.clone(); n]),
            OneOrMany::Many(v) if v.len() == n => Ok(v.clone()),
            OneOrMany::Many(v) => Err(Error::config(
                path,
                format!(
                    "`{field}` has {} entries, expected one per block ({n})",
                    v.len()
                ),
            )),
        }
    }
}

/// Checks that GroupNorm over `channels` with `groups` groups is well defined.
pub(crate) fn check_groups(path: &Path, what: &str, channels: usize, groups: usize) -> Result<()> {
    if groups == 0 || channels % groups != 0 {
        return Err(Error::config(
            path,
            format!("{what}: {channels} channels are not divisible into {groups} GroupNorm groups"),
        ));
    }
    Ok(())
}

/// Fails with a config error when `ok` is false.
pub(crate) fn ensure(ok: bool, path: &Path, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(path, msg()))
    }
}

/// Fails with `Unsupported` naming the config file when `ok` is false.
pub(crate) fn ensure_supported(ok: bool, path: &Path, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Unsupported(format!("{}: {}", path.display(), msg())))
    }
}

/// The four configs of one model, parsed and checked against each other.
#[derive(Debug, Clone)]
pub struct ModelConfigs {
    pub pipeline: PipelineConfig,
    pub vae: VaeConfig,
    pub unet: UNetConfig,
    pub dinov2: Dinov2Config,
}

/// A raw config and the place it came from (a file, or a section of a pack's header).
pub type Located<'a> = (&'a Path, &'a Value);

impl ModelConfigs {
    pub fn parse(
        pipeline: Located,
        vae: Located,
        unet: Located,
        dinov2: Located,
    ) -> Result<ModelConfigs> {
        Ok(ModelConfigs {
            pipeline: PipelineConfig::from_json(pipeline.0, pipeline.1)?,
            vae: VaeConfig::from_json(vae.0, vae.1)?,
            unet: UNetConfig::from_json(unet.0, unet.1)?,
            dinov2: Dinov2Config::from_json(dinov2.0, dinov2.1)?,
        })
    }

    /// Checks that the networks fit together: latent widths, and the conditioning width the
    /// U-Net attends to against DINOv2's width (directly, or through `cond_proj` `[out, in]`).
    pub fn check_consistency(
        &self,
        unet_path: &Path,
        cond_proj: Option<(usize, usize)>,
    ) -> Result<()> {
        let latent = self.vae.latent_channels;
        ensure(
            self.unet.in_channels == latent && self.unet.out_channels == latent,
            unet_path,
            || {
                format!(
                    "U-Net in/out channels {}/{} do not match the VAE's {latent} latent channels",
                    self.unet.in_channels, self.unet.out_channels
                )
            },
        )?;
        let dino = self.dinov2.hidden_size;
        let Some(ctx) = self.unet.context_dim() else {
            return Err(Error::Unsupported(format!(
                "{}: U-Net without cross-attention, or with a cross_attention_dim that differs between blocks",
                unet_path.display()
            )));
        };
        match cond_proj {
            Some((out, inp)) => ensure(out == ctx && inp == dino, unet_path, || {
                format!(
                    "cond_proj maps {inp} → {out}, but DINOv2 gives {dino} and the U-Net attends to {ctx}"
                )
            }),
            None => ensure(dino == ctx, unet_path, || {
                format!(
                    "U-Net cross_attention_dim {ctx} differs from DINOv2 hidden_size {dino} and there is no cond_proj.safetensors"
                )
            }),
        }
    }
}
