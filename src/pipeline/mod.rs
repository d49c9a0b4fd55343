//! The product's main job (DESIGN.md §1): one-step diffusion super-resolution of an LR image.
//!
//! ```text
//! LR [0,1] ─×2−1─ bicubic ×s, clamp ─ lq ─(reflect-pad to 8)─ VAE encoder ─ z
//! LR [0,1] ─ bicubic D×D, ImageNet norm ─ DINOv2 ─(cond_proj)─ ctx   (the tile's LR, or the whole image's: context.rs)
//! z, t, ctx ─ U-Net ─ ε;  x0 = (z − √(1−ᾱ)·ε)/√ᾱ  ─ VAE decoder ─ clamp, crop ─ (x+1)/2 ─ colour fix vs (lq+1)/2
//! ```
//! [`one_step`] runs one tile; [`upscale`] tiles any image (see `tiling.rs` for the layout and
//! the blending), applies the colour fix, handles an ROI, and averages mirrored copies when
//! asked (`ensemble.rs`); [`device_frame`] does the same for frames in CUDA device memory, on
//! the device (no ensemble there).

pub mod color_fix;
pub mod context;
pub mod device_frame;
pub mod ensemble;
pub mod fallback;
pub mod image;
pub mod metrics;
mod one_step;
pub mod scheduler;
pub mod tiling;
mod upscale;

pub use color_fix::ColorFix;
pub use fallback::F32Fallback;
pub use one_step::{IMAGENET_MEAN, IMAGENET_STD, conditioning, one_step, super_resolve};
pub use upscale::{
    Rect, UpscaleOptions, Upscaled, auto_tile, roi_margin, upscale, upscale_checked,
};
