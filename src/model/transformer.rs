//! diffusers `Transformer2DModel` (`models/transformers/transformer_2d.py`) with
//! `BasicTransformerBlock` and `FeedForward`/`GEGLU` (`models/attention.py`), as the SD U-Net
//! uses them: GroupNorm, proj_in (linear or 1×1 conv), blocks of self-attention, cross-attention
//! to the conditioning tokens and a GEGLU MLP, proj_out, residual.

use super::Loader;
use super::attention::Attention;
use crate::backend::{Backend, Glu};
use crate::config::UNetLevel;
use crate::error::Result;
use crate::exec::{Conv, Exec, Linear, Norm, Tensor};

/// LayerNorm eps of `BasicTransformerBlock` in the U-Net (diffusers' default).
const LAYER_NORM_EPS: f64 = 1e-5;
/// GroupNorm eps of `Transformer2DModel`.
const GROUP_NORM_EPS: f64 = 1e-6;

enum Proj<B: Backend> {
    Linear(Linear<B>),
    Conv(Conv<B>),
}

struct BasicTransformerBlock<B: Backend> {
    norm1: Norm<B>,
    attn1: Attention<B>,
    norm2: Norm<B>,
    attn2: Attention<B>,
    norm3: Norm<B>,
    ff_proj: Linear<B>,
    ff_out: Linear<B>,
    only_cross_attention: bool,
}

impl<B: Backend> BasicTransformerBlock<B> {
    fn load(l: &Loader<B>, c: usize, level: &UNetLevel) -> Result<Self> {
        let ctx = level.cross_attention_dim;
        let self_kv = if level.only_cross_attention { ctx } else { c };
        Ok(BasicTransformerBlock {
            norm1: l.layer_norm("norm1", c, LAYER_NORM_EPS)?,
            attn1: Attention::load(&l.at("attn1"), c, self_kv, level.heads, false)?,
            norm2: l.layer_norm("norm2", c, LAYER_NORM_EPS)?,
            attn2: Attention::load(&l.at("attn2"), c, ctx, level.heads, false)?,
            norm3: l.layer_norm("norm3", c, LAYER_NORM_EPS)?,
            ff_proj: l.linear("ff.net.0.proj", c, 8 * c, true)?,
            ff_out: l.linear("ff.net.2", 4 * c, c, true)?,
            only_cross_attention: level.only_cross_attention,
        })
    }

    /// Tokens `x [H·W, C]` updated in place: `x += attn1(norm1 x)`, `x += attn2(norm2 x, ctx)`,
    /// `x += ff(norm3 x)`.
    fn forward(&self, cx: &mut Exec<B>, mut x: Tensor, ctx: &Tensor) -> Result<Tensor> {
        let n = cx.layer_norm(&x, &self.norm1)?;
        let self_ctx = self.only_cross_attention.then_some(ctx);
        self.attn1.forward_add(cx, &n, self_ctx, &mut x)?;
        drop(n);
        let n = cx.layer_norm(&x, &self.norm2)?;
        self.attn2.forward_add(cx, &n, Some(ctx), &mut x)?;
        drop(n);
        let n = cx.layer_norm(&x, &self.norm3)?;
        let h = cx.linear(&n, &self.ff_proj)?;
        drop(n);
        let g = cx.glu(&h, Glu::GeluGateSecond)?;
        drop(h);
        cx.linear_into(&g, &self.ff_out, &mut x, true)?;
        Ok(x)
    }
}

pub struct Transformer2D<B: Backend> {
    norm: Norm<B>,
    proj_in: Proj<B>,
    blocks: Vec<BasicTransformerBlock<B>>,
    proj_out: Proj<B>,
}

impl<B: Backend> Transformer2D<B> {
    pub fn load(
        l: &Loader<B>,
        level: &UNetLevel,
        groups: usize,
        linear_projection: bool,
    ) -> Result<Self> {
        let c = level.channels;
        let proj = |name: &str| -> Result<Proj<B>> {
            Ok(if linear_projection {
                Proj::Linear(l.linear(name, c, c, true)?)
            } else {
                Proj::Conv(l.conv_same(name, c, c, 1)?)
            })
        };
        Ok(Transformer2D {
            norm: l.group_norm("norm", c, groups, GROUP_NORM_EPS)?,
            proj_in: proj("proj_in")?,
            blocks: (0..level.transformer_layers)
                .map(|k| {
                    BasicTransformerBlock::load(&l.at(&format!("transformer_blocks.{k}")), c, level)
                })
                .collect::<Result<_>>()?,
            proj_out: proj("proj_out")?,
        })
    }

    /// `x [C, H, W] → x + proj_out(blocks(proj_in(norm x)))`.
    pub fn forward(&self, cx: &mut Exec<B>, x: Tensor, ctx: &Tensor) -> Result<Tensor> {
        let shape = x.shape().to_vec();
        let n = cx.group_norm(&x, &self.norm, false)?;
        let mut tokens = match &self.proj_in {
            Proj::Linear(p) => {
                let t = cx.transpose(&n)?; // [H·W, C]
                drop(n);
                let out = cx.linear(&t, p)?;
                drop(t);
                out
            }
            Proj::Conv(p) => {
                let c = cx.conv2d(&n, p)?;
                drop(n);
                cx.transpose(&c)?
            }
        };
        for block in &self.blocks {
            tokens = block.forward(cx, tokens, ctx)?;
        }
        // proj_out, back to [C, H, W], plus the residual.
        let mut out = match &self.proj_out {
            Proj::Linear(p) => {
                let o = cx.linear(&tokens, p)?;
                drop(tokens);
                let back = cx.transpose(&o)?;
                back.reshape(&shape)?
            }
            Proj::Conv(p) => {
                let back = cx.transpose(&tokens)?.reshape(&shape)?;
                drop(tokens);
                cx.conv2d(&back, p)?
            }
        };
        out = cx.add_(out, &x)?;
        Ok(out)
    }
}
