//! `f2idiff pack`: read, check, merge, cast, write.

use super::lora::{self, LoraPlan};
use super::source::{SrcTensor, TensorSet};
use crate::config::{ModelConfigs, read_json};
use crate::error::{Error, Result};
use crate::manifest::{self, Manifest};
use crate::pack::{
    self, AdapterInfo, CondProj, Header, LoraInfo, LoraMode, Provenance, SourceFile, TensorPlan,
};
use crate::tensor::{DType, encode_f32};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// How adapters end up in the pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraChoice {
    /// Fold `scale · B · A` into the base weights, in f32, before casting.
    Merge,
    /// Keep A and B (scale folded into B) for a runtime `lora_scale`.
    Runtime,
}

#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Storage type of every packed weight.
    pub dtype: DType,
    pub lora: LoraChoice,
    /// `lora_alpha` for adapters whose config does not give one (PEFT's default is 8).
    pub lora_alpha: Option<f64>,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            dtype: DType::F32,
            lora: LoraChoice::Merge,
            lora_alpha: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PackSummary {
    pub tensors: usize,
    pub bytes: u64,
    pub lora: LoraMode,
    pub adapters: Vec<AdapterInfo>,
    /// Source tensors the configs do not use, left out of the pack.
    pub skipped: usize,
}

/// One network's weights and adapters.
struct Network {
    prefix: &'static str,
    weights: TensorSet,
    lora: Option<LoraPlan>,
}

impl Network {
    /// The tensor that stands for base tensor `name`: an adapter's replacement, or the base.
    fn base(&self, name: &str) -> Option<SrcTensor<'_>> {
        self.lora
            .as_ref()
            .and_then(|l| l.replacement(name))
            .or_else(|| self.weights.get(name))
    }

    fn deltas(&self, name: &str) -> &[lora::Delta] {
        self.lora
            .as_ref()
            .and_then(|l| l.deltas.get(name))
            .map_or(&[], Vec::as_slice)
    }
}

/// What to write for each planned tensor.
enum Job {
    Base(usize, String),
    LoraA(usize, String),
    LoraB(usize, String),
}

/// A network config without `_name_or_path`: diffusers and transformers record there the folder
/// a model was loaded from, a path of the machine that saved it, which a pack that is shipped must
/// not carry (its provenance names files relative to the model folder).
fn without_local_path(mut config: Value) -> Value {
    if let Value::Object(map) = &mut config {
        map.remove("_name_or_path");
    }
    config
}

pub fn pack_folder(dir: &Path, out: &Path, opts: &PackOptions) -> Result<PackSummary> {
    let config_path = |net: &str| dir.join(net).join("config.json");
    let (vae_path, unet_path, dino_path) = (
        config_path("vae"),
        config_path("unet"),
        config_path("dinov2"),
    );
    let pipe_path = dir.join("f2idiff.json");
    let pipe_raw = if pipe_path.exists() {
        read_json(&pipe_path)?
    } else {
        Value::Object(Default::default())
    };
    let (vae_raw, unet_raw, dino_raw) = (
        without_local_path(read_json(&vae_path)?),
        without_local_path(read_json(&unet_path)?),
        without_local_path(read_json(&dino_path)?),
    );
    let configs = ModelConfigs::parse(
        (&pipe_path, &pipe_raw),
        (&vae_path, &vae_raw),
        (&unet_path, &unet_raw),
        (&dino_path, &dino_raw),
    )?;

    let mut nets = vec![
        Network {
            prefix: "vae.",
            weights: TensorSet::open_dir(&dir.join("vae"), "diffusion_pytorch_model")?,
            lora: None,
        },
        Network {
            prefix: "unet.",
            weights: TensorSet::open_dir(&dir.join("unet"), "diffusion_pytorch_model")?,
            lora: None,
        },
        Network {
            prefix: "dinov2.",
            weights: TensorSet::open_dir(&dir.join("dinov2"), "model")?,
            lora: None,
        },
    ];
    let cond_file = dir.join("cond_proj.safetensors");
    let cond_proj = if cond_file.exists() {
        let set = TensorSet::open_file(&cond_file)?;
        let w = set.get("weight").ok_or_else(|| Error::MissingTensor {
            path: cond_file.clone(),
            tensor: "weight".into(),
        })?;
        if w.shape.len() != 2 {
            let expected = vec![
                configs.unet.context_dim().unwrap_or(0),
                configs.dinov2.hidden_size,
            ];
            return Err(Error::Shape {
                path: cond_file,
                tensor: "weight".into(),
                expected,
                found: w.shape.to_vec(),
            });
        }
        let dims = (w.shape[0], w.shape[1]);
        nets.push(Network {
            prefix: "cond_proj.",
            weights: set,
            lora: None,
        });
        Some(dims)
    } else {
        None
    };
    configs.check_consistency(&unet_path, cond_proj)?;

    for (i, net) in [(0, "vae"), (1, "unet")] {
        let lora_dir = dir.join(format!("{net}_lora"));
        if lora_dir.is_dir() {
            nets[i].lora = Some(LoraPlan::open(
                &lora_dir,
                net,
                &nets[i].weights,
                opts.lora_alpha,
            )?);
        }
    }

    let required = manifest::required(&configs, cond_proj);
    for ((prefix, m), net) in required.iter().zip(&nets) {
        debug_assert_eq!(*prefix, net.prefix);
        preflight(net, m)?;
    }

    let has_lora = nets.iter().any(|n| n.lora.is_some());
    let mode = match (has_lora, opts.lora) {
        (false, _) => LoraMode::None,
        (true, LoraChoice::Merge) => LoraMode::Merge,
        (true, LoraChoice::Runtime) => LoraMode::Runtime,
    };
    let (plans, jobs) = plan(&nets, &required, mode, opts.dtype);

    let mut sources: Vec<PathBuf> = [&pipe_path, &vae_path, &unet_path, &dino_path]
        .into_iter()
        .filter(|p| p.exists())
        .cloned()
        .collect();
    for net in &nets {
        sources.extend(net.weights.sources().iter().cloned());
        if let Some(l) = &net.lora {
            sources.extend(l.sources());
        }
    }
    let relative = |p: &Path| {
        p.strip_prefix(dir)
            .unwrap_or(p)
            .to_string_lossy()
            .replace('\\', "/")
    };
    let files = sources
        .iter()
        .map(|p| {
            Ok(SourceFile {
                path: relative(p),
                bytes: file_len(p)?,
                sha256: sha256_hex(p)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut adapters: Vec<AdapterInfo> = nets
        .iter()
        .filter_map(|n| n.lora.as_ref())
        .flat_map(|l| l.adapters.clone())
        .collect();
    for a in &mut adapters {
        a.source = relative(Path::new(&a.source));
    }

    let mut pipeline = serde_json::to_value(&configs.pipeline).expect("plain struct serializes");
    if let (Value::Object(p), Value::Object(raw)) = (&mut pipeline, &pipe_raw) {
        for (k, v) in raw {
            p.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let header = Header {
        format: pack::FORMAT_NAME.into(),
        pipeline,
        vae: vae_raw,
        unet: unet_raw,
        dinov2: dino_raw,
        cond_proj: cond_proj.map(|(o, i)| CondProj {
            in_features: i,
            out_features: o,
        }),
        dtype: opts.dtype.name().into(),
        lora: LoraInfo {
            mode,
            adapters: adapters.clone(),
        },
        provenance: Provenance {
            tool: format!("f2idiff {}", env!("CARGO_PKG_VERSION")),
            files,
        },
        f16_prescales: Default::default(),
    };

    let bytes = pack::write_pack(out, &header, &plans, |i| {
        let values = match &jobs[i] {
            Job::Base(n, name) => merged(&nets[*n], name, mode == LoraMode::Merge)?,
            Job::LoraA(n, name) => lora_a(&nets[*n], name)?,
            Job::LoraB(n, name) => lora_b(&nets[*n], name)?,
        };
        Ok(encode_f32(opts.dtype, &values))
    })?;
    let used: usize = required.iter().map(|(_, m)| m.len()).sum();
    let total: usize = nets.iter().map(|n| n.weights.names().count()).sum();
    Ok(PackSummary {
        tensors: plans.len(),
        bytes,
        lora: mode,
        adapters,
        skipped: total.saturating_sub(used),
    })
}

/// Checks presence, shape and dtype of every tensor `m` requires, and that every adapter
/// touches only tensors the model uses — before anything is written.
fn preflight(net: &Network, m: &Manifest) -> Result<()> {
    let prefix = net.prefix;
    m.check(prefix, net.weights.primary_path(), |full| {
        let t = net.base(&full[prefix.len()..])?;
        Some((t.shape, t.path))
    })?;
    for (name, _) in &m.tensors {
        net.base(name).expect("checked above").dtype()?;
    }
    if let Some(l) = &net.lora {
        l.check_pairs(|name| net.base(name))?;
        let touched = l.deltas.keys().chain(l.replacements.keys());
        for name in touched {
            if m.get(name).is_none() {
                return Err(Error::lora(
                    l.files[0].set.primary_path(),
                    name,
                    "changes a tensor the model's config does not use",
                ));
            }
        }
        for deltas in l.deltas.values() {
            for d in deltas {
                let (a, b) = l.pair(d);
                a.dtype()?;
                b.dtype()?;
            }
        }
    }
    Ok(())
}

fn plan(
    nets: &[Network],
    required: &[(&str, Manifest)],
    mode: LoraMode,
    dtype: DType,
) -> (Vec<TensorPlan>, Vec<Job>) {
    let mut plans = Vec::new();
    let mut jobs = Vec::new();
    for (n, ((prefix, m), net)) in required.iter().zip(nets).enumerate() {
        for (name, shape) in &m.tensors {
            plans.push(TensorPlan {
                name: format!("{prefix}{name}"),
                dtype,
                shape: shape.clone(),
            });
            jobs.push(Job::Base(n, name.clone()));
            let deltas = net.deltas(name);
            if mode != LoraMode::Runtime || deltas.is_empty() {
                continue;
            }
            let rank: usize = deltas.iter().map(|d| d.rank).sum();
            let module = name.strip_suffix(".weight").unwrap_or(name);
            let mut a_shape = shape.clone();
            a_shape[0] = rank;
            let mut b_shape = vec![1; shape.len()];
            b_shape[0] = shape[0];
            b_shape[1] = rank;
            plans.push(TensorPlan {
                name: format!("{prefix}{module}.lora_A.weight"),
                dtype,
                shape: a_shape,
            });
            jobs.push(Job::LoraA(n, name.clone()));
            plans.push(TensorPlan {
                name: format!("{prefix}{module}.lora_B.weight"),
                dtype,
                shape: b_shape,
            });
            jobs.push(Job::LoraB(n, name.clone()));
        }
    }
    (plans, jobs)
}

/// The base tensor in f32, with every adapter's delta added when merging.
fn merged(net: &Network, name: &str, merge: bool) -> Result<Vec<f32>> {
    let base = net.base(name).expect("checked in preflight");
    let mut w = base.to_f32()?;
    if merge {
        let out = base.shape[0];
        for d in net.deltas(name) {
            let (a, b) = net.lora.as_ref().expect("deltas imply adapters").pair(d);
            let delta = lora::delta(&a.to_f32()?, &b.to_f32()?, out, d.rank, d.scale);
            w.iter_mut().zip(&delta).for_each(|(x, dx)| *x += dx);
        }
    }
    Ok(w)
}

/// All adapters' A matrices of one target, stacked along the rank axis.
fn lora_a(net: &Network, name: &str) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for d in net.deltas(name) {
        let (a, _) = net.lora.as_ref().expect("deltas imply adapters").pair(d);
        out.extend(a.to_f32()?);
    }
    Ok(out)
}

/// All adapters' B matrices of one target, side by side along the rank axis, each times its scale.
fn lora_b(net: &Network, name: &str) -> Result<Vec<f32>> {
    let deltas = net.deltas(name);
    let lora = net.lora.as_ref().expect("deltas imply adapters");
    let rows = net.base(name).expect("checked in preflight").shape[0];
    let rank: usize = deltas.iter().map(|d| d.rank).sum();
    let mut out = vec![0f32; rows * rank];
    let mut col = 0;
    for d in deltas {
        let b = lora.pair(d).1.to_f32()?;
        for o in 0..rows {
            for r in 0..d.rank {
                out[o * rank + col + r] = b[o * d.rank + r] * d.scale as f32;
            }
        }
        col += d.rank;
    }
    Ok(out)
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len())
}

fn sha256_hex(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
