//! The f16 safety net: a tile whose output is not finite — an activation overflowed f16's
//! ±65504 somewhere the pack's pre-scales do not cover — runs again on an f32 backend of the
//! same device, and the call counts it ([`super::Upscaled::f32_reruns`]). The f32 networks are
//! loaded on the first such tile only, so a model that never overflows never pays for them.

use crate::backend::Backend;
use crate::engine::Networks;
use crate::error::{Error, Result};
use crate::pack::Pack;
use std::cell::OnceCell;
use std::sync::Arc;

pub struct F32Fallback<B: Backend> {
    backend: B,
    pack: Arc<Pack>,
    nets: OnceCell<Networks<B>>,
}

impl<B: Backend> F32Fallback<B> {
    /// `backend` must compute in f32 (the tile is rerun there); `pack` is the model's.
    pub fn new(backend: B, pack: Arc<Pack>) -> Self {
        F32Fallback {
            backend,
            pack,
            nets: OnceCell::new(),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The f32 networks, loaded on first use (runtime LoRA at `lora_scale` where the backend
    /// merges it at load).
    pub fn nets(&self, lora_scale: f32) -> Result<&Networks<B>> {
        if self.nets.get().is_none() {
            let nets = Networks::load(&self.backend, self.pack.clone(), lora_scale)?;
            let _ = self.nets.set(nets);
        }
        self.nets
            .get()
            .ok_or_else(|| Error::InvalidArgument("f32 fallback networks did not load".into()))
    }
}

/// Whether every value is finite (the check after each tile).
pub fn all_finite(v: &[f32]) -> bool {
    v.iter().all(|x| x.is_finite())
}
