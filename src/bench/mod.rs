//! Benchmarks of the real networks at full size with seeded random weights (no weights file):
//! `f2idiff bench` and `scripts/bench-compare.sh` (against `calib/reference/bench_pytorch.py`).
//!
//! A stage is one network (VAE encoder, VAE decoder, U-Net, DINOv2) or the whole one-step tile
//! (`pipeline::one_step`), built from a named preset — the configs in
//! `tests/data/pack/manifests/`, compiled in. Each stage is timed as the engine runs it: the
//! arena planned once, a warm-up run (uploads, kernel loading, output checked finite), then
//! `runs` timed runs, each ended by the backend's synchronize before the clock is read (so on a
//! GPU the time is the device's). The median is reported.
//!
//! FLOPs: 2 × the multiply-accumulates of every convolution, linear map and attention product
//! the stage executes, counted by running the same model code on [`counter::FlopCounter`].
//! Norms, activations and resizes are not counted.

pub mod counter;
pub mod peak;
pub mod rss;
pub mod weights;

use crate::backend::Backend;
use crate::config::ModelConfigs;
use crate::engine::{self, Networks};
use crate::error::{Error, Result};
use crate::exec::profile::{self, OpTime, OpTimes};
use crate::exec::{Exec, Tensor};
use crate::model::dinov2::{CondProj, Dinov2};
use crate::model::unet::UNet;
use crate::model::vae::{VaeDecoder, VaeEncoder};
use crate::model::{Loader, WeightSource};
use crate::tensor::DType;
use counter::{FlopCounter, Macs, NoWeights};
use serde_json::Value;
use std::cell::Cell;
use std::path::Path;
use std::time::Instant;

/// What one bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    VaeEnc,
    VaeDec,
    Unet,
    Dino,
    Tile,
}

impl Stage {
    /// In the order a tile runs them, the whole tile last.
    pub const ALL: [Stage; 5] = [
        Stage::VaeEnc,
        Stage::Dino,
        Stage::Unet,
        Stage::VaeDec,
        Stage::Tile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::VaeEnc => "vae-enc",
            Stage::VaeDec => "vae-dec",
            Stage::Unet => "unet",
            Stage::Dino => "dino",
            Stage::Tile => "tile",
        }
    }

    /// The default size: the output tile side (512), or DINOv2's input side (224).
    pub fn default_size(self) -> usize {
        match self {
            Stage::Dino => 224,
            _ => 512,
        }
    }
}

impl std::str::FromStr for Stage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Stage> {
        Stage::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "stage `{s}`: expected vae-enc, vae-dec, unet, dino, tile (or peak)"
                ))
            })
    }
}

/// Which network a preset configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vae,
    Unet,
    Dino,
}

/// A named full-size network config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// SD f8d4 VAE (`AutoencoderKL`, [128, 256, 512, 512]).
    SdVae,
    /// The Eff U-Net [224, 448, 896, 896] (~430 M parameters).
    EffUnet,
    /// The SD-2.1-base U-Net [320, 640, 1280, 1280].
    Sd21Unet,
    /// DINOv2-S/14 (384 wide, 12 layers).
    Dinov2S,
    /// DINOv2-L/14 (1024 wide, 24 layers).
    Dinov2L,
}

macro_rules! manifest {
    ($name:literal) => {
        include_str!(concat!("../../tests/data/pack/manifests/", $name, ".json"))
    };
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::SdVae,
        Preset::EffUnet,
        Preset::Sd21Unet,
        Preset::Dinov2S,
        Preset::Dinov2L,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::SdVae => "sd-vae",
            Preset::EffUnet => "eff-unet",
            Preset::Sd21Unet => "sd21-unet",
            Preset::Dinov2S => "dinov2-s",
            Preset::Dinov2L => "dinov2-l",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Preset::SdVae => Kind::Vae,
            Preset::EffUnet | Preset::Sd21Unet => Kind::Unet,
            Preset::Dinov2S | Preset::Dinov2L => Kind::Dino,
        }
    }

    /// The reference config (diffusers / transformers `config.json`).
    pub fn config(self) -> Value {
        let text = match self {
            Preset::SdVae => manifest!("vae_sd"),
            Preset::EffUnet => manifest!("unet_eff"),
            Preset::Sd21Unet => manifest!("unet_sd21_base"),
            Preset::Dinov2S => manifest!("dinov2_small"),
            Preset::Dinov2L => manifest!("dinov2_large"),
        };
        let v: Value = serde_json::from_str(text).expect("compiled-in manifest is valid JSON");
        v["config"].clone()
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Preset> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "preset `{s}`: expected sd-vae, eff-unet, sd21-unet, dinov2-s or dinov2-l"
                ))
            })
    }
}

/// A stage, the presets of its networks, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub stage: Stage,
    pub vae: Preset,
    pub unet: Preset,
    pub dino: Preset,
    /// Output tile side (VAE, U-Net, tile: the U-Net's latent is size/8), or DINOv2's input side.
    pub size: usize,
}

/// DINOv2's input side inside a tile, and so the U-Net's context length: 1 + (224/14)².
pub const DINO_SIZE: usize = 224;
/// The timestep of the one step.
pub const TIMESTEP: u32 = 999;

impl Spec {
    /// `presets` override the defaults (SD VAE, Eff U-Net, DINOv2-L) network by network.
    pub fn new(stage: Stage, presets: &[Preset], size: Option<usize>) -> Result<Spec> {
        let mut spec = Spec {
            stage,
            vae: Preset::SdVae,
            unet: Preset::EffUnet,
            dino: Preset::Dinov2L,
            size: size.unwrap_or(stage.default_size()),
        };
        for &p in presets {
            match p.kind() {
                Kind::Vae => spec.vae = p,
                Kind::Unet => spec.unet = p,
                Kind::Dino => spec.dino = p,
            }
        }
        let s = spec.size;
        let bad = |need: &str| {
            Err(Error::InvalidArgument(format!(
                "--size {s} for stage {}: {need}",
                stage.name()
            )))
        };
        match stage {
            Stage::VaeEnc | Stage::VaeDec if s == 0 || s % 8 != 0 => bad("a multiple of 8"),
            Stage::Unet if s == 0 || s % 64 != 0 => bad("a multiple of 64 (latent multiple of 8)"),
            Stage::Dino if s < 14 => bad("at least one 14×14 patch"),
            Stage::Tile if s == 0 || s % 32 != 0 => bad("a multiple of 32 (LR side multiple of 8)"),
            _ => Ok(spec),
        }
    }

    /// The presets this stage runs, e.g. "sd-vae" or "sd-vae+eff-unet+dinov2-l".
    pub fn presets(&self) -> String {
        match self.stage {
            Stage::VaeEnc | Stage::VaeDec => self.vae.name().into(),
            Stage::Unet => self.unet.name().into(),
            Stage::Dino => self.dino.name().into(),
            Stage::Tile => format!(
                "{}+{}+{}",
                self.vae.name(),
                self.unet.name(),
                self.dino.name()
            ),
        }
    }

    /// The four configs (pipeline ×4 at t = 999, DINOv2 at 224).
    pub fn configs(&self) -> Result<ModelConfigs> {
        let pipeline = serde_json::json!({
            "scale": 4, "timestep": TIMESTEP, "dino_image_size": DINO_SIZE,
        });
        let at = |p: Preset| format!("preset {}", p.name());
        let (pv, pu, pd) = (at(self.vae), at(self.unet), at(self.dino));
        ModelConfigs::parse(
            (Path::new("preset"), &pipeline),
            (Path::new(&pv), &self.vae.config()),
            (Path::new(&pu), &self.unet.config()),
            (Path::new(&pd), &self.dino.config()),
        )
    }

    /// Seeded random inputs: `(shape, values)` of the stage's input, and the U-Net's context.
    fn inputs(&self, c: &ModelConfigs, seed: u64) -> Inputs {
        let s = self.size;
        let latent = c.vae.latent_channels;
        let ctx_len = 1 + (DINO_SIZE / 14) * (DINO_SIZE / 14);
        let (shape, lo, hi) = match self.stage {
            Stage::VaeEnc => (vec![3, s, s], -1.0, 1.0),
            Stage::VaeDec | Stage::Unet => (vec![latent, s / 8, s / 8], -1.0, 1.0),
            Stage::Dino => (vec![3, s, s], -2.0, 2.0),
            Stage::Tile => (vec![3, s / 4, s / 4], 0.0, 1.0),
        };
        let n = shape.iter().product();
        let ctx_dim = c.unet.context_dim().unwrap_or(c.dinov2.hidden_size);
        Inputs {
            x: weights::uniform(seed ^ 0x1, n, lo, hi),
            shape,
            ctx: weights::uniform(seed ^ 0x2, ctx_len * ctx_dim, -1.0, 1.0),
            ctx_shape: [ctx_len, ctx_dim],
        }
    }
}

struct Inputs {
    x: Vec<f32>,
    shape: Vec<usize>,
    ctx: Vec<f32>,
    ctx_shape: [usize; 2],
}

/// The loaded networks of one stage.
enum Nets<B: Backend> {
    VaeEnc(VaeEncoder<B>),
    VaeDec(VaeDecoder<B>),
    Unet(UNet<B>),
    Dino(Dinov2<B>),
    Tile(Box<Networks<B>>),
}

/// A weight source that counts the parameters it hands out.
struct Counted<'a> {
    inner: &'a dyn WeightSource,
    params: Cell<u64>,
}

impl WeightSource for Counted<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<crate::backend::HostData> {
        self.params
            .set(self.params.get() + shape.iter().product::<usize>() as u64);
        self.inner.get(name, shape)
    }
}

fn load<B: Backend>(
    backend: &B,
    spec: &Spec,
    c: &ModelConfigs,
    src: &dyn WeightSource,
) -> Result<Nets<B>> {
    let l = Loader::new(backend, src);
    Ok(match spec.stage {
        Stage::VaeEnc => Nets::VaeEnc(VaeEncoder::load(&l, &c.vae)?),
        Stage::VaeDec => Nets::VaeDec(VaeDecoder::load(&l, &c.vae)?),
        Stage::Unet => Nets::Unet(UNet::load(&l, &c.unet)?),
        Stage::Dino => Nets::Dino(Dinov2::load(&l, &c.dinov2)?),
        Stage::Tile => {
            let (vae, unet, dino) = (&c.vae, &c.unet, &c.dinov2);
            let ctx = unet.context_dim().unwrap_or(dino.hidden_size);
            let cond_proj = (ctx != dino.hidden_size)
                .then(|| CondProj::load(&l.at("cond_proj"), dino.hidden_size, ctx))
                .transpose()?;
            Nets::Tile(Box::new(Networks {
                vae_encoder: VaeEncoder::load(&l.at("vae"), vae)?,
                vae_decoder: VaeDecoder::load(&l.at("vae"), vae)?,
                unet: UNet::load(&l.at("unet"), unet)?,
                dinov2: Dinov2::load(&l.at("dinov2"), dino)?,
                cond_proj,
                configs: c.clone(),
                lora: crate::engine::LoraState::InPack,
            }))
        }
    })
}

/// The stage's forward pass; its output tensor.
fn forward<B: Backend>(nets: &Nets<B>, cx: &mut Exec<B>, inp: &Inputs) -> Result<Tensor> {
    let x = cx.input(&inp.shape, &inp.x)?;
    match nets {
        Nets::VaeEnc(n) => n.forward(cx, &x),
        Nets::VaeDec(n) => n.forward(cx, &x),
        Nets::Dino(n) => n.forward(cx, &x),
        Nets::Unet(n) => {
            let ctx = cx.input(&inp.ctx_shape, &inp.ctx)?;
            n.forward(cx, &x, TIMESTEP as f32, &ctx)
        }
        Nets::Tile(n) => {
            let (sr, _lq) = crate::pipeline::one_step(n, cx, &x, None)?;
            Ok(sr)
        }
    }
}

/// The MACs a stage executes (instant: nothing is computed).
pub fn count(spec: &Spec) -> Result<Macs> {
    let c = spec.configs()?;
    let counter = FlopCounter::default();
    let nets = load(&counter, spec, &c, &NoWeights)?;
    let inp = spec.inputs(&c, 0);
    let f = |cx: &mut Exec<FlopCounter>| forward(&nets, cx, &inp).map(drop);
    let plan = engine::plan(&counter, f)?;
    engine::run(&counter, &mut (), &plan, f)?;
    Ok(counter.macs())
}

/// How to run a stage.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub runs: usize,
    pub warmup: usize,
    pub seed: u64,
    /// Element type the random weights are stored in, as a pack of that type would hold them
    /// (the CPU keeps f16 / bf16 matrices so; CUDA converts to its storage precision).
    pub weights: DType,
    /// After the timed runs, one more run timed op by op ([`Report::ops`]).
    pub profile: bool,
}

/// One stage's figures.
#[derive(Debug, Clone)]
pub struct Report {
    pub spec: Spec,
    pub device: String,
    pub macs: Macs,
    /// Every timed run, in order.
    pub runs_ms: Vec<f64>,
    pub median_ms: f64,
    /// Planned activation arena (bytes of the backend's storage type).
    pub arena_bytes: usize,
    /// Host memory the runs needed: peak resident set while planning and running, less what
    /// was resident before (weights, inputs); `None` where not measurable ([`rss`]).
    pub working_bytes: Option<u64>,
    pub params: u64,
    /// Element type the weights were stored in.
    pub weights: DType,
    /// Host memory the loaded weights hold: resident set after loading less before; `None`
    /// where not measurable.
    pub weights_bytes: Option<u64>,
    pub load_s: f64,
    /// The warm-up output had no NaN or infinity.
    pub finite: bool,
    /// With [`RunOptions::profile`]: one run's time by op, largest first (each op between two
    /// synchronisations; see [`crate::exec::profile`]).
    pub ops: Vec<(String, OpTime)>,
}

impl Report {
    pub fn gflop(&self) -> f64 {
        self.macs.flops() as f64 / 1e9
    }
    pub fn gflops_per_s(&self) -> f64 {
        self.gflop() / (self.median_ms * 1e-3)
    }

    /// One JSON object (the columns of `bench_pytorch.py --json`).
    pub fn json(&self) -> Value {
        serde_json::json!({
            "engine": "f2idiff",
            "stage": self.spec.stage.name(),
            "preset": self.spec.presets(),
            "size": self.spec.size,
            "device": self.device,
            "median_ms": self.median_ms,
            "runs_ms": self.runs_ms,
            "gflop": self.gflop(),
            "gflop_per_s": self.gflops_per_s(),
            "macs": {"conv": self.macs.conv, "linear": self.macs.linear, "attention": self.macs.attention},
            "arena_mib": self.arena_bytes as f64 / (1 << 20) as f64,
            "working_mib": self.working_bytes.map(|b| b as f64 / (1 << 20) as f64),
            "params_m": self.params as f64 / 1e6,
            "weights": self.weights.name(),
            "weights_mib": self.weights_bytes.map(|b| b as f64 / (1 << 20) as f64),
            "load_s": self.load_s,
            "finite": self.finite,
        })
    }
}

/// The column header of [`Report::row`] (and of `bench_pytorch.py`).
pub const HEADER: &str = "stage    preset                       size  median ms   min ms   max ms    GFLOP   GFLOP/s  arena MiB  work MiB  params M";

impl Report {
    pub fn row(&self) -> String {
        let (min, max) = self
            .runs_ms
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        format!(
            "{:<8} {:<27} {:>5} {:>10.2} {:>8.2} {:>8.2} {:>8.1} {:>9.1} {:>10.1} {:>9} {:>9.1}{}",
            self.spec.stage.name(),
            self.spec.presets(),
            self.spec.size,
            self.median_ms,
            min,
            max,
            self.gflop(),
            self.gflops_per_s(),
            self.arena_bytes as f64 / (1 << 20) as f64,
            self.working_bytes.map_or("-".into(), |b| format!(
                "{:.1}",
                b as f64 / (1 << 20) as f64
            )),
            self.params as f64 / 1e6,
            if self.finite {
                ""
            } else {
                "  (output not finite)"
            }
        )
    }
}

/// The median of `v` (sorted in place; the mean of the middle two for even lengths).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Builds, plans and times one stage on `backend`, whose arena elements are `elem_bytes` wide.
pub fn run<B: Backend>(
    backend: &B,
    elem_bytes: usize,
    spec: &Spec,
    o: &RunOptions,
) -> Result<Report> {
    let macs = count(spec)?;
    let c = spec.configs()?;
    let t0 = Instant::now();
    let src = Counted {
        inner: &weights::RandomWeights {
            seed: o.seed,
            dtype: o.weights,
        },
        params: Cell::new(0),
    };
    let before = rss::current();
    let nets = load(backend, spec, &c, &src)?;
    let weights_bytes = rss::current()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before));
    let load_s = t0.elapsed().as_secs_f64();
    let inp = spec.inputs(&c, o.seed);
    let make = |read: bool| {
        let (nets, inp) = (&nets, &inp);
        move |cx: &mut Exec<B>| {
            let y = forward(nets, cx, inp)?;
            if read { cx.read(&y) } else { Ok(Vec::new()) }
        }
    };
    let (timed, working_bytes) = rss::working_set(|| -> Result<_> {
        let plan = engine::plan(backend, make(false))?;
        let mut arena = backend.alloc_arena(plan.peak)?;
        let mut finite = true;
        for _ in 0..o.warmup.max(1) {
            let y = engine::run(backend, &mut arena, &plan, make(true))?;
            finite &= y.iter().all(|v| v.is_finite());
        }
        let mut runs_ms = Vec::with_capacity(o.runs);
        for _ in 0..o.runs.max(1) {
            backend.synchronize()?;
            let t = Instant::now();
            engine::run(backend, &mut arena, &plan, make(false))?; // ends with synchronize
            runs_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let times = OpTimes::default();
        if o.profile {
            engine::run(backend, &mut arena, &plan, |cx: &mut Exec<B>| {
                cx.profile_ops(times.clone());
                forward(&nets, cx, &inp).map(drop)
            })?;
        }
        Ok((plan, finite, runs_ms, profile::by_time(&times)))
    });
    let (plan, finite, runs_ms, ops) = timed?;
    let median_ms = median(&mut runs_ms.clone());
    Ok(Report {
        spec: *spec,
        device: backend.name(),
        macs,
        runs_ms,
        median_ms,
        arena_bytes: plan.peak_bytes(elem_bytes),
        working_bytes,
        params: src.params.get(),
        weights: o.weights,
        weights_bytes,
        load_s,
        finite,
        ops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gflop(stage: Stage, presets: &[Preset]) -> f64 {
        count(&Spec::new(stage, presets, None).unwrap())
            .unwrap()
            .flops() as f64
            / 1e9
    }

    /// The counted FLOPs of every full-size stage agree with DESIGN.md §4 (measured there with
    /// PyTorch's counter on the reference classes) within 3%.
    #[test]
    fn counted_flops_match_the_cost_model() {
        let close = |got: f64, want: f64, what: &str| {
            assert!(
                (got / want - 1.0).abs() < 0.03,
                "{what}: counted {got:.1} GFLOP, DESIGN.md §4 says {want}"
            );
        };
        close(gflop(Stage::VaeEnc, &[]), 1117.0, "VAE encoder 512²");
        close(gflop(Stage::VaeDec, &[]), 2515.0, "VAE decoder 64² → 512²");
        close(
            gflop(Stage::Unet, &[Preset::Sd21Unet]),
            822.0,
            "U-Net SD-2.1-base",
        );
        close(gflop(Stage::Unet, &[Preset::EffUnet]), 434.0, "Eff U-Net");
        close(
            gflop(Stage::Dino, &[Preset::Dinov2L]),
            162.0,
            "DINOv2-L at 224",
        );
        close(
            gflop(Stage::Dino, &[Preset::Dinov2S]),
            12.0,
            "DINOv2-S at 224",
        );
    }

    /// The tile is its stages (plus bicubic and copies, which are not counted), and a projection
    /// when DINOv2's width is not the U-Net's context width.
    #[test]
    fn tile_is_the_sum_of_its_stages() {
        let parts: f64 = [Stage::VaeEnc, Stage::Dino, Stage::Unet, Stage::VaeDec]
            .into_iter()
            .map(|s| gflop(s, &[]))
            .sum();
        let tile = gflop(Stage::Tile, &[]);
        assert!(
            (tile - parts).abs() < 1e-6 * parts,
            "tile {tile} vs stages {parts}"
        );
        let small = gflop(Stage::Tile, &[Preset::Dinov2S]) - gflop(Stage::Dino, &[Preset::Dinov2S]);
        let proj = 2.0 * 257.0 * 384.0 * 1024.0 / 1e9;
        assert!((small - (tile - gflop(Stage::Dino, &[]) + proj)).abs() < 1e-6 * tile);
    }

    /// A real (small) run on the CPU: every timed run recorded, the counted MACs, a finite
    /// output, an arena, the parameters DINOv2-S has (22.1 M) and its ops in the profile.
    #[test]
    fn a_stage_runs_on_the_cpu() {
        let b = crate::backend::cpu::CpuBackend::new(1).unwrap();
        let spec = Spec::new(Stage::Dino, &[Preset::Dinov2S], Some(28)).unwrap();
        let o = RunOptions {
            runs: 2,
            warmup: 1,
            seed: 3,
            weights: DType::F32,
            profile: true,
        };
        let r = run(&b, 4, &spec, &o).unwrap();
        // The profiled run's ops, as DINOv2-S's 12 layers launch them on 2×2 patches + CLS.
        let calls = |label: &str| r.ops.iter().find(|(l, _)| l == label).map(|(_, t)| t.calls);
        assert_eq!(
            calls("conv 14x14/14 3→384 at 28×28"),
            Some(1),
            "{:?}",
            r.ops
        );
        assert_eq!(calls("linear 5×384→384"), Some(4 * 12)); // q, k, v, out
        assert_eq!(calls("attention 5×5, 6×64"), Some(12));
        assert_eq!(calls("layer_norm"), Some(2 * 12 + 1));
        assert!(r.ops.windows(2).all(|w| w[0].1.seconds >= w[1].1.seconds));
        assert_eq!(r.runs_ms.len(), 2);
        assert!(r.finite && r.arena_bytes > 0 && r.median_ms > 0.0);
        assert_eq!(r.macs, count(&spec).unwrap());
        assert!(
            (r.params as f64 / 1e6 - 22.1).abs() < 0.1,
            "{} params",
            r.params
        );
        assert_eq!(r.json()["stage"], "dino");
        assert!(r.row().starts_with("dino     dinov2-s"));
    }

    #[test]
    fn sizes_are_checked_and_presets_override_by_network() {
        assert!(Spec::new(Stage::Unet, &[], Some(96)).is_err());
        assert!(Spec::new(Stage::VaeEnc, &[], Some(60)).is_err());
        let s = Spec::new(Stage::Tile, &[Preset::Sd21Unet, Preset::Dinov2S], Some(256)).unwrap();
        assert_eq!(s.presets(), "sd-vae+sd21-unet+dinov2-s");
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
