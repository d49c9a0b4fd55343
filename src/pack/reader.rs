//! Opening a pack: map the file, validate everything that can be validated from the header and
//! the table (O(header), not O(file)), and hand out tensors in place. `verify` reads every byte.

use super::format::{self, Preamble, TableEntry};
use super::header::{FORMAT_NAME, Header, LoraMode};
use crate::config::ModelConfigs;
use crate::error::{Error, Result};
use crate::manifest;
use crate::tensor::DType;
use memmap2::Mmap;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// An open, validated pack. Cheap to share between engines (wrap it in an `Arc`).
pub struct Pack {
    path: PathBuf,
    map: Mmap,
    preamble: Preamble,
    header: Header,
    configs: ModelConfigs,
    entries: Vec<TableEntry>,
    index: HashMap<String, usize>,
}

/// A tensor's bytes in place in the mapped file (little-endian, 256-byte aligned).
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

impl TensorRef<'_> {
    /// The values converted to f32.
    pub fn to_f32(&self) -> Vec<f32> {
        crate::tensor::decode_f32(self.dtype, self.data)
    }
}

impl Pack {
    pub fn open(path: impl AsRef<Path>) -> Result<Pack> {
        let path = path.as_ref();
        if cfg!(target_endian = "big") {
            return Err(Error::Unsupported(
                "packs are little-endian; this host is not".into(),
            ));
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and every access below is bounds-checked against its
        // length. As with any mmap-based loader, the file must not be truncated or rewritten
        // while the pack is open; the writer never does that (it renames a new file into place).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let bytes: &[u8] = &map;
        let file_len = bytes.len() as u64;
        let preamble = Preamble::decode(
            path,
            &bytes[..bytes.len().min(format::PREAMBLE_LEN)],
            file_len,
        )?;

        let header_bytes = section(bytes, preamble.header_offset, preamble.header_len);
        if crc32fast::hash(header_bytes) != preamble.header_crc {
            return Err(Error::corrupt(path, "header checksum mismatch"));
        }
        let header: Header = serde_json::from_slice(header_bytes)
            .map_err(|e| Error::corrupt(path, format!("header is not valid JSON: {e}")))?;
        if header.format != FORMAT_NAME {
            return Err(Error::corrupt(
                path,
                format!("header format `{}`", header.format),
            ));
        }

        let table_bytes = section(bytes, preamble.table_offset, preamble.table_len);
        if crc32fast::hash(table_bytes) != preamble.table_crc {
            return Err(Error::corrupt(path, "tensor table checksum mismatch"));
        }
        let entries = format::decode_table(path, table_bytes, preamble.data_len)?;
        format::check_disjoint(path, &entries)?;
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();

        let at = |section: &str| PathBuf::from(format!("{}:header.{section}", path.display()));
        let (pipeline, vae, unet, dinov2) = (at("pipeline"), at("vae"), at("unet"), at("dinov2"));
        let configs = ModelConfigs::parse(
            (&pipeline, &header.pipeline),
            (&vae, &header.vae),
            (&unet, &header.unet),
            (&dinov2, &header.dinov2),
        )?;
        let cond_proj = header.cond_proj.map(|c| (c.out_features, c.in_features));
        configs.check_consistency(&unet, cond_proj)?;

        let pack = Pack {
            path: path.to_path_buf(),
            map,
            preamble,
            header,
            configs,
            entries,
            index,
        };
        pack.check_required()?;
        pack.check_runtime_lora()?;
        Ok(pack)
    }

    /// Every tensor the configs imply exists with the implied shape.
    fn check_required(&self) -> Result<()> {
        let cond_proj = self
            .header
            .cond_proj
            .map(|c| (c.out_features, c.in_features));
        for (prefix, m) in manifest::required(&self.configs, cond_proj) {
            m.check(prefix, &self.path, |name| {
                self.entry(name)
                    .map(|e| (e.shape.as_slice(), self.path.as_path()))
            })?;
        }
        Ok(())
    }

    /// Runtime LoRA pairs: only in runtime mode, each `lora_A` with its `lora_B` and base weight,
    /// shapes consistent (`A [r, in, k…]`, `B [out, r, 1…]`, base `[out, in, k…]`).
    fn check_runtime_lora(&self) -> Result<()> {
        let runtime = self.header.lora.mode == LoraMode::Runtime;
        for e in &self.entries {
            let Some(module) = e.name.strip_suffix(".lora_A.weight") else {
                if e.name.ends_with(".lora_B.weight")
                    && self
                        .entry(&e.name.replace(".lora_B.", ".lora_A."))
                        .is_none()
                {
                    return Err(Error::corrupt(
                        &self.path,
                        format!("`{}` has no lora_A", e.name),
                    ));
                }
                continue;
            };
            if !runtime {
                return Err(Error::corrupt(
                    &self.path,
                    format!(
                        "`{}` present but the header's LoRA mode is not runtime",
                        e.name
                    ),
                ));
            }
            let b = self.entry(&format!("{module}.lora_B.weight"));
            let w = self.entry(&format!("{module}.weight"));
            let (Some(b), Some(w)) = (b, w) else {
                return Err(Error::corrupt(
                    &self.path,
                    format!("`{}` lacks its lora_B or base weight", e.name),
                ));
            };
            let (a, b, w) = (&e.shape, &b.shape, &w.shape);
            let ok = a.len() == w.len()
                && b.len() == w.len()
                && a.len() >= 2
                && a[1..] == w[1..]
                && b[0] == w[0]
                && b[1] == a[0]
                && b[2..].iter().all(|&d| d == 1);
            if !ok {
                return Err(Error::corrupt(
                    &self.path,
                    format!("LoRA `{module}`: A {a:?} and B {b:?} do not fit base {w:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Checks every tensor's checksum (reads the whole file).
    pub fn verify(&self) -> Result<()> {
        for e in &self.entries {
            let data = self.data(e);
            let computed = crc32fast::hash(data);
            if computed != e.crc {
                return Err(Error::Checksum {
                    path: self.path.clone(),
                    tensor: e.name.clone(),
                    stored: e.crc,
                    computed,
                });
            }
        }
        Ok(())
    }

    pub fn tensor(&self, name: &str) -> Option<TensorRef<'_>> {
        self.entry(name).map(|e| TensorRef {
            name: &e.name,
            dtype: e.dtype,
            shape: &e.shape,
            data: self.data(e),
        })
    }

    /// Like [`Pack::tensor`], but a missing tensor is an error naming the pack.
    pub fn require(&self, name: &str) -> Result<TensorRef<'_>> {
        self.tensor(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            tensor: name.to_string(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn configs(&self) -> &ModelConfigs {
        &self.configs
    }
    pub fn entries(&self) -> &[TableEntry] {
        &self.entries
    }
    pub fn preamble(&self) -> &Preamble {
        &self.preamble
    }
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    fn entry(&self, name: &str) -> Option<&TableEntry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    fn data(&self, e: &TableEntry) -> &[u8] {
        // Bounds were checked at open: offset + len ≤ data_len and data section ≤ file length.
        section(&self.map, self.preamble.data_offset + e.offset, e.len)
    }
}

/// A section of the file whose bounds the preamble checks have already established.
fn section(bytes: &[u8], offset: u64, len: u64) -> &[u8] {
    &bytes[offset as usize..(offset + len) as usize]
}
