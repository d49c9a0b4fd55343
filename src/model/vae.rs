//! diffusers `AutoencoderKL` (`models/autoencoders/autoencoder_kl.py`, `Encoder`/`Decoder` in
//! `autoencoders/vae.py`). The SR pipeline uses the encoder's posterior **mean** (no sampling),
//! scaled by `scaling_factor`, and decodes `z / scaling_factor`.
//!
//! ```text
//! encode: x [3,H,W] → conv_in → down blocks (resnets; downsample ×½ but last) → mid (resnet,
//!         attention, resnet) → GroupNorm+SiLU → conv_out → quant_conv → mean → (· − shift)·sf
//! decode: z → /sf (+ shift) → post_quant_conv → conv_in → mid → up blocks (resnets; upsample ×2
//!         but last) → GroupNorm+SiLU → conv_out → [3, H, W]
//! ```

use super::Loader;
use super::attention::SpatialAttention;
use super::resnet::{ResnetBlock, load_downsample, upsample};
use crate::backend::Backend;
use crate::config::VaeConfig;
use crate::error::Result;
use crate::exec::{Conv, Exec, Norm, Tensor};

/// GroupNorm eps inside the VAE (`resnet_eps` of its blocks).
const EPS: f64 = 1e-6;

struct Level<B: Backend> {
    resnets: Vec<ResnetBlock<B>>,
    /// Down- or up-sampling conv, absent on the last level.
    sampler: Option<Conv<B>>,
}

/// `UNetMidBlock2D` without time embedding.
pub struct MidBlock<B: Backend> {
    resnet0: ResnetBlock<B>,
    attention: Option<SpatialAttention<B>>,
    resnet1: ResnetBlock<B>,
}

impl<B: Backend> MidBlock<B> {
    pub fn load(l: &Loader<B>, c: usize, groups: usize, attention: bool) -> Result<Self> {
        Ok(MidBlock {
            resnet0: ResnetBlock::load(&l.at("resnets.0"), c, c, groups, EPS, None)?,
            attention: attention
                .then(|| SpatialAttention::load(&l.at("attentions.0"), c, groups, EPS))
                .transpose()?,
            resnet1: ResnetBlock::load(&l.at("resnets.1"), c, c, groups, EPS, None)?,
        })
    }

    pub fn forward(&self, cx: &mut Exec<B>, x: Tensor) -> Result<Tensor> {
        let mut h = self.resnet0.forward(cx, &x, None)?;
        drop(x);
        if let Some(a) = &self.attention {
            h = a.forward(cx, h)?;
        }
        self.resnet1.forward(cx, &h, None)
    }
}

pub struct VaeEncoder<B: Backend> {
    conv_in: Conv<B>,
    down: Vec<Level<B>>,
    mid: MidBlock<B>,
    norm_out: Norm<B>,
    conv_out: Conv<B>,
    quant_conv: Option<Conv<B>>,
    latent_channels: usize,
    scaling_factor: f32,
    shift_factor: f32,
}

impl<B: Backend> VaeEncoder<B> {
    pub fn load(l: &Loader<B>, cfg: &VaeConfig) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let (g, last) = (cfg.norm_num_groups, ch[ch.len() - 1]);
        let e = l.at("encoder");
        let mut down = Vec::new();
        let mut prev = ch[0];
        for (i, &out) in ch.iter().enumerate() {
            let b = e.at(&format!("down_blocks.{i}"));
            let resnets = (0..cfg.layers_per_block)
                .map(|j| {
                    ResnetBlock::load(
                        &b.at(&format!("resnets.{j}")),
                        if j == 0 { prev } else { out },
                        out,
                        g,
                        EPS,
                        None,
                    )
                })
                .collect::<Result<_>>()?;
            let sampler = (i + 1 < ch.len())
                .then(|| load_downsample(&b.at("downsamplers.0"), out, 0))
                .transpose()?;
            down.push(Level { resnets, sampler });
            prev = out;
        }
        let z2 = 2 * cfg.latent_channels;
        Ok(VaeEncoder {
            conv_in: e.conv_same("conv_in", cfg.in_channels, ch[0], 3)?,
            down,
            mid: MidBlock::load(&e.at("mid_block"), last, g, cfg.mid_block_add_attention)?,
            norm_out: e.group_norm("conv_norm_out", last, g, EPS)?,
            conv_out: e.conv_same("conv_out", last, z2, 3)?,
            quant_conv: cfg
                .use_quant_conv
                .then(|| l.conv_same("quant_conv", z2, z2, 1))
                .transpose()?,
            latent_channels: cfg.latent_channels,
            scaling_factor: cfg.scaling_factor as f32,
            shift_factor: cfg.shift_factor.unwrap_or(0.0) as f32,
        })
    }

    /// `x [3, H, W]` in [-1, 1] → `z [latent, H/f, W/f]` = (posterior mean − shift) · sf.
    pub fn forward(&self, cx: &mut Exec<B>, x: &Tensor) -> Result<Tensor> {
        let mut h = cx.conv2d(x, &self.conv_in)?;
        for level in &self.down {
            for r in &level.resnets {
                h = r.forward(cx, &h, None)?;
            }
            if let Some(s) = &level.sampler {
                h = cx.conv2d(&h, s)?;
            }
        }
        h = self.mid.forward(cx, h)?;
        h = cx.group_norm_conv2d_(h, &self.norm_out, true, &self.conv_out)?;
        if let Some(q) = &self.quant_conv {
            h = cx.conv2d(&h, q)?;
        }
        let mean = cx.narrow(&h, 0, self.latent_channels)?;
        drop(h);
        cx.affine_(mean, -self.shift_factor, self.scaling_factor, 0.0)
    }
}

pub struct VaeDecoder<B: Backend> {
    post_quant_conv: Option<Conv<B>>,
    conv_in: Conv<B>,
    mid: MidBlock<B>,
    up: Vec<Level<B>>,
    norm_out: Norm<B>,
    conv_out: Conv<B>,
    scaling_factor: f32,
    shift_factor: f32,
}

impl<B: Backend> VaeDecoder<B> {
    pub fn load(l: &Loader<B>, cfg: &VaeConfig) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let (g, last, z) = (cfg.norm_num_groups, ch[ch.len() - 1], cfg.latent_channels);
        let d = l.at("decoder");
        let mut up = Vec::new();
        let mut prev = last;
        for (i, &out) in ch.iter().rev().enumerate() {
            let b = d.at(&format!("up_blocks.{i}"));
            let resnets = (0..cfg.layers_per_block + 1)
                .map(|j| {
                    ResnetBlock::load(
                        &b.at(&format!("resnets.{j}")),
                        if j == 0 { prev } else { out },
                        out,
                        g,
                        EPS,
                        None,
                    )
                })
                .collect::<Result<_>>()?;
            let sampler = (i + 1 < ch.len())
                .then(|| b.conv_same("upsamplers.0.conv", out, out, 3))
                .transpose()?;
            up.push(Level { resnets, sampler });
            prev = out;
        }
        Ok(VaeDecoder {
            post_quant_conv: cfg
                .use_post_quant_conv
                .then(|| l.conv_same("post_quant_conv", z, z, 1))
                .transpose()?,
            conv_in: d.conv_same("conv_in", z, last, 3)?,
            mid: MidBlock::load(&d.at("mid_block"), last, g, cfg.mid_block_add_attention)?,
            up,
            norm_out: d.group_norm("conv_norm_out", ch[0], g, EPS)?,
            conv_out: d.conv_same("conv_out", ch[0], cfg.out_channels, 3)?,
            scaling_factor: cfg.scaling_factor as f32,
            shift_factor: cfg.shift_factor.unwrap_or(0.0) as f32,
        })
    }

    /// `z [latent, h, w]` (scaled, as the encoder gives it) → image `[3, h·f, w·f]`, unclamped.
    pub fn forward(&self, cx: &mut Exec<B>, z: &Tensor) -> Result<Tensor> {
        let z = cx.concat(&[crate::exec::Part::T(z)])?; // a copy we may scale in place
        let mut h = cx.affine_(z, 0.0, 1.0 / self.scaling_factor, self.shift_factor)?;
        if let Some(p) = &self.post_quant_conv {
            h = cx.conv2d(&h, p)?;
        }
        h = cx.conv2d(&h, &self.conv_in)?;
        h = self.mid.forward(cx, h)?;
        for level in &self.up {
            for r in &level.resnets {
                h = r.forward(cx, &h, None)?;
            }
            if let Some(s) = &level.sampler {
                h = upsample(cx, &h, s, None)?;
            }
        }
        cx.group_norm_conv2d_(h, &self.norm_out, true, &self.conv_out)
    }
}
