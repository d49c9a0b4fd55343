//! DINOv2 conditioning from the whole image (`f2idiff.json` `"dino_context": "image"`).
//!
//! By default each tile conditions the U-Net on DINOv2 tokens of its own LR pixels. With the
//! image context, the whole input is resized to DINOv2's `D × D` once, DINOv2 runs once, and
//! its tokens condition every tile: each tile then sees what the whole image shows, as it does
//! when the image runs as one tile. Measured on the demo model's validation photos
//! (`calib/train/tile_context.py`, `docs/demo-model.md`): tiled with the image's tokens beats
//! tiled with each tile's own, in PSNR-Y and GMSD.
//!
//! Memory: the resize reads the caller's LR on the host and writes `3·D²` floats; DINOv2 runs
//! in its own small arena before the tiles'. Nothing grows with the image.

use super::one_step::conditioning;
use crate::backend::Backend;
use crate::backend::cpu::kernels::resize;
use crate::engine::{Networks, run_planned};
use crate::error::{Error, Result};

/// The whole LR image resized to DINOv2's input, `[3, D, D]` in [0, 1] (PyTorch's bicubic,
/// `align_corners=False`, no antialias: what a tile gets, on the whole image).
pub struct ImagePixels {
    data: Vec<f32>,
    side: usize,
}

/// The U-Net's conditioning computed once, on the host, to be given to every tile.
pub struct Tokens {
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
}

impl ImagePixels {
    /// `lr01 [3, h, w]` → DINOv2's `side × side` input.
    pub fn new(lr01: &[f32], h: usize, w: usize, side: usize) -> Result<Self> {
        if h == 0 || w == 0 || lr01.len() != 3 * h * w || side == 0 {
            return Err(Error::InvalidArgument(format!(
                "image {w}×{h} with {} values, DINOv2 side {side}",
                lr01.len()
            )));
        }
        let n = 3 * side * side;
        let mut data = Vec::new();
        data.try_reserve_exact(n).map_err(|_| {
            Error::OutOfMemory(format!("DINOv2 input of {side}² does not fit in memory"))
        })?;
        data.resize(n, 0.0);
        resize::bicubic(lr01, 3, h, w, side, side, None, &mut data);
        Ok(ImagePixels { data, side })
    }

    /// DINOv2 (and `cond_proj`) of these pixels with `nets` on `backend`, read back.
    pub fn tokens<B: Backend>(
        &self,
        nets: &Networks<B>,
        backend: &B,
        lora_scale: f32,
    ) -> Result<Tokens> {
        let d = self.side;
        let ((data, shape), _) = run_planned(backend, |cx| {
            cx.set_lora_scale(lora_scale);
            let px = cx.input(&[3, d, d], &self.data)?;
            let ctx = conditioning(nets, cx, px)?;
            Ok((cx.read(&ctx)?, ctx.shape().to_vec()))
        })?;
        Ok(Tokens { data, shape })
    }
}
