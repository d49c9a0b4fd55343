//! CUDA engines opened on the same model file and the same device share one copy of the device
//! weights (as CPU engines share the pack's networks): the networks live in an `Arc`, each
//! engine keeps its own backend — stream, tile arena, workspace, frame buffers — so two engines
//! on one GPU run concurrently on different streams over the same weights. Weights are
//! read-only once uploaded, and every executor on a device uses its primary context, where
//! device addresses are valid for all of them.

use super::engine::FileKey;
use super::status::CResult;
use crate::backend::Backend;
use crate::backend::cuda::{CudaBackend, Executor};
use crate::engine::{LoraState, Networks};
use crate::pack::{Pack, PackLoad};
use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Live device networks by file, load mode, device (the backend's name: ordinal and storage
/// precision) and LoRA scale (`None`: runtime LoRA applied per call, any scale).
struct Entry {
    key: FileKey,
    load: PackLoad,
    device: String,
    lora_scale: Option<u32>,
    nets: Weak<dyn Any + Send + Sync>,
}

static LIVE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<Entry>> {
    // Only Weak pointers inside: a panic while holding the lock leaves it consistent.
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The networks of `pack` on `backend`'s device at `lora_scale`: another live engine's when
/// one matches, else loaded (and their weights uploaded now, so other engines can use them).
pub fn networks<E: Executor>(
    key: Option<&FileKey>,
    pack: &Arc<Pack>,
    backend: &CudaBackend<E>,
    lora_scale: f32,
) -> CResult<Arc<Networks<CudaBackend<E>>>> {
    let (load, device) = (pack.load_mode(), backend.name());
    let wanted = |e: &Entry, k: &FileKey| {
        &e.key == k
            && e.load == load
            && e.device == device
            && e.lora_scale.is_none_or(|b| b == lora_scale.to_bits())
    };
    if let Some(k) = key {
        let found = live().iter().filter(|e| wanted(e, k)).find_map(|e| {
            e.nets
                .upgrade()?
                .downcast::<Networks<CudaBackend<E>>>()
                .ok()
        });
        if let Some(n) = found {
            return Ok(n);
        }
    }
    let nets = Arc::new(Networks::load(backend, pack.clone(), lora_scale)?);
    backend.upload_staged()?;
    if let Some(k) = key {
        let any: Arc<dyn Any + Send + Sync> = nets.clone();
        let mut list = live();
        list.retain(|e| e.nets.strong_count() > 0);
        list.push(Entry {
            key: k.clone(),
            load,
            device,
            lora_scale: (nets.lora != LoraState::PerCall).then_some(lora_scale.to_bits()),
            nets: Arc::downgrade(&any),
        });
    }
    Ok(nets)
}
