//! transformers `Dinov2Model` / `Dinov2WithRegistersModel` (`models/dinov2/modeling_dinov2.py`),
//! returning `last_hidden_state`, and F2IDiff-SR's optional `cond_proj` to the U-Net's width.
//!
//! ```text
//! pixels [3, H, W] → patch conv (p×p, stride p) → tokens [N, D]; prepend cls; + position
//! embeddings (bicubic-resized to the patch grid when it differs, as transformers 5.x does);
//! registers inserted after cls → L × (x += ls1·attn(norm1 x); x += ls2·mlp(norm2 x)) → LayerNorm
//! ```

use super::Loader;
use crate::backend::{Backend, Glu};
use crate::config::Dinov2Config;
use crate::error::{Error, Result};
use crate::exec::{Conv, Exec, Linear, Norm, Param, Part, Tensor};

struct Layer<B: Backend> {
    norm1: Norm<B>,
    query: Linear<B>,
    key: Linear<B>,
    value: Linear<B>,
    out: Linear<B>,
    layer_scale1: Param<B>,
    norm2: Norm<B>,
    /// fc1 (or SwiGLU's joint gate+value projection) and fc2.
    mlp_in: Linear<B>,
    mlp_out: Linear<B>,
    layer_scale2: Param<B>,
}

pub struct Dinov2<B: Backend> {
    patch: Conv<B>,
    cls_token: Param<B>,
    register_tokens: Option<Param<B>>,
    /// `[1 + g², D]` for the `g × g` grid of `image_size`.
    position_embeddings: Param<B>,
    layers: Vec<Layer<B>>,
    layernorm: Norm<B>,
    cfg: Dinov2Config,
    /// `Some(offset)`: interpolate position embeddings the legacy way (see
    /// `PipelineConfig::dino_interpolate_offset`).
    pub interpolate_offset: Option<f64>,
}

impl<B: Backend> Dinov2<B> {
    pub fn load(l: &Loader<B>, cfg: &Dinov2Config) -> Result<Self> {
        let (d, p, g) = (cfg.hidden_size, cfg.patch_size, cfg.grid());
        let eps = cfg.layer_norm_eps;
        let e = l.at("embeddings");
        let mlp = cfg.mlp_hidden();
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let b = l.at(&format!("encoder.layer.{i}"));
                let (mlp_in, mlp_out) = if cfg.use_swiglu_ffn {
                    (
                        b.linear("mlp.weights_in", d, 2 * mlp, true)?,
                        b.linear("mlp.weights_out", mlp, d, true)?,
                    )
                } else {
                    (
                        b.linear("mlp.fc1", d, mlp, true)?,
                        b.linear("mlp.fc2", mlp, d, true)?,
                    )
                };
                Ok(Layer {
                    norm1: b.layer_norm("norm1", d, eps)?,
                    query: b.linear("attention.attention.query", d, d, cfg.qkv_bias)?,
                    key: b.linear("attention.attention.key", d, d, cfg.qkv_bias)?,
                    value: b.linear("attention.attention.value", d, d, cfg.qkv_bias)?,
                    out: b.linear("attention.output.dense", d, d, true)?,
                    layer_scale1: b.param("layer_scale1.lambda1", &[d])?,
                    norm2: b.layer_norm("norm2", d, eps)?,
                    mlp_in,
                    mlp_out,
                    layer_scale2: b.param("layer_scale2.lambda1", &[d])?,
                })
            })
            .collect::<Result<_>>()?;
        let r = cfg.register_tokens();
        Ok(Dinov2 {
            patch: e.conv(
                "patch_embeddings.projection",
                cfg.num_channels,
                d,
                p,
                p,
                [0; 4],
            )?,
            cls_token: e.param("cls_token", &[1, 1, d])?,
            register_tokens: (r > 0)
                .then(|| e.param("register_tokens", &[1, r, d]))
                .transpose()?,
            position_embeddings: e.param("position_embeddings", &[1, g * g + 1, d])?,
            layers,
            layernorm: l.layer_norm("layernorm", d, eps)?,
            cfg: cfg.clone(),
            interpolate_offset: None,
        })
    }

    /// Tokens out: `1 + registers + (H/p)·(W/p)`.
    pub fn tokens(&self, h: usize, w: usize) -> usize {
        let p = self.cfg.patch_size;
        1 + self.cfg.register_tokens() + (h / p) * (w / p)
    }

    /// `pixels [C, H, W]` (ImageNet-normalised) → `last_hidden_state [T, D]`.
    pub fn forward(&self, cx: &mut Exec<B>, pixels: &Tensor) -> Result<Tensor> {
        let (d, p) = (self.cfg.hidden_size, self.cfg.patch_size);
        let [_, h, w] = pixels.shape()[..] else {
            return Err(Error::InvalidArgument(format!(
                "DINOv2 input {:?} is not [C, H, W]",
                pixels.shape()
            )));
        };
        if h < p || w < p {
            return Err(Error::InvalidArgument(format!(
                "DINOv2 input {h}×{w} is smaller than one {p}×{p} patch"
            )));
        }
        let patches = cx.conv2d(pixels, &self.patch)?; // [D, gh, gw]
        let (gh, gw) = (patches.shape()[1], patches.shape()[2]);
        let tokens = cx.transpose(&patches)?; // [N, D]
        drop(patches);
        let cls = cx.param(&self.cls_token)?.reshape(&[1, d])?;
        let x = cx.concat(&[Part::T(&cls), Part::T(&tokens)])?;
        drop((cls, tokens));
        let pos = self.position_embedding(cx, gh, gw, h == w)?;
        let mut x = cx.add_(x, &pos)?;
        drop(pos);
        if let Some(reg) = &self.register_tokens {
            let cls = cx.narrow(&x, 0, 1)?;
            let rest = cx.narrow(&x, 1, gh * gw)?;
            drop(x);
            x = cx.concat(&[Part::T(&cls), Part::W(reg), Part::T(&rest)])?;
        }
        for layer in &self.layers {
            x = layer.forward(
                cx,
                x,
                self.cfg.num_attention_heads,
                self.cfg.use_swiglu_ffn,
                &self.cfg.hidden_act,
            )?;
        }
        cx.layer_norm(&x, &self.layernorm)
    }

    /// The position table for a `gh × gw` grid: the stored one when it matches (transformers
    /// also requires a square input), else its patch part resized bicubically (`size=(gh, gw)`,
    /// `align_corners=False`) in f32, with the cls position kept.
    fn position_embedding(
        &self,
        cx: &mut Exec<B>,
        gh: usize,
        gw: usize,
        square: bool,
    ) -> Result<Tensor> {
        let (d, g) = (self.cfg.hidden_size, self.cfg.grid());
        let table = cx
            .param(&self.position_embeddings)?
            .reshape(&[g * g + 1, d])?;
        if gh * gw == g * g && square {
            return Ok(table);
        }
        let cls = cx.narrow(&table, 0, 1)?;
        let grid = cx.narrow(&table, 1, g * g)?;
        drop(table);
        let chw = cx.transpose(&grid)?.reshape(&[d, g, g])?; // [D, g, g]
        drop(grid);
        let resized = match self.interpolate_offset {
            // Original DINOv2 / transformers 4.x: a scale factor with an offset, no antialias.
            Some(off) => {
                let sf = ((gh as f64 + off) / g as f64, (gw as f64 + off) / g as f64);
                cx.bicubic(&chw, gh, gw, Some(sf), false)?
            }
            // transformers 5.x: by size; Dinov2WithRegisters with antialias.
            None => {
                let antialias = self.cfg.model_type == "dinov2_with_registers";
                cx.bicubic(&chw, gh, gw, None, antialias)?
            }
        };
        drop(chw);
        let rows = cx.transpose(&resized)?; // [gh·gw, D]
        drop(resized);
        cx.concat(&[Part::T(&cls), Part::T(&rows)])
    }
}

impl<B: Backend> Layer<B> {
    fn forward(
        &self,
        cx: &mut Exec<B>,
        x: Tensor,
        heads: usize,
        swiglu: bool,
        act: &str,
    ) -> Result<Tensor> {
        let n = cx.layer_norm(&x, &self.norm1)?;
        let q = cx.linear(&n, &self.query)?;
        let k = cx.linear(&n, &self.key)?;
        let v = cx.linear(&n, &self.value)?;
        drop(n);
        let a = cx.attention(&q, &k, &v, heads)?;
        drop((q, k, v));
        let o = cx.linear(&a, &self.out)?;
        drop(a);
        let x = cx.scale_add_(x, &o, &self.layer_scale1)?;
        drop(o);

        let n = cx.layer_norm(&x, &self.norm2)?;
        let h = cx.linear(&n, &self.mlp_in)?;
        drop(n);
        let h = if swiglu {
            let g = cx.glu(&h, Glu::SiluGateFirst)?;
            drop(h);
            g
        } else {
            cx.gelu_(h, act != "gelu")?
        };
        let o = cx.linear(&h, &self.mlp_out)?;
        drop(h);
        let x = cx.scale_add_(x, &o, &self.layer_scale2)?;
        Ok(x)
    }
}

/// F2IDiff-SR's projection of DINOv2 tokens to the U-Net's cross-attention width.
pub struct CondProj<B: Backend> {
    proj: Linear<B>,
}

impl<B: Backend> CondProj<B> {
    pub fn load(l: &Loader<B>, n_in: usize, n_out: usize) -> Result<Self> {
        Ok(CondProj {
            proj: l.linear_here(n_in, n_out, true)?,
        })
    }

    pub fn forward(&self, cx: &mut Exec<B>, tokens: &Tensor) -> Result<Tensor> {
        cx.linear(tokens, &self.proj)
    }
}
