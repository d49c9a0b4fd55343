//! Opening a pack: read the file into private memory (or, on request, map it), validate
//! everything that can be validated from the header and the table, and hand out tensors in
//! place. `verify` checks every byte.
//!
//! Why private memory by default: a mapped file that is truncated while mapped turns the next
//! access to a vanished page into SIGBUS, which kills the host process, and one rewritten in
//! place changes the weights under a running engine. A private copy is immune to both. The
//! mapped mode ([`PackLoad::Mapped`]) saves that copy for hosts that control the file.

use super::format::{self, Preamble, TableEntry};
use super::header::{FORMAT_NAME, Header, LoraMode};
use crate::config::ModelConfigs;
use crate::error::{Error, Result};
use crate::manifest;
use crate::tensor::DType;
use memmap2::Mmap;
use std::alloc::Layout;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

/// How an open pack holds the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PackLoad {
    /// Read the whole file into private, page-aligned memory at open (the default). The pack
    /// never touches the file again: it may then be truncated, rewritten or deleted without
    /// effect on open packs. Costs the file's size in memory for the pack's life (the CPU
    /// backend uses the weights in place from it, f16 / bf16 matrices included).
    #[default]
    Private,
    /// Map the file read-only and use it in place: no copy, pages shared with the page cache
    /// and other processes. The file must then not be truncated or rewritten in place while
    /// the pack is open: reading a truncated page raises SIGBUS, which kills the process, and
    /// an in-place rewrite changes the weights. Replacing it by a rename (what
    /// [`super::write_pack`] does) or deleting it is safe: the open pack keeps the old file.
    Mapped,
}

/// An open, validated pack. Cheap to share between engines (wrap it in an `Arc`).
pub struct Pack {
    path: PathBuf,
    bytes: Bytes,
    preamble: Preamble,
    header: Header,
    configs: ModelConfigs,
    entries: Vec<TableEntry>,
    index: HashMap<String, usize>,
}

/// A tensor's bytes in place in the pack's memory (little-endian, 256-byte aligned in memory).
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
    /// Opens and validates the pack at `path`, read into private memory ([`PackLoad::Private`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Pack> {
        Pack::open_with(path, PackLoad::Private)
    }

    /// Opens and validates the pack at `path`, holding its bytes as `load` says.
    pub fn open_with(path: impl AsRef<Path>, load: PackLoad) -> Result<Pack> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        check_size(path, len)?;
        let store = match load {
            PackLoad::Private => Bytes::Private(AlignedBytes::read(path, file, len)?),
            // SAFETY: the map is read-only and every access below is bounds-checked against
            // its length. The file must not be truncated or rewritten in place while the pack
            // is open (the contract of `PackLoad::Mapped`, stated in the C header too); the
            // writer never does that (it renames a new file into place).
            PackLoad::Mapped => {
                Bytes::Mapped(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?)
            }
        };
        Pack::validate(path, store)
    }

    /// Validates a pack held in memory (`path` only names it in messages), copying `bytes`
    /// into private memory: the same checks as [`Pack::open`], without a file. For hosts that
    /// receive models over a channel, and for the fuzzers.
    pub fn from_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> Result<Pack> {
        let path = path.as_ref();
        check_size(path, bytes.len() as u64)?;
        Pack::validate(path, Bytes::Private(AlignedBytes::copy_of(path, bytes)?))
    }

    /// Every check of an open, in order: preamble, header, table, configs, required tensors.
    fn validate(path: &Path, store: Bytes) -> Result<Pack> {
        if cfg!(target_endian = "big") {
            return Err(Error::Unsupported(
                "packs are little-endian; this host is not".into(),
            ));
        }
        let bytes: &[u8] = &store;
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
            bytes: store,
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
        self.bytes.len() as u64
    }
    /// How this pack holds the file's bytes.
    pub fn load_mode(&self) -> PackLoad {
        match self.bytes {
            Bytes::Private(_) => PackLoad::Private,
            Bytes::Mapped(_) => PackLoad::Mapped,
        }
    }

    fn entry(&self, name: &str) -> Option<&TableEntry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    fn data(&self, e: &TableEntry) -> &[u8] {
        // Bounds were checked at open: offset + len ≤ data_len and data section ≤ file length.
        section(&self.bytes, self.preamble.data_offset + e.offset, e.len)
    }
}

/// The file's bytes: a private copy or the map.
enum Bytes {
    Private(AlignedBytes),
    Mapped(Mmap),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Private(b) => b,
            Bytes::Mapped(m) => m,
        }
    }
}

/// Alignment of the private copy: a page, like a map's, so the page-aligned data section and
/// its 256-byte aligned tensors keep their alignment in memory (f32 weights are used in place
/// as `&[f32]`, and GPU uploads read them as they are).
const PRIVATE_ALIGN: usize = 4096;

/// A whole file read into one zero-initialised, page-aligned heap allocation, never written
/// after the read.
struct AlignedBytes {
    ptr: NonNull<u8>,
    layout: Layout,
    len: usize,
}

// SAFETY: `AlignedBytes` uniquely owns its allocation and only hands out shared `&[u8]` views
// of it after construction, so moving it or sharing it between threads is sound.
unsafe impl Send for AlignedBytes {}
// SAFETY: as above: the bytes are immutable once read.
unsafe impl Sync for AlignedBytes {}

impl AlignedBytes {
    /// Reads the first `len` bytes of `file` (its length when opened; a file that shrinks
    /// meanwhile is an I/O error, growth after that length is ignored).
    fn read(path: &Path, mut file: File, len: u64) -> Result<AlignedBytes> {
        let bytes = AlignedBytes::zeroed(path, len)?;
        // SAFETY: `ptr` is a live, initialised allocation of at least `len` bytes that only
        // `bytes` owns; this is the one mutable view ever made of it, and it ends here.
        let buf = unsafe { std::slice::from_raw_parts_mut(bytes.ptr.as_ptr(), bytes.len) };
        file.read_exact(buf).map_err(|e| Error::io(path, e))?;
        Ok(bytes)
    }

    /// A private, aligned copy of `src`.
    fn copy_of(path: &Path, src: &[u8]) -> Result<AlignedBytes> {
        let bytes = AlignedBytes::zeroed(path, src.len() as u64)?;
        // SAFETY: as in `read`: the one mutable view of a fresh allocation of `src.len()` bytes.
        unsafe { std::slice::from_raw_parts_mut(bytes.ptr.as_ptr(), bytes.len) }
            .copy_from_slice(src);
        Ok(bytes)
    }

    /// `len` zero bytes, page-aligned.
    fn zeroed(path: &Path, len: u64) -> Result<AlignedBytes> {
        let too_big = || Error::OutOfMemory(format!("{}: {len} bytes", path.display()));
        let len = usize::try_from(len).map_err(|_| too_big())?;
        // A zero-size allocation is not allowed; an empty file gets a one-byte (unused) one.
        let layout = Layout::from_size_align(len.max(1), PRIVATE_ALIGN).map_err(|_| too_big())?;
        // SAFETY: `layout` has a non-zero size. Zeroed memory (calloc: fresh pages for large
        // sizes, so no extra pass) is initialised, so viewing it as `&mut [u8]` below is sound.
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).ok_or_else(too_big)?;
        Ok(AlignedBytes { ptr, layout, len })
    }
}

impl Deref for AlignedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` initialised bytes (zeroed, then read) of an allocation owned by `self`
        // and no longer mutated.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBytes {
    fn drop(&mut self) {
        // SAFETY: allocated in `read` with exactly this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Refuses a pack larger than [`format::MAX_PACK_BYTES`] before anything is allocated or mapped.
fn check_size(path: &Path, len: u64) -> Result<()> {
    if len > format::MAX_PACK_BYTES {
        return Err(Error::Unsupported(format!(
            "{}: {len} bytes, more than the {} a pack may have",
            path.display(),
            format::MAX_PACK_BYTES
        )));
    }
    Ok(())
}

/// A section of the file whose bounds the preamble checks have already established.
fn section(bytes: &[u8], offset: u64, len: u64) -> &[u8] {
    &bytes[offset as usize..(offset + len) as usize]
}
