//! diffusers `ResnetBlock2D` (`models/resnet.py`), `Downsample2D` and `Upsample2D`.

use super::Loader;
use crate::backend::Backend;
use crate::error::Result;
use crate::exec::{Conv, Exec, Linear, Norm, Tensor};

pub struct ResnetBlock<B: Backend> {
    norm1: Norm<B>,
    conv1: Conv<B>,
    time_emb_proj: Option<Linear<B>>,
    norm2: Norm<B>,
    conv2: Conv<B>,
    conv_shortcut: Option<Conv<B>>,
}

impl<B: Backend> ResnetBlock<B> {
    /// `temb`: the time-embedding width, for U-Net blocks (the VAE has none).
    pub fn load(
        l: &Loader<B>,
        c_in: usize,
        c_out: usize,
        groups: usize,
        eps: f64,
        temb: Option<usize>,
    ) -> Result<Self> {
        Ok(ResnetBlock {
            norm1: l.group_norm("norm1", c_in, groups, eps)?,
            conv1: l.conv_same("conv1", c_in, c_out, 3)?,
            time_emb_proj: temb
                .map(|t| l.linear("time_emb_proj", t, c_out, true))
                .transpose()?,
            norm2: l.group_norm("norm2", c_out, groups, eps)?,
            conv2: l.conv_same("conv2", c_out, c_out, 3)?,
            conv_shortcut: (c_in != c_out)
                .then(|| l.conv_same("conv_shortcut", c_in, c_out, 1))
                .transpose()?,
        })
    }

    /// `x [c_in, H, W] → [c_out, H, W]`. `temb_act` is `silu(temb)` `[1, T]`, computed once
    /// per forward by the U-Net (every block applies the same SiLU to the same embedding).
    pub fn forward(
        &self,
        cx: &mut Exec<B>,
        x: &Tensor,
        temb_act: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut h = cx.group_norm_conv2d(x, &self.norm1, true, &self.conv1)?;
        if let (Some(proj), Some(t)) = (&self.time_emb_proj, temb_act) {
            let bias = cx.linear(t, proj)?; // [1, c_out], added per channel
            h = cx.add_channel_bias_(h, &bias)?;
        }
        let mut out = cx.group_norm_conv2d_(h, &self.norm2, true, &self.conv2)?;
        match &self.conv_shortcut {
            Some(sc) => cx.conv2d_into(x, sc, &mut out, true)?,
            None => out = cx.add_(out, x)?,
        }
        Ok(out)
    }
}

/// `Downsample2D` with a conv: 3×3 stride 2, padding `p` on every side, or — diffusers' VAE
/// rule for `padding=0` — the asymmetric (left 0, right 1, top 0, bottom 1) pad.
pub fn load_downsample<B: Backend>(l: &Loader<B>, c: usize, padding: usize) -> Result<Conv<B>> {
    let pad = if padding == 0 {
        [0, 1, 0, 1]
    } else {
        [padding; 4]
    };
    l.conv("conv", c, c, 3, 2, pad)
}

/// `Upsample2D`: nearest ×2 — or to `size`, as the U-Net asks when a side did not halve evenly
/// on the way down — then a 3×3 conv.
pub fn upsample<B: Backend>(
    cx: &mut Exec<B>,
    x: &Tensor,
    conv: &Conv<B>,
    size: Option<(usize, usize)>,
) -> Result<Tensor> {
    let (h, w) = (x.shape()[1], x.shape()[2]);
    let (oh, ow) = size.unwrap_or((2 * h, 2 * w));
    let up = cx.upsample_nearest(x, oh, ow)?;
    cx.conv2d(&up, conv)
}
