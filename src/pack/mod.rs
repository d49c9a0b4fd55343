//! The packed model file (`.f2i`): one file holding a whole F2IDiff-SR model, read into private
//! memory (or memory-mapped, [`PackLoad`]) and used in place. Format version 1; all integers little-endian. `docs/FORMAT.md` is the same
//! description for readers outside Rust.
//!
//! ```text
//! offset        size  field
//! 0             8     magic "F2IPACK\0"
//! 8             4     u32 format version (1)
//! 12            4     u32 flags (0)
//! 16            8     u64 header offset      (128)
//! 24            8     u64 header length
//! 32            8     u64 table offset       (header offset + header length)
//! 40            8     u64 table length
//! 48            8     u64 data offset        (multiple of 4096)
//! 56            8     u64 data length
//! 64            4     u32 CRC-32 of the header bytes
//! 68            4     u32 CRC-32 of the table bytes
//! 72            52    reserved, zero
//! 124           4     u32 CRC-32 of bytes 0..124 (the preamble itself)
//! 128           H     header: UTF-8 JSON (see `header.rs`): format name, pipeline / vae / unet /
//!                     dinov2 configs verbatim, cond_proj, weight dtype, LoRA mode and adapters,
//!                     provenance (tool version, every source file's path, size and SHA-256)
//! 128+H         T     tensor table: u32 count, then per tensor
//!                       u16 name length, name (UTF-8), u8 dtype (0 f32, 1 f16, 2 bf16),
//!                       u8 rank (≤ 8), u64 dims[rank], u64 offset (from the data section),
//!                       u64 length (= product(dims) · dtype size), u32 CRC-32 of the data
//! data offset   D     tensor data, each tensor at a multiple of 256 bytes, zero padding between
//! ```
//!
//! Tensor names are the reference `state_dict` names under a module prefix: `vae.`, `unet.`,
//! `dinov2.`, `cond_proj.`. With `--lora runtime`, `<module>.lora_A.weight` `[r, in, k…]` and
//! `<module>.lora_B.weight` `[out, r, 1…]` sit beside `<module>.weight`, with `alpha/r` already
//! multiplied into `lora_B` (adapters on the same module are concatenated along `r`).
//!
//! Opening reads the file into private memory ([`PackLoad::Private`], the default: the file may
//! then change or vanish without effect) or maps it ([`PackLoad::Mapped`]: no copy, but the
//! file must stay as it is while open), then validates, without looking at tensor data: magic,
//! version, the three checksums of the metadata, section bounds against the file size, every
//! tensor's dtype, rank, alignment, length and bounds, that no two tensors overlap or share a
//! name, that the configs parse and fit together, and that every tensor they require exists with
//! the shape they imply.
//! [`Pack::verify`] additionally checks every tensor's CRC-32.

pub mod format;
mod header;
mod reader;
mod writer;

pub use header::{
    AdapterInfo, CondProj, FORMAT_NAME, Header, LoraInfo, LoraMode, Provenance, SourceFile,
};
pub use reader::{Pack, PackLoad, TensorRef};
pub use writer::{TensorPlan, write_pack};
