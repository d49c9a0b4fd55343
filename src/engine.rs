//! The networks of one model on one backend, and running them in a planned arena.

use crate::arena::Plan;
use crate::backend::Backend;
use crate::config::ModelConfigs;
use crate::error::Result;
use crate::exec::Exec;
use crate::model::dinov2::{CondProj, Dinov2};
use crate::model::unet::UNet;
use crate::model::vae::{VaeDecoder, VaeEncoder};
use crate::model::{Loader, PackWeights};
use crate::pack::Pack;
use std::sync::Arc;

/// VAE encoder and decoder, U-Net, DINOv2 and `cond_proj`, with weights from one pack.
pub struct Networks<B: Backend> {
    pub vae_encoder: VaeEncoder<B>,
    pub vae_decoder: VaeDecoder<B>,
    pub unet: UNet<B>,
    pub dinov2: Dinov2<B>,
    pub cond_proj: Option<CondProj<B>>,
    pub configs: ModelConfigs,
}

impl<B: Backend> Networks<B> {
    /// Loads every network. `lora_scale` scales runtime-LoRA deltas (packs made with
    /// `--lora runtime`); merged packs ignore it.
    pub fn load(backend: &B, pack: Arc<Pack>, lora_scale: f32) -> Result<Self> {
        let src = |prefix: &str| PackWeights {
            pack: pack.clone(),
            prefix: prefix.into(),
            lora_scale,
        };
        let configs = pack.configs().clone();
        let (vae, unet, dino) = (src("vae."), src("unet."), src("dinov2."));
        let cond_proj = match pack.header().cond_proj {
            Some(cp) => {
                let w = src("cond_proj.");
                Some(CondProj::load(
                    &Loader::new(backend, &w),
                    cp.in_features,
                    cp.out_features,
                )?)
            }
            None => None,
        };
        let mut dinov2 = Dinov2::load(&Loader::new(backend, &dino), &configs.dinov2)?;
        dinov2.interpolate_offset = configs.pipeline.dino_interpolate_offset;
        Ok(Networks {
            vae_encoder: VaeEncoder::load(&Loader::new(backend, &vae), &configs.vae)?,
            vae_decoder: VaeDecoder::load(&Loader::new(backend, &vae), &configs.vae)?,
            unet: UNet::load(&Loader::new(backend, &unet), &configs.unet)?,
            dinov2,
            cond_proj,
            configs,
        })
    }
}

/// Runs `f` twice: a dry run that plans the arena, then the real run in an arena of exactly
/// the planned peak. Returns `f`'s result and the plan (whose `peak` is the activation memory).
pub fn run_planned<B: Backend, R>(
    backend: &B,
    f: impl Fn(&mut Exec<B>) -> Result<R>,
) -> Result<(R, Plan)> {
    let plan = plan(backend, &f)?;
    let mut arena = backend.alloc_arena(plan.peak)?;
    let out = run(backend, &mut arena, &plan, &f)?;
    Ok((out, plan))
}

/// The arena plan of `f` (a dry run: shapes only, no compute).
pub fn plan<B: Backend, R>(backend: &B, f: impl Fn(&mut Exec<B>) -> Result<R>) -> Result<Plan> {
    let mut cx = Exec::planning(backend);
    drop(f(&mut cx)?);
    cx.into_plan()
}

/// Runs `f` in `arena` laid out by `plan` (which must come from [`plan`] on the same `f` and
/// input sizes). Allocates nothing beyond what `f` itself does.
pub fn run<B: Backend, R>(
    backend: &B,
    arena: &mut B::Arena,
    plan: &Plan,
    f: impl Fn(&mut Exec<B>) -> Result<R>,
) -> Result<R> {
    let mut cx = Exec::running(backend, arena, plan);
    let out = f(&mut cx)?;
    backend.synchronize()?;
    Ok(out)
}
