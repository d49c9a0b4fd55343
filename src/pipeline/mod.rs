//! The product's main job (DESIGN.md §1): one-step diffusion super-resolution of an LR image.
//!
//! ```text
//! LR [0,1] ─×2−1─ bicubic ×s, clamp ─ lq ─(reflect-pad to 8)─ VAE encoder ─ z
//! LR [0,1] ─ bicubic D×D, ImageNet norm ─ DINOv2 ─(cond_proj)─ ctx
//! z, t, ctx ─ U-Net ─ ε;  x0 = (z − √(1−ᾱ)·ε)/√ᾱ  ─ VAE decoder ─ clamp, crop ─ (x+1)/2 ─ colour fix vs (lq+1)/2
//! ```
//! This session's scope: the whole-image (single tile) path and the colour fixes. Tiling,
//! ROI and the CLI build on [`one_step`].

pub mod color_fix;
pub mod image;
mod one_step;
pub mod scheduler;

pub use color_fix::ColorFix;
pub use one_step::{IMAGENET_MEAN, IMAGENET_STD, one_step, super_resolve};
