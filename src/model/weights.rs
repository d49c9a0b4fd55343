//! Where model constructors get their parameters: a pack (with runtime LoRA applied at the
//! chosen scale), or any other [`WeightSource`] (tests generate weights from a formula).

use crate::backend::{Backend, Conv2d, HostData};
use crate::error::{Error, Result};
use crate::exec::{Conv, Linear, Lora, Norm, Param, upload};
use crate::pack::{LoraMode, Pack, TensorRef};
use crate::tensor::decode_f32;
use std::cell::Cell;
use std::sync::Arc;

/// A runtime-LoRA pair kept beside its base weight: shapes and values of `lora_A` and
/// `lora_B`.
pub struct LoraData {
    pub a: (Vec<usize>, HostData),
    pub b: (Vec<usize>, HostData),
    pub rank: usize,
}

/// Parameters by reference `state_dict` name (without module prefix).
pub trait WeightSource {
    /// The values of `name`, which must have exactly `shape`.
    fn get(&self, name: &str, shape: &[usize]) -> Result<HostData>;
    /// The runtime-LoRA pair of weight `name` when the source keeps LoRA unmerged (then
    /// [`WeightSource::get`] gives the base weight alone).
    fn lora(&self, _name: &str) -> Result<Option<LoraData>> {
        Ok(None)
    }
    /// The f16 pre-scale of module `name`'s output (a power of two ≤ 1; 1 = none).
    fn prescale(&self, _name: &str) -> f32 {
        1.0
    }
    /// Module `name` as the whole model names it (with the network's prefix).
    fn full_name(&self, name: &str) -> String {
        name.to_string()
    }
}

/// One network's parameters in a pack (`prefix` = "vae.", "unet.", "dinov2.", "cond_proj.").
pub struct PackWeights {
    pub pack: Arc<Pack>,
    pub prefix: String,
    /// Multiplies runtime-LoRA deltas (`W + lora_scale · B·A`) merged at load; ignored for
    /// merged packs and when `unmerged`.
    pub lora_scale: f32,
    /// Keep runtime-LoRA pairs beside their base weights ([`WeightSource::lora`]) instead of
    /// merging them.
    pub unmerged: bool,
    /// Runtime-LoRA pairs handed out by [`WeightSource::lora`].
    pub lora_used: Cell<usize>,
    /// Apply the pack's f16 pre-scales ([`WeightSource::prescale`]).
    pub prescales: bool,
    /// Pre-scales handed out.
    pub prescales_used: Cell<usize>,
}

impl PackWeights {
    /// `lora_A` and `lora_B` of base tensor `full` (prefixed), in a runtime-LoRA pack.
    fn pair(&self, full: &str) -> Option<(TensorRef<'_>, TensorRef<'_>)> {
        let module = full.strip_suffix(".weight")?;
        if self.pack.header().lora.mode != LoraMode::Runtime {
            return None;
        }
        Some((
            self.pack.tensor(&format!("{module}.lora_A.weight"))?,
            self.pack.tensor(&format!("{module}.lora_B.weight"))?,
        ))
    }
}

impl WeightSource for PackWeights {
    fn prescale(&self, name: &str) -> f32 {
        let k = self
            .prescales
            .then(|| self.pack.header().f16_prescales.get(&self.full_name(name)))
            .flatten();
        match k {
            Some(&k) => {
                self.prescales_used.set(self.prescales_used.get() + 1);
                (-(k as f32)).exp2()
            }
            None => 1.0,
        }
    }

    fn full_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
    fn lora(&self, name: &str) -> Result<Option<LoraData>> {
        if !self.unmerged {
            return Ok(None);
        }
        let full = format!("{}{name}", self.prefix);
        let Some((a, b)) = self.pair(&full) else {
            return Ok(None);
        };
        let data = |t: &TensorRef| HostData::Packed {
            pack: self.pack.clone(),
            name: t.name.to_string(),
        };
        self.lora_used.set(self.lora_used.get() + 1);
        Ok(Some(LoraData {
            rank: a.shape[0],
            a: (a.shape.to_vec(), data(&a)),
            b: (b.shape.to_vec(), data(&b)),
        }))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<HostData> {
        let full = format!("{}{name}", self.prefix);
        let t = self.pack.require(&full)?;
        if t.shape != shape {
            return Err(Error::Shape {
                path: self.pack.path().to_path_buf(),
                tensor: full,
                expected: shape.to_vec(),
                found: t.shape.to_vec(),
            });
        }
        let lora = self.pair(&full).filter(|_| !self.unmerged);
        let Some((a, b)) = lora else {
            return Ok(HostData::Packed {
                pack: self.pack.clone(),
                name: full,
            });
        };
        // W + s · B·A, in f32 (the pack validated the shapes at open).
        let mut w = t.to_f32();
        let delta = crate::convert::lora::delta(
            &decode_f32(a.dtype, a.data),
            &decode_f32(b.dtype, b.data),
            shape[0],
            a.shape[0],
            self.lora_scale as f64,
        );
        w.iter_mut().zip(&delta).for_each(|(x, d)| *x += d);
        Ok(HostData::F32(w))
    }
}

/// Builds parameters under a name prefix (`at("down_blocks.0")`), checking shapes.
pub struct Loader<'a, B: Backend> {
    pub backend: &'a B,
    src: &'a dyn WeightSource,
    prefix: String,
}

impl<'a, B: Backend> Loader<'a, B> {
    pub fn new(backend: &'a B, src: &'a dyn WeightSource) -> Self {
        Loader {
            backend,
            src,
            prefix: String::new(),
        }
    }

    /// A loader for the sub-module `name`.
    pub fn at(&self, name: &str) -> Loader<'a, B> {
        Loader {
            backend: self.backend,
            src: self.src,
            prefix: format!("{}{name}.", self.prefix),
        }
    }

    pub fn param(&self, name: &str, shape: &[usize]) -> Result<Param<B>> {
        let data = self.src.get(&format!("{}{name}", self.prefix), shape)?;
        upload(self.backend, shape, data)
    }

    /// The runtime-LoRA pair of parameter `name`, uploaded, when the source keeps it unmerged.
    fn lora(&self, name: &str) -> Result<Option<Lora<B>>> {
        let Some(d) = self.src.lora(&format!("{}{name}", self.prefix))? else {
            return Ok(None);
        };
        let (a, b) = self.backend.upload_lora((&d.a.0, d.a.1), (&d.b.0, d.b.1))?;
        Ok(Some(Lora {
            a: Param { w: a, shape: d.a.0 },
            b: Param { w: b, shape: d.b.0 },
            rank: d.rank,
        }))
    }

    /// `nn.Conv2d(c_in, c_out, k)` with bias, square kernel, symmetric padding `k/2` unless given.
    pub fn conv(
        &self,
        name: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: [usize; 4],
    ) -> Result<Conv<B>> {
        let l = self.at(name);
        Ok(Conv {
            p: Conv2d {
                c_in,
                c_out,
                kh: k,
                kw: k,
                stride,
                pad,
            },
            w: l.param("weight", &[c_out, c_in, k, k])?,
            b: Some(l.param("bias", &[c_out])?),
            lora: l.lora("weight")?,
            prescale: self.src.prescale(&format!("{}{name}", self.prefix)),
            name: self.src.full_name(&format!("{}{name}", self.prefix)),
        })
    }

    /// A stride-1 convolution padded to keep the size (`k/2` on every side).
    pub fn conv_same(&self, name: &str, c_in: usize, c_out: usize, k: usize) -> Result<Conv<B>> {
        let p = k / 2;
        self.conv(name, c_in, c_out, k, 1, [p; 4])
    }

    pub fn linear(&self, name: &str, n_in: usize, n_out: usize, bias: bool) -> Result<Linear<B>> {
        self.at(name).linear_here(n_in, n_out, bias)
    }

    /// `nn.Linear` whose `weight` (and `bias`) sit at this loader's prefix.
    pub fn linear_here(&self, n_in: usize, n_out: usize, bias: bool) -> Result<Linear<B>> {
        Ok(Linear {
            w: self.param("weight", &[n_out, n_in])?,
            b: if bias {
                Some(self.param("bias", &[n_out])?)
            } else {
                None
            },
            lora: self.lora("weight")?,
        })
    }

    pub fn group_norm(&self, name: &str, c: usize, groups: usize, eps: f64) -> Result<Norm<B>> {
        let l = self.at(name);
        Ok(Norm {
            gamma: l.param("weight", &[c])?,
            beta: l.param("bias", &[c])?,
            eps: eps as f32,
            groups,
        })
    }

    pub fn layer_norm(&self, name: &str, d: usize, eps: f64) -> Result<Norm<B>> {
        self.group_norm(name, d, 1, eps)
    }
}
