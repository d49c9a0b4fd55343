//! diffusers `UNet2DConditionModel` config (`diffusers/models/unets/unet_2d_condition.py`),
//! resolved into one [`UNetLevel`] per resolution exactly as the reference constructor does.
//!
//! Note the reference's historical naming: when `num_attention_heads` is absent,
//! `attention_head_dim` is the number of heads (SD-2.1 writes `[5, 10, 20, 20]`).

use super::{OneOrMany, check_groups, ensure, ensure_supported, from_value};
use crate::error::Result;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownBlock {
    /// `CrossAttnDownBlock2D`: resnet + transformer per layer.
    CrossAttn,
    /// `DownBlock2D`: resnets only.
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpBlock {
    CrossAttn,
    Plain,
}

/// One resolution level of the U-Net, as the down path sees it (index 0 = full resolution).
#[derive(Debug, Clone, PartialEq)]
pub struct UNetLevel {
    pub channels: usize,
    pub down: DownBlock,
    pub layers: usize,
    pub transformer_layers: usize,
    pub heads: usize,
    pub cross_attention_dim: usize,
    pub only_cross_attention: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UNetConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub levels: Vec<UNetLevel>,
    /// Up blocks in execution order (deepest first), each mirroring level `len - 1 - i`.
    pub up_blocks: Vec<UpBlock>,
    pub mid_block: bool,
    pub norm_num_groups: usize,
    pub norm_eps: f64,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
    pub time_embed_dim: usize,
    pub use_linear_projection: bool,
    pub upcast_attention: bool,
    /// `resnet_time_scale_shift == "scale_shift"`: time embedding gives scale and shift.
    pub time_scale_shift: bool,
    pub conv_in_kernel: usize,
    pub conv_out_kernel: usize,
    pub downsample_padding: usize,
    pub center_input_sample: bool,
    pub sample_size: Option<usize>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default = "four")]
    in_channels: usize,
    #[serde(default = "four")]
    out_channels: usize,
    #[serde(default)]
    center_input_sample: bool,
    #[serde(default = "yes")]
    flip_sin_to_cos: bool,
    #[serde(default)]
    freq_shift: f64,
    #[serde(default = "default_down")]
    down_block_types: Vec<String>,
    #[serde(default = "default_mid")]
    mid_block_type: Option<String>,
    #[serde(default = "default_up")]
    up_block_types: Vec<String>,
    #[serde(default = "no_cross_only")]
    only_cross_attention: OneOrMany<bool>,
    #[serde(default = "default_channels")]
    block_out_channels: Vec<usize>,
    #[serde(default = "two")]
    layers_per_block: OneOrMany<usize>,
    #[serde(default = "one")]
    downsample_padding: usize,
    #[serde(default = "silu")]
    act_fn: String,
    #[serde(default = "thirty_two")]
    norm_num_groups: Option<usize>,
    #[serde(default = "default_eps")]
    norm_eps: f64,
    #[serde(default = "default_cross")]
    cross_attention_dim: OneOrMany<usize>,
    #[serde(default = "one_many")]
    transformer_layers_per_block: OneOrMany<usize>,
    #[serde(default = "eight")]
    attention_head_dim: OneOrMany<usize>,
    #[serde(default)]
    num_attention_heads: Option<OneOrMany<usize>>,
    #[serde(default)]
    dual_cross_attention: bool,
    #[serde(default)]
    use_linear_projection: bool,
    #[serde(default)]
    upcast_attention: bool,
    #[serde(default = "default_shift")]
    resnet_time_scale_shift: String,
    #[serde(default = "positional")]
    time_embedding_type: String,
    #[serde(default)]
    time_embedding_dim: Option<usize>,
    #[serde(default = "three")]
    conv_in_kernel: usize,
    #[serde(default = "three")]
    conv_out_kernel: usize,
    #[serde(default = "default_attention_type")]
    attention_type: String,
    #[serde(default)]
    sample_size: Option<usize>,
    // Options that add weights or compute this SDK does not implement; any non-null is refused.
    #[serde(default)]
    encoder_hid_dim: Option<Value>,
    #[serde(default)]
    class_embed_type: Option<Value>,
    #[serde(default)]
    addition_embed_type: Option<Value>,
    #[serde(default)]
    num_class_embeds: Option<Value>,
    #[serde(default)]
    time_cond_proj_dim: Option<Value>,
    #[serde(default)]
    timestep_post_act: Option<Value>,
    #[serde(default)]
    time_embedding_act_fn: Option<Value>,
    #[serde(default)]
    cross_attention_norm: Option<Value>,
    #[serde(default)]
    reverse_transformer_layers_per_block: Option<Value>,
    #[serde(default)]
    mid_block_only_cross_attention: Option<Value>,
    #[serde(default = "unit")]
    mid_block_scale_factor: f64,
    #[serde(default = "unit")]
    resnet_out_scale_factor: f64,
    #[serde(default)]
    resnet_skip_time_act: bool,
}

fn unit() -> f64 {
    1.0
}

fn four() -> usize {
    4
}
fn three() -> usize {
    3
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn two() -> OneOrMany<usize> {
    OneOrMany::One(2)
}
fn eight() -> OneOrMany<usize> {
    OneOrMany::One(8)
}
fn one_many() -> OneOrMany<usize> {
    OneOrMany::One(1)
}
fn no_cross_only() -> OneOrMany<bool> {
    OneOrMany::One(false)
}
fn default_cross() -> OneOrMany<usize> {
    OneOrMany::One(1280)
}
fn thirty_two() -> Option<usize> {
    Some(32)
}
fn default_eps() -> f64 {
    1e-5
}
fn silu() -> String {
    "silu".into()
}
fn default_shift() -> String {
    "default".into()
}
fn positional() -> String {
    "positional".into()
}
fn default_attention_type() -> String {
    "default".into()
}
fn default_mid() -> Option<String> {
    Some("UNetMidBlock2DCrossAttn".into())
}
fn default_channels() -> Vec<usize> {
    vec![320, 640, 1280, 1280]
}
fn default_down() -> Vec<String> {
    let mut v = vec!["CrossAttnDownBlock2D".to_string(); 3];
    v.push("DownBlock2D".into());
    v
}
fn default_up() -> Vec<String> {
    let mut v = vec!["UpBlock2D".to_string()];
    v.extend(vec!["CrossAttnUpBlock2D".to_string(); 3]);
    v
}

impl UNetConfig {
    pub fn from_json(path: &Path, raw: &Value) -> Result<Self> {
        let r: Raw = from_value(path, raw)?;
        let refused = [
            ("encoder_hid_dim", &r.encoder_hid_dim),
            ("class_embed_type", &r.class_embed_type),
            ("addition_embed_type", &r.addition_embed_type),
            ("num_class_embeds", &r.num_class_embeds),
            ("time_cond_proj_dim", &r.time_cond_proj_dim),
            ("timestep_post_act", &r.timestep_post_act),
            ("time_embedding_act_fn", &r.time_embedding_act_fn),
            ("cross_attention_norm", &r.cross_attention_norm),
            (
                "reverse_transformer_layers_per_block",
                &r.reverse_transformer_layers_per_block,
            ),
        ];
        for (field, value) in refused {
            ensure_supported(value.as_ref().is_none_or(Value::is_null), path, || {
                format!(
                    "U-Net option `{field}` = {}",
                    value.as_ref().unwrap_or(&Value::Null)
                )
            })?;
        }
        ensure_supported(
            r.mid_block_only_cross_attention
                .as_ref()
                .is_none_or(|v| v.is_null() || *v == Value::Bool(false)),
            path,
            || "U-Net option `mid_block_only_cross_attention`".into(),
        )?;
        ensure_supported(
            r.mid_block_scale_factor == 1.0 && r.resnet_out_scale_factor == 1.0,
            path,
            || {
                format!(
                    "U-Net output scale factors (mid_block_scale_factor {}, resnet_out_scale_factor {})",
                    r.mid_block_scale_factor, r.resnet_out_scale_factor
                )
            },
        )?;
        ensure_supported(!r.resnet_skip_time_act, path, || {
            "U-Net option `resnet_skip_time_act`".into()
        })?;
        ensure_supported(!r.dual_cross_attention, path, || {
            "U-Net option `dual_cross_attention`".into()
        })?;
        ensure_supported(r.act_fn == "silu", path, || {
            format!("U-Net act_fn `{}` (supported: silu)", r.act_fn)
        })?;
        ensure_supported(r.time_embedding_type == "positional", path, || {
            format!("U-Net time_embedding_type `{}`", r.time_embedding_type)
        })?;
        ensure_supported(r.attention_type == "default", path, || {
            format!("U-Net attention_type `{}`", r.attention_type)
        })?;
        let time_scale_shift = match r.resnet_time_scale_shift.as_str() {
            "default" => false,
            "scale_shift" => true,
            other => {
                return Err(crate::Error::Unsupported(format!(
                    "{}: U-Net resnet_time_scale_shift `{other}`",
                    path.display()
                )));
            }
        };
        let mid_block = match r.mid_block_type.as_deref() {
            None => false,
            Some("UNetMidBlock2DCrossAttn") => true,
            Some(other) => {
                return Err(crate::Error::Unsupported(format!(
                    "{}: U-Net mid_block_type `{other}` (supported: UNetMidBlock2DCrossAttn, null)",
                    path.display()
                )));
            }
        };
        let norm_num_groups = r.norm_num_groups.ok_or_else(|| {
            crate::Error::Unsupported(format!(
                "{}: U-Net without GroupNorm (`norm_num_groups` null)",
                path.display()
            ))
        })?;

        let n = r.block_out_channels.len();
        ensure(n > 0, path, || "`block_out_channels` is empty".into())?;
        ensure(
            r.down_block_types.len() == n && r.up_block_types.len() == n,
            path,
            || {
                format!(
                    "{} down and {} up block types for {n} `block_out_channels`",
                    r.down_block_types.len(),
                    r.up_block_types.len()
                )
            },
        )?;
        let layers = r.layers_per_block.per_block(n, path, "layers_per_block")?;
        let transformer_layers =
            r.transformer_layers_per_block
                .per_block(n, path, "transformer_layers_per_block")?;
        let heads = r
            .num_attention_heads
            .as_ref()
            .unwrap_or(&r.attention_head_dim)
            .per_block(n, path, "num_attention_heads")?;
        let cross = r
            .cross_attention_dim
            .per_block(n, path, "cross_attention_dim")?;
        let only_cross = r
            .only_cross_attention
            .per_block(n, path, "only_cross_attention")?;

        let mut levels = Vec::with_capacity(n);
        for i in 0..n {
            let channels = r.block_out_channels[i];
            let down = match r.down_block_types[i].as_str() {
                "CrossAttnDownBlock2D" => DownBlock::CrossAttn,
                "DownBlock2D" => DownBlock::Plain,
                other => {
                    return Err(crate::Error::Unsupported(format!(
                        "{}: U-Net down block type `{other}` (supported: CrossAttnDownBlock2D, DownBlock2D)",
                        path.display()
                    )));
                }
            };
            check_groups(path, "U-Net block", channels, norm_num_groups)?;
            ensure(layers[i] > 0, path, || {
                format!("`layers_per_block` of block {i} must be positive")
            })?;
            let needs_attention = down == DownBlock::CrossAttn
                || r.up_block_types[n - 1 - i] == "CrossAttnUpBlock2D"
                || (mid_block && i == n - 1);
            if needs_attention {
                ensure(heads[i] > 0 && channels % heads[i] == 0, path, || {
                    format!(
                        "block {i}: {channels} channels do not split into {} heads",
                        heads[i]
                    )
                })?;
                ensure(cross[i] > 0 && transformer_layers[i] > 0, path, || {
                    format!(
                        "block {i}: cross_attention_dim and transformer layers must be positive"
                    )
                })?;
            }
            levels.push(UNetLevel {
                channels,
                down,
                layers: layers[i],
                transformer_layers: transformer_layers[i],
                heads: heads[i],
                cross_attention_dim: cross[i],
                only_cross_attention: only_cross[i],
            });
        }
        let mut up_blocks = Vec::with_capacity(n);
        for t in &r.up_block_types {
            up_blocks.push(match t.as_str() {
                "CrossAttnUpBlock2D" => UpBlock::CrossAttn,
                "UpBlock2D" => UpBlock::Plain,
                other => {
                    return Err(crate::Error::Unsupported(format!(
                        "{}: U-Net up block type `{other}` (supported: CrossAttnUpBlock2D, UpBlock2D)",
                        path.display()
                    )));
                }
            });
        }
        ensure(
            r.conv_in_kernel % 2 == 1 && r.conv_out_kernel % 2 == 1,
            path,
            || "conv_in_kernel / conv_out_kernel must be odd".into(),
        )?;
        ensure(r.in_channels > 0 && r.out_channels > 0, path, || {
            "channel counts must be positive".into()
        })?;
        Ok(UNetConfig {
            in_channels: r.in_channels,
            out_channels: r.out_channels,
            time_embed_dim: r.time_embedding_dim.unwrap_or(4 * levels[0].channels),
            levels,
            up_blocks,
            mid_block,
            norm_num_groups,
            norm_eps: r.norm_eps,
            flip_sin_to_cos: r.flip_sin_to_cos,
            freq_shift: r.freq_shift,
            use_linear_projection: r.use_linear_projection,
            upcast_attention: r.upcast_attention,
            time_scale_shift,
            conv_in_kernel: r.conv_in_kernel,
            conv_out_kernel: r.conv_out_kernel,
            downsample_padding: r.downsample_padding,
            center_input_sample: r.center_input_sample,
            sample_size: r.sample_size,
        })
    }

    /// The cross-attention context width every attention block expects; `None` when levels
    /// disagree or no level attends.
    pub fn context_dim(&self) -> Option<usize> {
        let mut dims = self.attending_levels().map(|l| l.cross_attention_dim);
        let first = dims.next()?;
        dims.all(|d| d == first).then_some(first)
    }

    fn attending_levels(&self) -> impl Iterator<Item = &UNetLevel> {
        let n = self.levels.len();
        self.levels.iter().enumerate().filter_map(move |(i, l)| {
            let attends = l.down == DownBlock::CrossAttn
                || self.up_blocks[n - 1 - i] == UpBlock::CrossAttn
                || (self.mid_block && i == n - 1);
            attends.then_some(l)
        })
    }
}
