//! diffusers `UNet2DConditionModel` (`models/unets/unet_2d_condition.py`) for the SD family:
//! `CrossAttnDownBlock2D` / `DownBlock2D`, `UNetMidBlock2DCrossAttn`, `CrossAttnUpBlock2D` /
//! `UpBlock2D` (`unet_2d_blocks.py`). In F2IDiff-SR the cross-attention context is the DINOv2
//! tokens of the LR image (through `cond_proj` when widths differ), not text.
//!
//! ```text
//! t → sinusoidal(c0) → linear_1 → SiLU → linear_2 = temb
//! x → conv_in → down levels (resnet[, transformer]) × layers, downsample; every output kept
//!   → mid (resnet, transformer, resnet)
//!   → up levels: (concat skip → resnet[, transformer]) × (layers + 1), upsample
//!   → GroupNorm+SiLU → conv_out = ε
//! ```

use super::Loader;
use super::resnet::{ResnetBlock, load_downsample, upsample};
use super::transformer::Transformer2D;
use crate::backend::Backend;
use crate::config::{DownBlock, UNetConfig, UpBlock};
use crate::error::{Error, Result};
use crate::exec::{Conv, Exec, Linear, Norm, Part, Tensor};

struct Layer<B: Backend> {
    resnet: ResnetBlock<B>,
    attention: Option<Transformer2D<B>>,
}

impl<B: Backend> Layer<B> {
    fn forward(&self, cx: &mut Exec<B>, x: &Tensor, temb: &Tensor, ctx: &Tensor) -> Result<Tensor> {
        let h = self.resnet.forward(cx, x, Some(temb))?;
        match &self.attention {
            Some(a) => a.forward(cx, h, ctx),
            None => Ok(h),
        }
    }
}

struct Block<B: Backend> {
    layers: Vec<Layer<B>>,
    sampler: Option<Conv<B>>,
}

pub struct UNet<B: Backend> {
    time_linear_1: Linear<B>,
    time_linear_2: Linear<B>,
    conv_in: Conv<B>,
    down: Vec<Block<B>>,
    mid: Option<(ResnetBlock<B>, Transformer2D<B>, ResnetBlock<B>)>,
    up: Vec<Block<B>>,
    norm_out: Norm<B>,
    conv_out: Conv<B>,
    cfg: UNetConfig,
}

impl<B: Backend> UNet<B> {
    pub fn load(l: &Loader<B>, cfg: &UNetConfig) -> Result<Self> {
        let levels = &cfg.levels;
        let n = levels.len();
        let (g, eps, temb) = (cfg.norm_num_groups, cfg.norm_eps, cfg.time_embed_dim);
        if cfg.time_scale_shift {
            return Err(Error::Unsupported(
                "U-Net resnet_time_scale_shift \"scale_shift\" in the CPU engine".into(),
            ));
        }
        let c0 = levels[0].channels;
        let transformer = |l: &Loader<B>, i: usize| {
            Transformer2D::load(l, &levels[i], g, cfg.use_linear_projection)
        };

        let mut down = Vec::new();
        let mut prev = c0;
        for (i, level) in levels.iter().enumerate() {
            let b = l.at(&format!("down_blocks.{i}"));
            let mut layers = Vec::new();
            for j in 0..level.layers {
                let inp = if j == 0 { prev } else { level.channels };
                layers.push(Layer {
                    resnet: ResnetBlock::load(
                        &b.at(&format!("resnets.{j}")),
                        inp,
                        level.channels,
                        g,
                        eps,
                        Some(temb),
                    )?,
                    attention: (level.down == DownBlock::CrossAttn)
                        .then(|| transformer(&b.at(&format!("attentions.{j}")), i))
                        .transpose()?,
                });
            }
            let sampler = (i + 1 < n)
                .then(|| {
                    load_downsample(
                        &b.at("downsamplers.0"),
                        level.channels,
                        cfg.downsample_padding,
                    )
                })
                .transpose()?;
            down.push(Block { layers, sampler });
            prev = level.channels;
        }

        let mid = if cfg.mid_block {
            let c = levels[n - 1].channels;
            let m = l.at("mid_block");
            Some((
                ResnetBlock::load(&m.at("resnets.0"), c, c, g, eps, Some(temb))?,
                transformer(&m.at("attentions.0"), n - 1)?,
                ResnetBlock::load(&m.at("resnets.1"), c, c, g, eps, Some(temb))?,
            ))
        } else {
            None
        };

        let mut up = Vec::new();
        let mut out = levels[n - 1].channels;
        for (i, &kind) in cfg.up_blocks.iter().enumerate() {
            let li = n - 1 - i;
            let prev_out = out;
            out = levels[li].channels;
            let skip_in = levels[li.saturating_sub(1)].channels;
            let count = levels[li].layers + 1;
            let b = l.at(&format!("up_blocks.{i}"));
            let mut layers = Vec::new();
            for j in 0..count {
                let skip = if j + 1 == count { skip_in } else { out };
                let res_in = if j == 0 { prev_out } else { out };
                layers.push(Layer {
                    resnet: ResnetBlock::load(
                        &b.at(&format!("resnets.{j}")),
                        res_in + skip,
                        out,
                        g,
                        eps,
                        Some(temb),
                    )?,
                    attention: (kind == UpBlock::CrossAttn)
                        .then(|| transformer(&b.at(&format!("attentions.{j}")), li))
                        .transpose()?,
                });
            }
            let sampler = (i + 1 < n)
                .then(|| b.conv_same("upsamplers.0.conv", out, out, 3))
                .transpose()?;
            up.push(Block { layers, sampler });
        }

        Ok(UNet {
            time_linear_1: l.linear("time_embedding.linear_1", c0, temb, true)?,
            time_linear_2: l.linear("time_embedding.linear_2", temb, temb, true)?,
            conv_in: l.conv_same("conv_in", cfg.in_channels, c0, cfg.conv_in_kernel)?,
            down,
            mid,
            up,
            norm_out: l.group_norm("conv_norm_out", c0, g, eps)?,
            conv_out: l.conv_same("conv_out", c0, cfg.out_channels, cfg.conv_out_kernel)?,
            cfg: cfg.clone(),
        })
    }

    /// `temb = linear_2(silu(linear_1(sinusoidal(t))))`, returned already passed through SiLU
    /// (the only form the resnets use).
    pub fn time_embedding(&self, cx: &mut Exec<B>, t: f32) -> Result<Tensor> {
        let c0 = self.cfg.levels[0].channels;
        let s =
            cx.timestep_embedding(t, c0, self.cfg.flip_sin_to_cos, self.cfg.freq_shift as f32)?;
        let h = cx.linear(&s, &self.time_linear_1)?;
        drop(s);
        let h = cx.silu_(h)?;
        let temb = cx.linear(&h, &self.time_linear_2)?;
        drop(h);
        Ok(temb)
    }

    /// `x [c_in, h, w]`, timestep `t`, context tokens `ctx [T, cross_dim]` → `ε [c_out, h, w]`.
    pub fn forward(&self, cx: &mut Exec<B>, x: &Tensor, t: f32, ctx: &Tensor) -> Result<Tensor> {
        if x.shape().len() != 3 || x.shape()[0] != self.cfg.in_channels || x.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "U-Net input {:?}",
                x.shape()
            )));
        }
        let temb = self.time_embedding(cx, t)?;
        let temb = cx.silu_(temb)?;

        let input = cx.concat(&[Part::T(x)])?;
        let input = if self.cfg.center_input_sample {
            cx.affine_(input, 0.0, 2.0, -1.0)?
        } else {
            input
        };
        // Down: every intermediate output (from conv_in on) is kept as a skip, in order.
        let mut skips = vec![cx.conv2d(&input, &self.conv_in)?];
        drop(input);
        for block in &self.down {
            for layer in &block.layers {
                let next = layer.forward(cx, last(&skips)?, &temb, ctx)?;
                skips.push(next);
            }
            if let Some(s) = &block.sampler {
                let d = cx.conv2d(last(&skips)?, s)?;
                skips.push(d);
            }
        }

        let mut h = match &self.mid {
            Some((r0, attn, r1)) => {
                let a = r0.forward(cx, last(&skips)?, Some(&temb))?;
                let a = attn.forward(cx, a, ctx)?;
                r1.forward(cx, &a, Some(&temb))?
            }
            None => cx.concat(&[Part::T(last(&skips)?)])?,
        };

        // Up: each layer concatenates the most recent skip along channels.
        for block in &self.up {
            for layer in &block.layers {
                let skip = skips
                    .pop()
                    .ok_or_else(|| Error::InvalidArgument("U-Net skip stack underflow".into()))?;
                let cat = cx.concat(&[Part::T(&h), Part::T(&skip)])?;
                drop((h, skip));
                h = layer.forward(cx, &cat, &temb, ctx)?;
            }
            if let Some(s) = &block.sampler {
                // Back to the size of the level above (diffusers' `upsample_size`), which is
                // not 2× when a side was odd on the way down.
                let target = last(&skips)?.shape();
                h = upsample(cx, &h, s, Some((target[1], target[2])))?;
            }
        }
        debug_assert!(skips.is_empty());
        drop(temb);

        cx.group_norm_conv2d_(h, &self.norm_out, true, &self.conv_out)
    }
}

fn last(skips: &[Tensor]) -> Result<&Tensor> {
    skips
        .last()
        .ok_or_else(|| Error::InvalidArgument("U-Net skip stack is empty".into()))
}
