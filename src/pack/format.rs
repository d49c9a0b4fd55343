//! Byte layout of the preamble and the tensor table (see the module docs of [`crate::pack`]).

use crate::error::{Error, Result};
use crate::tensor::{DType, numel};
use std::path::Path;

pub const MAGIC: [u8; 8] = *b"F2IPACK\0";
pub const VERSION: u32 = 1;
pub const PREAMBLE_LEN: usize = 128;
/// Alignment of the data section in the file (a page, so the mmap'd data is page-aligned).
pub const DATA_ALIGN: u64 = 4096;
/// Alignment of every tensor inside the data section (enough for AVX-512 and GPU uploads).
pub const TENSOR_ALIGN: u64 = 256;
pub const MAX_NDIM: usize = 8;
/// Largest pack file a reader opens, in bytes (64 GiB; the largest F2IDiff-SR configuration in
/// f32 is about 6 GB). Beyond it, opening is `Error::Unsupported` before any allocation or map.
pub const MAX_PACK_BYTES: u64 = 64 << 30;
/// Most tensors a pack's table may hold (an SD-2.1 U-Net, a DINOv2-g and a VAE with runtime LoRA
/// on every layer need a few thousand). Beyond it, opening is `Error::Unsupported`, and the
/// writer refuses to write such a pack.
pub const MAX_TENSORS: usize = 1 << 16;
/// Longest JSON header a reader parses, in bytes (real headers are a few tens of KiB).
/// Beyond it, opening is `Error::Unsupported`.
pub const MAX_HEADER_BYTES: u64 = 16 << 20;
const PREAMBLE_CRC_AT: usize = PREAMBLE_LEN - 4;

/// Where the sections are, and their checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Preamble {
    pub version: u32,
    pub flags: u32,
    pub header_offset: u64,
    pub header_len: u64,
    pub table_offset: u64,
    pub table_len: u64,
    pub data_offset: u64,
    pub data_len: u64,
    pub header_crc: u32,
    pub table_crc: u32,
}

/// One row of the tensor table. `offset` is relative to the start of the data section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub offset: u64,
    pub len: u64,
    pub crc: u32,
}

pub fn align_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

impl Preamble {
    pub fn encode(&self) -> [u8; PREAMBLE_LEN] {
        let mut b = [0u8; PREAMBLE_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        let words = [
            self.header_offset,
            self.header_len,
            self.table_offset,
            self.table_len,
            self.data_offset,
            self.data_len,
        ];
        for (i, w) in words.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        b[64..68].copy_from_slice(&self.header_crc.to_le_bytes());
        b[68..72].copy_from_slice(&self.table_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[..PREAMBLE_CRC_AT]);
        b[PREAMBLE_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks the preamble of a file of `file_len` bytes whose first bytes are `b`.
    /// Order of checks: magic, version, preamble checksum, section bounds.
    pub fn decode(path: &Path, b: &[u8], file_len: u64) -> Result<Preamble> {
        let n = b.len().min(MAGIC.len());
        if b[..n] != MAGIC[..n] {
            return Err(Error::BadMagic {
                path: path.to_path_buf(),
                found: b[..n].to_vec(),
                expected: MAGIC.to_vec(),
            });
        }
        if b.len() < PREAMBLE_LEN {
            return Err(Error::Truncated {
                path: path.to_path_buf(),
                msg: format!(
                    "{} bytes, shorter than the {PREAMBLE_LEN}-byte preamble",
                    b.len()
                ),
            });
        }
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let version = u32_at(8);
        if version != VERSION {
            return Err(Error::Version {
                path: path.to_path_buf(),
                found: version,
                supported: VERSION,
            });
        }
        let stored = u32_at(PREAMBLE_CRC_AT);
        let computed = crc32fast::hash(&b[..PREAMBLE_CRC_AT]);
        if stored != computed {
            return Err(Error::corrupt(path, "preamble checksum mismatch"));
        }
        let p = Preamble {
            version,
            flags: u32_at(12),
            header_offset: u64_at(16),
            header_len: u64_at(24),
            table_offset: u64_at(32),
            table_len: u64_at(40),
            data_offset: u64_at(48),
            data_len: u64_at(56),
            header_crc: u32_at(64),
            table_crc: u32_at(68),
        };
        p.check_bounds(path, file_len)?;
        Ok(p)
    }

    fn check_bounds(&self, path: &Path, file_len: u64) -> Result<()> {
        if self.flags != 0 {
            return Err(Error::corrupt(
                path,
                format!("unknown flags {:#x}", self.flags),
            ));
        }
        let sections = [
            ("header", self.header_offset, self.header_len),
            ("tensor table", self.table_offset, self.table_len),
            ("data", self.data_offset, self.data_len),
        ];
        if self.header_len > MAX_HEADER_BYTES {
            return Err(Error::Unsupported(format!(
                "{}: header of {} bytes, more than the {MAX_HEADER_BYTES} a pack may have",
                path.display(),
                self.header_len
            )));
        }
        let mut prev_end = PREAMBLE_LEN as u64;
        for (what, off, len) in sections {
            let end = off
                .checked_add(len)
                .ok_or_else(|| Error::corrupt(path, format!("{what} section overflows")))?;
            if off < prev_end {
                return Err(Error::corrupt(
                    path,
                    format!(
                        "{what} section at {off} overlaps the previous section (ends at {prev_end})"
                    ),
                ));
            }
            if end > file_len {
                return Err(Error::Truncated {
                    path: path.to_path_buf(),
                    msg: format!("{what} section ends at byte {end}, file has {file_len}"),
                });
            }
            prev_end = end;
        }
        if self.data_offset % DATA_ALIGN != 0 {
            return Err(Error::corrupt(
                path,
                format!(
                    "data section at {} is not {DATA_ALIGN}-aligned",
                    self.data_offset
                ),
            ));
        }
        Ok(())
    }
}

/// Serializes the table: `u32 count`, then per entry `u16 name_len, name, u8 dtype, u8 ndim,
/// u64 dims[ndim], u64 offset, u64 len, u32 crc32`.
pub fn encode_table(entries: &[TableEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        out.extend_from_slice(e.name.as_bytes());
        out.push(e.dtype.code());
        out.push(e.shape.len() as u8);
        for &d in &e.shape {
            out.extend_from_slice(&(d as u64).to_le_bytes());
        }
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
        out.extend_from_slice(&e.crc.to_le_bytes());
    }
    out
}

/// A bounds-checked little-endian reader over the table bytes.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| {
            Error::corrupt(
                self.path,
                format!("tensor table ends early at byte {}", self.at),
            )
        })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(w))
    }
}

/// Parses the table and checks each entry on its own: known dtype, rank, aligned offset, length
/// equal to `product(shape) · dtype size`, and inside a data section of `data_len` bytes.
pub fn decode_table(path: &Path, b: &[u8], data_len: u64) -> Result<Vec<TableEntry>> {
    let mut c = Cursor { b, at: 0, path };
    let count = c.u32()? as usize;
    // Each entry takes at least 24 bytes: a count beyond that is a lie, not an allocation.
    if count > b.len() / 24 {
        return Err(Error::corrupt(
            path,
            format!("tensor table claims {count} entries"),
        ));
    }
    if count > MAX_TENSORS {
        return Err(Error::Unsupported(format!(
            "{}: {count} tensors, more than the {MAX_TENSORS} a pack may hold",
            path.display()
        )));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = c.u16()? as usize;
        let name = std::str::from_utf8(c.take(name_len)?)
            .map_err(|_| Error::corrupt(path, "tensor name is not UTF-8"))?
            .to_string();
        let code = c.u8()?;
        let dtype = DType::from_code(code).ok_or_else(|| Error::Dtype {
            path: path.to_path_buf(),
            tensor: name.clone(),
            dtype: format!("code {code}"),
        })?;
        let ndim = c.u8()? as usize;
        if ndim > MAX_NDIM {
            return Err(Error::corrupt(
                path,
                format!("tensor `{name}` has rank {ndim}"),
            ));
        }
        let mut shape = Vec::with_capacity(ndim);
        for _ in 0..ndim {
            let d = usize::try_from(c.u64()?).map_err(|_| {
                Error::corrupt(path, format!("tensor `{name}`: dimension overflows"))
            })?;
            shape.push(d);
        }
        let entry = TableEntry {
            name,
            dtype,
            shape,
            offset: c.u64()?,
            len: c.u64()?,
            crc: c.u32()?,
        };
        check_entry(path, &entry, data_len)?;
        entries.push(entry);
    }
    if c.at != b.len() {
        return Err(Error::corrupt(
            path,
            format!("{} trailing bytes after the tensor table", b.len() - c.at),
        ));
    }
    Ok(entries)
}

fn check_entry(path: &Path, e: &TableEntry, data_len: u64) -> Result<()> {
    let bad = |msg: String| Error::corrupt(path, format!("tensor `{}`: {msg}", e.name));
    if e.name.is_empty() {
        return Err(Error::corrupt(path, "a tensor has an empty name"));
    }
    let expected = numel(&e.shape)
        .and_then(|n| n.checked_mul(e.dtype.size()))
        .ok_or_else(|| bad(format!("shape {:?} overflows", e.shape)))?;
    if e.len != expected as u64 {
        return Err(bad(format!(
            "length {} is not product({:?})·{} = {expected}",
            e.len,
            e.shape,
            e.dtype.size()
        )));
    }
    if e.offset % TENSOR_ALIGN != 0 {
        return Err(bad(format!(
            "offset {} is not {TENSOR_ALIGN}-aligned",
            e.offset
        )));
    }
    match e.offset.checked_add(e.len) {
        Some(end) if end <= data_len => Ok(()),
        _ => Err(bad(format!(
            "bytes {}..+{} lie outside the {data_len}-byte data section",
            e.offset, e.len
        ))),
    }
}

/// Checks that no two tensors share a name or a byte.
pub fn check_disjoint(path: &Path, entries: &[TableEntry]) -> Result<()> {
    let mut by_offset: Vec<&TableEntry> = entries.iter().collect();
    by_offset.sort_by_key(|e| (e.offset, e.len));
    for pair in by_offset.windows(2) {
        if pair[0].offset + pair[0].len > pair[1].offset {
            return Err(Error::corrupt(
                path,
                format!("tensors `{}` and `{}` overlap", pair[0].name, pair[1].name),
            ));
        }
    }
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|p| p[0] == p[1]) {
        return Err(Error::corrupt(
            path,
            format!("tensor `{}` appears twice", pair[0]),
        ));
    }
    Ok(())
}
