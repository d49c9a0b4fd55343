//! PEFT LoRA adapters, in the two spellings users have:
//! - PEFT `save_pretrained`: `adapter_config.json` + `adapter_model.safetensors` with keys
//!   `base_model.model.<module>.lora_A.weight` (the adapter name dropped; further adapters in
//!   sub-folders named after them);
//! - OSEDiff's state-dict spelling: named adapters `<module>.lora_A.<adapter>.weight`, several
//!   adapters in one file, `<module>.base_layer.weight` standing for the wrapped base weight, and
//!   usually no config (PEFT's default `lora_alpha` 8 then applies, or `--lora-alpha`);
//! - diffusers `save_lora_adapter`: `pytorch_lora_weights.safetensors`, keys `unet.<module>.lora_A.weight`.
//!
//! Scale per target: `lora_alpha / r` (`/ √r` with `use_rslora`), patterns from `rank_pattern`
//! and `alpha_pattern` honoured. Delta: ΔW = scale · B · A with A `[r, in, k…]`, B `[out, r, 1…]`.

use super::source::{SrcTensor, TensorSet};
use crate::error::{Error, Result};
use crate::pack::AdapterInfo;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// PEFT's `LoraConfig.lora_alpha` default, used when neither a config nor `--lora-alpha` says.
pub const PEFT_DEFAULT_ALPHA: f64 = 8.0;

#[derive(Debug, Deserialize)]
struct PeftConfig {
    #[serde(default)]
    peft_type: Option<String>,
    #[serde(default)]
    r: Option<usize>,
    #[serde(default)]
    lora_alpha: Option<f64>,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    lora_bias: bool,
    #[serde(default)]
    rank_pattern: BTreeMap<String, usize>,
    #[serde(default)]
    alpha_pattern: BTreeMap<String, f64>,
}

/// One adapter file and its config.
pub struct AdapterFile {
    pub set: TensorSet,
    config: Option<PeftConfig>,
    config_path: Option<PathBuf>,
    /// Adapter name for unnamed keys: "default", or the sub-folder's name.
    default_name: String,
}

/// One LoRA pair applied to one base weight.
pub struct Delta {
    pub file: usize,
    pub adapter: String,
    pub a: String,
    pub b: String,
    pub rank: usize,
    pub scale: f64,
}

/// Everything the adapters of one network change, keyed by base tensor name (no prefix).
#[derive(Default)]
pub struct LoraPlan {
    pub files: Vec<AdapterFile>,
    /// Base weight name (`<module>.weight`) → the pairs to add to it.
    pub deltas: BTreeMap<String, Vec<Delta>>,
    /// Base tensor name → (file, key) of a tensor that replaces it (`base_layer`, full weights).
    pub replacements: BTreeMap<String, (usize, String)>,
    pub adapters: Vec<AdapterInfo>,
}

enum KeyKind<'a> {
    A(&'a str, Option<&'a str>),
    B(&'a str, Option<&'a str>),
    BaseLayer(&'a str, &'a str),
    Other,
}

/// Splits a LoRA key into its module, role and adapter name.
fn classify(key: &str) -> std::result::Result<KeyKind<'_>, &'static str> {
    if key.contains("lora_magnitude_vector") {
        return Err("DoRA adapters (lora_magnitude_vector) are not supported");
    }
    if key.contains("lora_embedding_") {
        return Err("embedding LoRA is not supported");
    }
    for (tag, is_a) in [(".lora_A", true), (".lora_B", false)] {
        if let Some(at) = key.rfind(tag) {
            let module = &key[..at];
            let rest = &key[at + tag.len()..];
            let name = match rest {
                ".weight" => None,
                ".bias" => return Err("LoRA with a bias on lora_B (lora_bias) is not supported"),
                _ => match rest
                    .strip_prefix('.')
                    .and_then(|r| r.strip_suffix(".weight"))
                {
                    Some(n) if !n.is_empty() && !n.contains('.') => Some(n),
                    _ if rest.ends_with(".bias") => {
                        return Err("LoRA with a bias on lora_B (lora_bias) is not supported");
                    }
                    _ => return Err("unrecognised LoRA key"),
                },
            };
            return Ok(if is_a {
                KeyKind::A(module, name)
            } else {
                KeyKind::B(module, name)
            });
        }
    }
    if let Some(at) = key.rfind(".base_layer.") {
        return Ok(KeyKind::BaseLayer(
            &key[..at],
            &key[at + ".base_layer.".len()..],
        ));
    }
    Ok(KeyKind::Other)
}

/// True when a PEFT pattern key matches a module name (PEFT: `(.*\.)?pattern$`).
fn pattern_matches(path: &Path, pattern: &str, module: &str) -> Result<bool> {
    if pattern.chars().any(|c| "*+?()[]{}|^$\\".contains(c)) {
        return Err(Error::Unsupported(format!(
            "{}: regular-expression pattern `{pattern}` in rank_pattern/alpha_pattern",
            path.display()
        )));
    }
    Ok(module == pattern || module.ends_with(&format!(".{pattern}")))
}

impl AdapterFile {
    fn open(dir: &Path, stem: &str, default_name: String) -> Result<AdapterFile> {
        let config_path = dir.join("adapter_config.json");
        let config = if config_path.is_file() {
            let raw = crate::config::read_json(&config_path)?;
            let cfg: PeftConfig = crate::config::from_value(&config_path, &raw)?;
            check_peft_config(&config_path, &cfg)?;
            Some(cfg)
        } else {
            None
        };
        Ok(AdapterFile {
            set: TensorSet::open_dir(dir, stem)?,
            config_path: config.as_ref().map(|_| config_path),
            config,
            default_name,
        })
    }

    /// `(rank, scale)` for `module`, whose `lora_A` has `found_rank` rows.
    fn scale(
        &self,
        module: &str,
        found_rank: usize,
        cli_alpha: Option<f64>,
    ) -> Result<(usize, f64)> {
        let (mut r, mut alpha, mut rslora) =
            (found_rank, cli_alpha.unwrap_or(PEFT_DEFAULT_ALPHA), false);
        if let (Some(cfg), Some(path)) = (&self.config, &self.config_path) {
            r = cfg.r.unwrap_or(found_rank);
            if let Some(a) = cfg.lora_alpha {
                alpha = a;
            }
            for (pattern, &pr) in &cfg.rank_pattern {
                if pattern_matches(path, pattern, module)? {
                    r = pr;
                }
            }
            for (pattern, &pa) in &cfg.alpha_pattern {
                if pattern_matches(path, pattern, module)? {
                    alpha = pa;
                }
            }
            rslora = cfg.use_rslora;
            if r != found_rank {
                return Err(Error::lora(
                    path,
                    module,
                    format!("config says rank {r}, lora_A has {found_rank} rows"),
                ));
            }
        }
        let denom = if rslora { (r as f64).sqrt() } else { r as f64 };
        Ok((r, alpha / denom))
    }
}

fn check_peft_config(path: &Path, cfg: &PeftConfig) -> Result<()> {
    let refuse = |what: &str| Err(Error::Unsupported(format!("{}: {what}", path.display())));
    if cfg.peft_type.as_deref().is_some_and(|t| t != "LORA") {
        return refuse(&format!("peft_type {:?} (only LORA)", cfg.peft_type));
    }
    if cfg.use_dora {
        return refuse("DoRA (use_dora)");
    }
    if cfg.fan_in_fan_out {
        return refuse("fan_in_fan_out");
    }
    if cfg.lora_bias {
        return refuse("lora_bias");
    }
    if cfg.r == Some(0) || cfg.lora_alpha.is_some_and(|a| !a.is_finite()) {
        return Err(Error::config(
            path,
            "r must be positive and lora_alpha finite",
        ));
    }
    Ok(())
}

/// The adapter file stem in `dir`: PEFT's `adapter_model`, or diffusers' `pytorch_lora_weights`
/// (`save_lora_adapter`), each single or sharded.
fn adapter_stem(dir: &Path) -> Option<&'static str> {
    ["adapter_model", "pytorch_lora_weights"]
        .into_iter()
        .find(|stem| {
            dir.join(format!("{stem}.safetensors")).is_file()
                || dir.join(format!("{stem}.safetensors.index.json")).is_file()
        })
}

/// Strips the wrapper prefixes PEFT and diffusers put before module names.
fn module_key<'a>(key: &'a str, network: &str) -> &'a str {
    let key = key.strip_prefix("base_model.model.").unwrap_or(key);
    key.strip_prefix(network)
        .and_then(|k| k.strip_prefix('.'))
        .unwrap_or(key)
}

impl LoraPlan {
    /// Reads the adapters in `dir` (and its sub-folders) for `network` ("unet", "vae") and checks
    /// them against `base`. `cli_alpha` stands in for a missing `lora_alpha`.
    pub fn open(
        dir: &Path,
        network: &str,
        base: &TensorSet,
        cli_alpha: Option<f64>,
    ) -> Result<LoraPlan> {
        let mut plan = LoraPlan::default();
        if let Some(stem) = adapter_stem(dir) {
            plan.files
                .push(AdapterFile::open(dir, stem, "default".into())?);
        }
        let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && adapter_stem(p).is_some())
            .collect();
        subdirs.sort();
        for sub in subdirs {
            let name = sub
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = adapter_stem(&sub).expect("filtered above");
            plan.files.push(AdapterFile::open(&sub, stem, name)?);
        }
        if plan.files.is_empty() {
            return Err(Error::io(
                &dir.join("adapter_model.safetensors"),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no adapter_model.safetensors (or pytorch_lora_weights.safetensors) in the LoRA folder",
                ),
            ));
        }
        for i in 0..plan.files.len() {
            plan.add_file(i, network, base, cli_alpha)?;
        }
        Ok(plan)
    }

    fn add_file(
        &mut self,
        fi: usize,
        network: &str,
        base: &TensorSet,
        cli_alpha: Option<f64>,
    ) -> Result<()> {
        let path = self.files[fi].set.primary_path().to_path_buf();
        // (module, adapter) → (A key, B key), and (key, base tensor it replaces).
        let mut pairs: BTreeMap<(String, String), (Option<String>, Option<String>)> =
            BTreeMap::new();
        let mut replaced: Vec<(String, String)> = Vec::new();
        let file = &self.files[fi];
        for key in file.set.names() {
            let module_key = module_key(key, network);
            match classify(module_key).map_err(|msg| Error::lora(&path, key, msg))? {
                KeyKind::A(m, n) | KeyKind::B(m, n) => {
                    let adapter = n.unwrap_or(&file.default_name).to_string();
                    let slot = pairs.entry((m.to_string(), adapter)).or_default();
                    if module_key[m.len()..].starts_with(".lora_A") {
                        slot.0 = Some(key.to_string());
                    } else {
                        slot.1 = Some(key.to_string());
                    }
                }
                KeyKind::BaseLayer(m, param) => {
                    replaced.push((key.to_string(), format!("{m}.{param}")))
                }
                KeyKind::Other => replaced.push((key.to_string(), module_key.to_string())),
            }
        }
        for (key, target) in replaced {
            self.replace(fi, &key, target, base)?;
        }
        let file = &self.files[fi];

        let mut infos: BTreeMap<String, AdapterInfo> = BTreeMap::new();
        for ((module, adapter), (a, b)) in pairs {
            let (Some(a), Some(b)) = (a, b) else {
                return Err(Error::lora(
                    &path,
                    &module,
                    format!("adapter `{adapter}` lacks its lora_A or lora_B"),
                ));
            };
            let target = format!("{module}.weight");
            base.get(&target).ok_or_else(|| {
                Error::lora(
                    &path,
                    &module,
                    format!(
                        "target module does not exist in the base model ({} has no `{target}`)",
                        base.primary_path().display()
                    ),
                )
            })?;
            let at = get(&file.set, &a)?;
            get(&file.set, &b)?;
            if at.shape.first().is_none_or(|&r| r == 0) {
                return Err(Error::lora(
                    &path,
                    &module,
                    format!("lora_A has shape {:?}: no rank", at.shape),
                ));
            }
            let (rank, scale) = file.scale(&module, at.shape[0], cli_alpha)?;
            let info = infos.entry(adapter.clone()).or_insert_with(|| AdapterInfo {
                module: network.to_string(),
                name: adapter.clone(),
                source: path.to_string_lossy().into_owned(),
                ranks: vec![],
                scales: vec![],
                targets: 0,
            });
            info.targets += 1;
            if !info.ranks.contains(&rank) {
                info.ranks.push(rank);
            }
            if !info.scales.contains(&scale) {
                info.scales.push(scale);
            }
            self.deltas.entry(target).or_default().push(Delta {
                file: fi,
                adapter,
                a,
                b,
                rank,
                scale,
            });
        }
        self.adapters.extend(infos.into_values());
        Ok(())
    }

    fn replace(&mut self, fi: usize, key: &str, target: String, base: &TensorSet) -> Result<()> {
        let path = self.files[fi].set.primary_path().to_path_buf();
        let new = get(&self.files[fi].set, key)?;
        let old = base.get(&target).ok_or_else(|| {
            Error::lora(&path, key, format!("neither a LoRA tensor nor a replacement for a base tensor (no `{target}` in the base model)"))
        })?;
        if old.shape != new.shape {
            return Err(Error::Shape {
                path,
                tensor: key.to_string(),
                expected: old.shape.to_vec(),
                found: new.shape.to_vec(),
            });
        }
        if self
            .replacements
            .insert(target.clone(), (fi, key.to_string()))
            .is_some()
        {
            return Err(Error::lora(
                &path,
                key,
                format!("`{target}` is replaced twice"),
            ));
        }
        Ok(())
    }

    /// Checks every pair's shapes against the base weight it changes, as `base` resolves it.
    /// Run after the base itself was checked against the config, so a wrong base shape is
    /// reported as such rather than as a misfit adapter.
    pub fn check_pairs<'a>(&'a self, base: impl Fn(&str) -> Option<SrcTensor<'a>>) -> Result<()> {
        for (target, deltas) in &self.deltas {
            let module = target.strip_suffix(".weight").unwrap_or(target);
            let w = base(target).expect("target existence checked at open");
            for d in deltas {
                let (a, b) = self.pair(d);
                check_shapes(self.files[d.file].set.primary_path(), module, w, a, b)?;
            }
        }
        Ok(())
    }

    /// The tensor to use in place of base tensor `name`, if an adapter file replaces it.
    pub fn replacement(&self, name: &str) -> Option<SrcTensor<'_>> {
        let (fi, key) = self.replacements.get(name)?;
        self.files[*fi].set.get(key)
    }

    /// Every file the adapters were read from (for provenance).
    pub fn sources(&self) -> Vec<PathBuf> {
        let mut out = BTreeSet::new();
        for f in &self.files {
            out.extend(f.set.sources().iter().cloned());
            out.extend(f.config_path.iter().cloned());
        }
        out.into_iter().collect()
    }

    /// `(A, B)` tensors of a delta.
    pub fn pair(&self, d: &Delta) -> (SrcTensor<'_>, SrcTensor<'_>) {
        let set = &self.files[d.file].set;
        // Both keys were looked up when the plan was built.
        (
            set.get(&d.a).expect("planned key"),
            set.get(&d.b).expect("planned key"),
        )
    }
}

fn get<'a>(set: &'a TensorSet, key: &str) -> Result<SrcTensor<'a>> {
    set.get(key).ok_or_else(|| Error::MissingTensor {
        path: set.primary_path().to_path_buf(),
        tensor: key.to_string(),
    })
}

/// Base `[out, in, k…]`, A `[r, in, k…]`, B `[out, r, 1…]`, for linear (rank 2) and conv (rank 4).
fn check_shapes(path: &Path, module: &str, w: SrcTensor, a: SrcTensor, b: SrcTensor) -> Result<()> {
    let (ws, as_, bs) = (w.shape, a.shape, b.shape);
    let ok = matches!(ws.len(), 2 | 4)
        && as_.len() == ws.len()
        && bs.len() == ws.len()
        && as_[0] > 0
        && as_[1..] == ws[1..]
        && bs[0] == ws[0]
        && bs[1] == as_[0]
        && bs[2..].iter().all(|&d| d == 1);
    if ok {
        Ok(())
    } else {
        Err(Error::lora(
            path,
            module,
            format!("lora_A {as_:?} and lora_B {bs:?} do not fit the base weight {ws:?}"),
        ))
    }
}

/// Scaled delta ΔW = scale · B · A as a row-major `[out, in·k…]` buffer, accumulated in f64 and
/// rounded once to f32 before scaling, as PEFT's f32 `B @ A * scaling` does up to rounding.
pub fn delta(a: &[f32], b: &[f32], out: usize, rank: usize, scale: f64) -> Vec<f32> {
    let cols = a.len() / rank;
    let scale = scale as f32;
    let mut d = vec![0f32; out * cols];
    let mut acc = vec![0f64; cols];
    for o in 0..out {
        acc.iter_mut().for_each(|x| *x = 0.0);
        for r in 0..rank {
            let bor = b[o * rank + r] as f64;
            for (x, &av) in acc.iter_mut().zip(&a[r * cols..(r + 1) * cols]) {
                *x += bor * av as f64;
            }
        }
        for (dv, &x) in d[o * cols..(o + 1) * cols].iter_mut().zip(&acc) {
            *dv = (x as f32) * scale;
        }
    }
    d
}
