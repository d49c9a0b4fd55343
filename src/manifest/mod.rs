//! The weights each network needs, by name and shape, derived from its config exactly as the
//! reference constructors (diffusers / transformers) lay them out. The pack loader checks a pack
//! against these before any compute; the converter checks users' files against them before
//! writing anything. Names are the reference `state_dict` names, without a module prefix.

mod dinov2;
mod unet;
mod vae;

pub use dinov2::dinov2;
pub use unet::unet;
pub use vae::vae;

use crate::error::{Error, Result};
use std::path::Path;

/// Expected tensors, in the reference module order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    pub tensors: Vec<(String, Vec<usize>)>,
}

impl Manifest {
    pub fn get(&self, name: &str) -> Option<&[usize]> {
        self.tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_slice())
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Checks that every expected tensor exists (under `prefix`) with its expected shape.
    /// `lookup` gives a stored tensor's shape and the file holding it; a missing tensor is
    /// reported against `missing_in`.
    pub fn check<'a>(
        &self,
        prefix: &str,
        missing_in: &Path,
        lookup: impl Fn(&str) -> Option<(&'a [usize], &'a Path)>,
    ) -> Result<()> {
        for (name, expected) in &self.tensors {
            let full = format!("{prefix}{name}");
            match lookup(&full) {
                None => {
                    return Err(Error::MissingTensor {
                        path: missing_in.to_path_buf(),
                        tensor: full,
                    });
                }
                Some((found, path)) if found != expected.as_slice() => {
                    return Err(Error::Shape {
                        path: path.to_path_buf(),
                        tensor: full,
                        expected: expected.clone(),
                        found: found.to_vec(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Total number of parameters.
    pub fn params(&self) -> usize {
        self.tensors
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    fn push(&mut self, name: String, shape: Vec<usize>) {
        self.tensors.push((name, shape));
    }

    /// `nn.Linear(inp, out, bias)`.
    fn linear(&mut self, name: &str, inp: usize, out: usize, bias: bool) {
        self.push(format!("{name}.weight"), vec![out, inp]);
        if bias {
            self.push(format!("{name}.bias"), vec![out]);
        }
    }

    /// `nn.Conv2d(inp, out, k)` with bias.
    fn conv(&mut self, name: &str, inp: usize, out: usize, k: usize) {
        self.push(format!("{name}.weight"), vec![out, inp, k, k]);
        self.push(format!("{name}.bias"), vec![out]);
    }

    /// `nn.GroupNorm` / `nn.LayerNorm` affine parameters over `channels`.
    fn norm(&mut self, name: &str, channels: usize) {
        self.push(format!("{name}.weight"), vec![channels]);
        self.push(format!("{name}.bias"), vec![channels]);
    }

    /// diffusers `ResnetBlock2D`; `temb` is the time-embedding projection width, if any.
    fn resnet(&mut self, name: &str, inp: usize, out: usize, temb: Option<(usize, usize)>) {
        self.norm(&format!("{name}.norm1"), inp);
        self.conv(&format!("{name}.conv1"), inp, out, 3);
        if let Some((temb_in, temb_out)) = temb {
            self.linear(&format!("{name}.time_emb_proj"), temb_in, temb_out, true);
        }
        self.norm(&format!("{name}.norm2"), out);
        self.conv(&format!("{name}.conv2"), out, out, 3);
        if inp != out {
            self.conv(&format!("{name}.conv_shortcut"), inp, out, 1);
        }
    }
}

/// The networks of a model and their module prefixes in a pack.
pub const MODULES: [&str; 3] = ["vae", "unet", "dinov2"];

/// Every tensor a model needs, grouped by module prefix (`vae.`, `unet.`, `dinov2.`,
/// `cond_proj.`). `cond_proj` is `(out_features, in_features)` when the model has one.
pub fn required(
    configs: &crate::config::ModelConfigs,
    cond_proj: Option<(usize, usize)>,
) -> Vec<(&'static str, Manifest)> {
    let mut out = vec![
        ("vae.", vae(&configs.vae)),
        ("unet.", unet(&configs.unet)),
        ("dinov2.", dinov2(&configs.dinov2)),
    ];
    if let Some((o, i)) = cond_proj {
        let mut m = Manifest::default();
        m.push("weight".into(), vec![o, i]);
        m.push("bias".into(), vec![o]);
        out.push(("cond_proj.", m));
    }
    out
}
