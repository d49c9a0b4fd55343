//! Converter: a diffusers / transformers / PEFT model folder → one `.f2i` pack.
//!
//! ```text
//! MODEL_DIR/
//!   vae/config.json, vae/diffusion_pytorch_model.safetensors[.index.json + shards]
//!   unet/config.json, unet/diffusion_pytorch_model.safetensors[.index.json + shards]
//!   dinov2/config.json, dinov2/model.safetensors[.index.json + shards]
//!   cond_proj.safetensors      optional: `weight` [cross_attention_dim, dino_hidden], `bias`
//!   unet_lora/, vae_lora/      optional: PEFT adapters (see `lora.rs` for both spellings)
//!   f2idiff.json               optional: {"scale", "timestep", "dino_image_size", "tile"}
//! ```
//! Everything is checked before the first byte is written: configs, every required tensor's
//! presence, shape and dtype, every LoRA target. Only the tensors the configs require are packed.

pub mod lora;
mod pack_folder;
pub mod source;

pub use pack_folder::{LoraChoice, PackOptions, PackSummary, pack_folder};
