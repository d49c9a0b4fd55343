//! One tile through the whole model (DESIGN.md §1), on any backend.

use super::color_fix::ColorFix;
use super::scheduler::x0_coefficients;
use crate::backend::Backend;
use crate::engine::{Networks, run_planned};
use crate::error::{Error, Result};
use crate::exec::{Exec, Part, Tensor};

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// `lr01 [3, h, w]` in [0, 1] → `(sr01, lq01)`, both `[3, s·h, s·w]`: the decoded SR image
/// mapped to [0, 1] (before colour fix) and the bicubic upscale it is colour-fixed against.
/// `ctx`: the U-Net's conditioning when it comes from elsewhere (the whole image's tokens,
/// [`super::context`]); `None` = DINOv2 of the tile's own LR pixels.
pub fn one_step<B: Backend>(
    nets: &Networks<B>,
    cx: &mut Exec<B>,
    lr01: &Tensor,
    ctx: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let p = &nets.configs.pipeline;
    let s = p.scale as usize;
    let [3, h, w] = lr01.shape()[..] else {
        return Err(Error::InvalidArgument(format!(
            "LR tile {:?} is not [3, H, W]",
            lr01.shape()
        )));
    };
    let (sh, sw) = (s * h, s * w);

    // lq = clamp(bicubic(2·lr − 1), −1, 1), reflect-padded to multiples of 8 for the VAE.
    let lr = cx.concat(&[Part::T(lr01)])?;
    let lr = cx.affine_(lr, 0.0, 2.0, -1.0)?;
    let lq = cx.bicubic(&lr, sh, sw, None, false)?;
    drop(lr);
    let lq = cx.clamp_(lq, -1.0, 1.0)?;
    let (ph, pw) = (sh.next_multiple_of(8), sw.next_multiple_of(8));
    let z = if (ph, pw) == (sh, sw) {
        nets.vae_encoder.forward(cx, &lq)?
    } else {
        let padded = cx.pad_reflect(&lq, ph, pw)?;
        nets.vae_encoder.forward(cx, &padded)?
    };

    // Conditioning: DINOv2 tokens of the tile's own LR pixels, unless given. One step at t: ε,
    // then x0 in f32 from f64 constants.
    let t = p.timestep as f32;
    let eps = match ctx {
        Some(c) => nets.unet.forward(cx, &z, t, c)?,
        None => {
            let d = p.dino_image_size as usize;
            let px = cx.bicubic(lr01, d, d, None, false)?;
            let own = conditioning(nets, cx, px)?;
            nets.unet.forward(cx, &z, t, &own)?
        }
    };
    let (c1, c2) = x0_coefficients(p.timestep);
    let x0 = cx.x0_from_eps(&z, &eps, c1, c2)?;
    drop((z, eps));

    let dec = nets.vae_decoder.forward(cx, &x0)?;
    drop(x0);
    let dec = cx.clamp_(dec, -1.0, 1.0)?;
    let dec = if (ph, pw) == (sh, sw) {
        dec
    } else {
        cx.crop(&dec, sh, sw)?
    };
    let sr01 = cx.affine_(dec, 1.0, 0.5, 0.0)?;
    let lq01 = cx.affine_(lq, 1.0, 0.5, 0.0)?;
    Ok((sr01, lq01))
}

/// DINOv2 input pixels `[3, D, D]` in [0, 1] (the LR resized) → the U-Net's conditioning:
/// ImageNet-normalised, DINOv2's tokens, then `cond_proj` when the model has one.
pub fn conditioning<B: Backend>(
    nets: &Networks<B>,
    cx: &mut Exec<B>,
    px: Tensor,
) -> Result<Tensor> {
    let px = cx.channel_normalize_(px, &IMAGENET_MEAN, &IMAGENET_STD)?;
    let tokens = nets.dinov2.forward(cx, &px)?;
    drop(px);
    match &nets.cond_proj {
        Some(c) => c.forward(cx, &tokens),
        None => Ok(tokens),
    }
}

/// The whole image as one tile: `lr01 [3, h, w]` → colour-fixed SR `[3, s·h, s·w]` in [0, 1]
/// (unquantised), and the arena peak in elements.
pub fn super_resolve<B: Backend>(
    nets: &Networks<B>,
    backend: &B,
    lr01: &[f32],
    h: usize,
    w: usize,
    color_fix: ColorFix,
) -> Result<(Vec<f32>, usize)> {
    if h == 0 || w == 0 || lr01.len() != 3 * h * w {
        return Err(Error::InvalidArgument(format!(
            "LR image {w}×{h} with {} values",
            lr01.len()
        )));
    }
    let ((mut sr, lq), plan) = run_planned(backend, |cx| {
        let x = cx.input(&[3, h, w], lr01)?;
        let (sr, lq) = one_step(nets, cx, &x, None)?;
        Ok((cx.read(&sr)?, cx.read(&lq)?))
    })?;
    let s = nets.configs.pipeline.scale as usize;
    color_fix.apply(&mut sr, &lq, s * h, s * w);
    Ok((sr, plan.peak))
}
