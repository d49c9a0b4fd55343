//! `f2idiff.json`: the pipeline's own settings (DESIGN.md §1). Absent fields take the paper's
//! defaults; unknown fields are kept in the pack's header untouched.

use super::{ensure, from_value};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineConfig {
    /// Upscaling factor of the whole pipeline.
    #[serde(default = "four")]
    pub scale: u32,
    /// The one diffusion timestep the U-Net runs at.
    #[serde(default = "t999")]
    pub timestep: u32,
    /// Side of the square DINOv2 input the LR tile is resized to.
    #[serde(default = "d224")]
    pub dino_image_size: u32,
    /// DINOv2 position-embedding interpolation: absent (default) = transformers 5.x (`size`);
    /// a number (0.1 in the original DINOv2 code and transformers 4.x) = the legacy
    /// `scale_factor = (grid + offset) / stored grid` rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dino_interpolate_offset: Option<f64>,
    /// The output tile side (HR pixels) the model was trained on, when it was trained on patches
    /// and should also run on them: the default tile when the caller picks none (the memory
    /// budget can still make it smaller). Absent = the largest tile that fits the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<u32>,
    /// What DINOv2 sees when the image runs as several tiles: each tile's own LR (`"tile"`,
    /// the default: the paper's patches) or the whole image's (`"image"`: one set of tokens
    /// conditions every tile). Absent = `"tile"`.
    #[serde(default, skip_serializing_if = "DinoContext::is_tile")]
    pub dino_context: DinoContext,
    /// The self-ensemble the model is meant to run with (`pipeline::ensemble`): 1, 2 or 4
    /// mirrored copies averaged; the default when the caller picks none. Absent = 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<u32>,
}

/// The LR pixels DINOv2 conditions a tile on (`f2idiff.json` `dino_context`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DinoContext {
    /// The tile's own LR pixels.
    #[default]
    Tile,
    /// The whole image's (or, with a region of interest, the whole input's): computed once
    /// per call, shared by every tile.
    Image,
}

impl DinoContext {
    fn is_tile(&self) -> bool {
        *self == DinoContext::Tile
    }
}

impl std::str::FromStr for DinoContext {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tile" => Ok(DinoContext::Tile),
            "image" => Ok(DinoContext::Image),
            _ => Err(crate::error::Error::InvalidArgument(format!(
                "DINOv2 context `{s}`: expected tile or image"
            ))),
        }
    }
}

fn four() -> u32 {
    4
}
fn t999() -> u32 {
    999
}
fn d224() -> u32 {
    224
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            scale: 4,
            timestep: 999,
            dino_image_size: 224,
            dino_interpolate_offset: None,
            tile: None,
            dino_context: DinoContext::Tile,
            ensemble: None,
        }
    }
}

/// Number of DDPM training steps; valid timesteps are `0..TRAIN_TIMESTEPS`.
pub const TRAIN_TIMESTEPS: u32 = 1000;

impl PipelineConfig {
    pub fn from_json(path: &Path, raw: &Value) -> Result<Self> {
        let cfg: PipelineConfig = from_value(path, raw)?;
        ensure((1..=16).contains(&cfg.scale), path, || {
            format!("scale {} is outside 1..=16", cfg.scale)
        })?;
        ensure(cfg.timestep < TRAIN_TIMESTEPS, path, || {
            format!("timestep {} is outside 0..{TRAIN_TIMESTEPS}", cfg.timestep)
        })?;
        ensure((14..=4096).contains(&cfg.dino_image_size), path, || {
            format!(
                "dino_image_size {} is outside 14..=4096",
                cfg.dino_image_size
            )
        })?;
        ensure(
            cfg.dino_interpolate_offset
                .is_none_or(|o| (0.0..1.0).contains(&o)),
            path,
            || {
                format!(
                    "dino_interpolate_offset {:?} is outside [0, 1)",
                    cfg.dino_interpolate_offset
                )
            },
        )?;
        ensure(
            cfg.tile
                .is_none_or(|t| (8..=8192).contains(&t) && t % 8 == 0 && t % cfg.scale == 0),
            path,
            || {
                format!(
                    "tile {:?} must be in 8..=8192 and a multiple of 8 and of the scale",
                    cfg.tile
                )
            },
        )?;
        ensure(
            cfg.ensemble
                .is_none_or(|n| crate::pipeline::ensemble::SIZES.contains(&(n as usize))),
            path,
            || format!("ensemble {:?} must be 1, 2 or 4", cfg.ensemble),
        )?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<PipelineConfig> {
        PipelineConfig::from_json(Path::new("f2idiff.json"), &v)
    }

    #[test]
    fn tile_is_optional_and_checked() {
        assert_eq!(parse(json!({})).unwrap().tile, None);
        assert_eq!(parse(json!({"tile": 128})).unwrap().tile, Some(128));
        for bad in [
            json!({"tile": 0}),
            json!({"tile": 100}),
            json!({"tile": 12}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        // a multiple of 8 that is not one of the scale
        assert!(parse(json!({"scale": 3, "tile": 64})).is_err());
        assert_eq!(
            parse(json!({"scale": 3, "tile": 48})).unwrap().tile,
            Some(48)
        );
        // absent stays absent in the pack header
        let text = serde_json::to_string(&PipelineConfig::default()).unwrap();
        assert!(!text.contains("tile"), "{text}");
    }

    #[test]
    fn dino_context_defaults_to_tile_and_rejects_unknown_values() {
        assert_eq!(parse(json!({})).unwrap().dino_context, DinoContext::Tile);
        let image = parse(json!({"dino_context": "image"})).unwrap();
        assert_eq!(image.dino_context, DinoContext::Image);
        let text = serde_json::to_string(&image).unwrap();
        assert!(text.contains(r#""dino_context":"image""#), "{text}");
        assert!(parse(json!({"dino_context": "global"})).is_err());
        assert!(parse(json!({"dino_context": 1})).is_err());
        assert_eq!("image".parse::<DinoContext>().unwrap(), DinoContext::Image);
        assert!("Image".parse::<DinoContext>().is_err());
    }

    #[test]
    fn ensemble_is_optional_and_checked() {
        assert_eq!(parse(json!({})).unwrap().ensemble, None);
        for n in [1, 2, 4] {
            assert_eq!(parse(json!({"ensemble": n})).unwrap().ensemble, Some(n));
        }
        for bad in [
            json!({"ensemble": 0}),
            json!({"ensemble": 3}),
            json!({"ensemble": 8}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        let text = serde_json::to_string(&PipelineConfig::default()).unwrap();
        assert!(!text.contains("ensemble"), "{text}");
    }
}
