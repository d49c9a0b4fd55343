//! diffusers `Attention` (`models/attention_processor.py`, `AttnProcessor2_0`): the projections
//! around scaled dot-product attention, for token inputs (`BasicTransformerBlock`) and for the
//! VAE's spatial self-attention with its own GroupNorm and residual.

use super::Loader;
use crate::backend::Backend;
use crate::error::Result;
use crate::exec::{Exec, Linear, Norm, Tensor};

pub struct Attention<B: Backend> {
    to_q: Linear<B>,
    to_k: Linear<B>,
    to_v: Linear<B>,
    to_out: Linear<B>,
    heads: usize,
}

impl<B: Backend> Attention<B> {
    /// `dim` query width (= heads · head_dim), `kv_dim` the width keys/values come from.
    pub fn load(
        l: &Loader<B>,
        dim: usize,
        kv_dim: usize,
        heads: usize,
        qkv_bias: bool,
    ) -> Result<Self> {
        Ok(Attention {
            to_q: l.linear("to_q", dim, dim, qkv_bias)?,
            to_k: l.linear("to_k", kv_dim, dim, qkv_bias)?,
            to_v: l.linear("to_v", kv_dim, dim, qkv_bias)?,
            to_out: l.linear("to_out.0", dim, dim, true)?,
            heads,
        })
    }

    /// `residual += to_out(attention(x, ctx or x))` on tokens `[T, dim]`.
    pub fn forward_add(
        &self,
        cx: &mut Exec<B>,
        x: &Tensor,
        ctx: Option<&Tensor>,
        residual: &mut Tensor,
    ) -> Result<()> {
        let kv = ctx.unwrap_or(x);
        let q = cx.linear(x, &self.to_q)?;
        let k = cx.linear(kv, &self.to_k)?;
        let v = cx.linear(kv, &self.to_v)?;
        let o = cx.attention(&q, &k, &v, self.heads)?;
        drop((q, k, v));
        cx.linear_into(&o, &self.to_out, residual, true)
    }
}

/// The VAE mid-block attention: GroupNorm, single-head self-attention over the H·W positions,
/// residual add (`Attention(..., norm_num_groups, residual_connection=True)`).
pub struct SpatialAttention<B: Backend> {
    group_norm: Norm<B>,
    attn: Attention<B>,
}

impl<B: Backend> SpatialAttention<B> {
    pub fn load(l: &Loader<B>, c: usize, groups: usize, eps: f64) -> Result<Self> {
        Ok(SpatialAttention {
            group_norm: l.group_norm("group_norm", c, groups, eps)?,
            attn: Attention::load(l, c, c, 1, true)?,
        })
    }

    /// `x [C, H, W] → x + attn(norm(x))`.
    pub fn forward(&self, cx: &mut Exec<B>, x: Tensor) -> Result<Tensor> {
        let shape = x.shape().to_vec();
        let n = cx.group_norm(&x, &self.group_norm, false)?;
        let tokens = cx.transpose(&n)?; // [H·W, C]
        drop(n);
        let mut res = cx.transpose(&x)?;
        drop(x);
        self.attn.forward_add(cx, &tokens, None, &mut res)?;
        drop(tokens);
        let out = cx.transpose(&res)?; // back to [C, H·W]
        out.reshape(&shape)
    }
}
