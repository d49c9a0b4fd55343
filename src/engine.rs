//! The networks of one model on one backend, and running them in a planned arena.

use crate::arena::Plan;
use crate::backend::Backend;
use crate::config::ModelConfigs;
use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::model::dinov2::{CondProj, Dinov2};
use crate::model::unet::UNet;
use crate::model::vae::{VaeDecoder, VaeEncoder};
use crate::model::{Loader, PackWeights};
use crate::pack::{LoraMode, Pack};
use std::cell::Cell;
use std::sync::Arc;

/// The largest f16 pre-scale exponent a pack may ask for (2⁻²⁴: anything beyond would push
/// ordinary values below f16's range).
pub const MAX_PRESCALE_LOG2: u32 = 24;

/// How the networks apply a pack's LoRA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoraState {
    /// The pack's LoRA is merged into its weights (or it has none).
    InPack,
    /// A runtime-LoRA pack, merged at load at this scale (backends without runtime LoRA).
    MergedAt(f32),
    /// A runtime-LoRA pack, applied per call at [`crate::exec::Exec::set_lora_scale`]'s scale.
    PerCall,
}

/// VAE encoder and decoder, U-Net, DINOv2 and `cond_proj`, with weights from one pack.
pub struct Networks<B: Backend> {
    pub vae_encoder: VaeEncoder<B>,
    pub vae_decoder: VaeDecoder<B>,
    pub unet: UNet<B>,
    pub dinov2: Dinov2<B>,
    pub cond_proj: Option<CondProj<B>>,
    pub configs: ModelConfigs,
    pub lora: LoraState,
}

impl<B: Backend> Networks<B> {
    /// Loads every network. `lora_scale` scales runtime-LoRA deltas (packs made with
    /// `--lora runtime`) merged at load; merged packs ignore it, and so do backends that apply
    /// runtime LoRA per call ([`LoraState::PerCall`]: the scale is the run's, see
    /// [`Networks::lora_scale_for`]).
    pub fn load(backend: &B, pack: Arc<Pack>, lora_scale: f32) -> Result<Self> {
        Self::load_with(backend, pack, lora_scale, backend.f16_storage())
    }

    /// [`Networks::load`], choosing whether the pack's f16 pre-scales apply (by default they
    /// do where activations are stored in f16; in f32 they change nothing but rounding-free
    /// powers of two, which tests use to check them on the CPU).
    pub fn load_with(
        backend: &B,
        pack: Arc<Pack>,
        lora_scale: f32,
        prescales: bool,
    ) -> Result<Self> {
        let lora = match pack.header().lora.mode {
            LoraMode::Runtime if backend.runtime_lora() => LoraState::PerCall,
            LoraMode::Runtime => LoraState::MergedAt(lora_scale),
            _ => LoraState::InPack,
        };
        let unmerged = lora == LoraState::PerCall;
        let src = |prefix: &str| PackWeights {
            pack: pack.clone(),
            prefix: prefix.into(),
            lora_scale,
            unmerged,
            lora_used: Cell::new(0),
            prescales,
            prescales_used: Cell::new(0),
        };
        let configs = pack.configs().clone();
        let (vae, unet, dino, proj) =
            (src("vae."), src("unet."), src("dinov2."), src("cond_proj."));
        let cond_proj = match pack.header().cond_proj {
            Some(cp) => Some(CondProj::load(
                &Loader::new(backend, &proj),
                cp.in_features,
                cp.out_features,
            )?),
            None => None,
        };
        let mut dinov2 = Dinov2::load(&Loader::new(backend, &dino), &configs.dinov2)?;
        dinov2.interpolate_offset = configs.pipeline.dino_interpolate_offset;
        let nets = Networks {
            vae_encoder: VaeEncoder::load(&Loader::new(backend, &vae), &configs.vae)?,
            vae_decoder: VaeDecoder::load(&Loader::new(backend, &vae), &configs.vae)?,
            unet: UNet::load(&Loader::new(backend, &unet), &configs.unet)?,
            dinov2,
            cond_proj,
            configs,
            lora,
        };
        let prescaled: usize = [&vae, &unet, &dino, &proj]
            .iter()
            .map(|s| s.prescales_used.get())
            .sum();
        let wanted = pack.header().f16_prescales.len();
        if let Some((name, k)) = pack
            .header()
            .f16_prescales
            .iter()
            .find(|(_, k)| !(1..=MAX_PRESCALE_LOG2).contains(*k))
        {
            return Err(Error::InvalidArgument(format!(
                "{}: f16 pre-scale 2^-{k} of {name} is outside 2^-1..2^-{MAX_PRESCALE_LOG2}",
                pack.path().display()
            )));
        }
        if prescales && prescaled < wanted {
            return Err(Error::InvalidArgument(format!(
                "{}: {} of {wanted} f16 pre-scales name no convolution of the model",
                pack.path().display(),
                wanted - prescaled
            )));
        }
        if unmerged {
            // Every pair in the pack must sit on a convolution or linear map that applies it
            // (a pair on any other parameter would be silently dropped).
            let pairs = pack
                .entries()
                .iter()
                .filter(|e| e.name.ends_with(".lora_A.weight"))
                .count();
            let used: usize = [&vae, &unet, &dino, &proj]
                .iter()
                .map(|s| s.lora_used.get())
                .sum();
            if used < pairs {
                return Err(Error::InvalidArgument(format!(
                    "{}: {} of {pairs} runtime-LoRA pairs sit on parameters that are not \
                     convolution or linear weights",
                    pack.path().display(),
                    pairs - used
                )));
            }
        }
        Ok(nets)
    }

    /// The LoRA scale a run applies for a requested `scale`: the request itself when LoRA is
    /// applied per call, nothing to do for merged LoRA; networks merged at another scale must
    /// be reloaded first (an error).
    pub fn lora_scale_for(&self, scale: f32) -> Result<f32> {
        match self.lora {
            LoraState::PerCall => Ok(scale),
            LoraState::InPack => Ok(1.0),
            LoraState::MergedAt(s) if s == scale => Ok(1.0),
            LoraState::MergedAt(s) => Err(Error::InvalidArgument(format!(
                "networks merged their LoRA at scale {s}; reload them for scale {scale}"
            ))),
        }
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
