//! Writing a pack: plan the layout from names, dtypes and shapes, stream each tensor's bytes
//! once (computing its checksum on the way), then fill in the table and the preamble.
//! The file appears under its final name only when complete (temporary name, fsync, rename).

use super::format::{self, DATA_ALIGN, PREAMBLE_LEN, Preamble, TENSOR_ALIGN, TableEntry};
use super::header::Header;
use crate::error::{Error, Result};
use crate::tensor::{DType, numel};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A tensor to be written: its bytes are asked for once, in table order.
#[derive(Debug, Clone)]
pub struct TensorPlan {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// Writes a pack to `path`. `data(i)` returns the little-endian bytes of `plans[i]`.
pub fn write_pack(
    path: &Path,
    header: &Header,
    plans: &[TensorPlan],
    mut data: impl FnMut(usize) -> Result<Vec<u8>>,
) -> Result<u64> {
    let header_json = serde_json::to_vec(header)
        .map_err(|e| Error::InvalidArgument(format!("header does not serialize: {e}")))?;

    if plans.len() > format::MAX_TENSORS || header_json.len() as u64 > format::MAX_HEADER_BYTES {
        return Err(Error::InvalidArgument(format!(
            "{} tensors and a {}-byte header: a pack holds at most {} and {}",
            plans.len(),
            header_json.len(),
            format::MAX_TENSORS,
            format::MAX_HEADER_BYTES
        )));
    }

    // Layout: preamble, header, table, then the data section on a page boundary.
    let mut entries = Vec::with_capacity(plans.len());
    let mut offset = 0u64;
    for p in plans {
        if p.name.is_empty() || p.name.len() > u16::MAX as usize || p.shape.len() > format::MAX_NDIM
        {
            return Err(Error::InvalidArgument(format!(
                "tensor name or rank not storable: `{}`",
                p.name
            )));
        }
        let len = numel(&p.shape)
            .and_then(|n| n.checked_mul(p.dtype.size()))
            .ok_or_else(|| Error::InvalidArgument(format!("tensor `{}` is too large", p.name)))?
            as u64;
        offset = format::align_up(offset, TENSOR_ALIGN);
        entries.push(TableEntry {
            name: p.name.clone(),
            dtype: p.dtype,
            shape: p.shape.clone(),
            offset,
            len,
            crc: 0,
        });
        offset += len;
    }
    let mut pre = Preamble {
        version: format::VERSION,
        flags: 0,
        header_offset: PREAMBLE_LEN as u64,
        header_len: header_json.len() as u64,
        table_len: format::encode_table(&entries).len() as u64,
        data_len: offset,
        header_crc: crc32fast::hash(&header_json),
        ..Preamble::default()
    };
    pre.table_offset = pre.header_offset + pre.header_len;
    pre.data_offset = format::align_up(pre.table_offset + pre.table_len, DATA_ALIGN);

    let tmp = TempFile::create(path)?;
    let mut w = BufWriter::with_capacity(1 << 20, tmp.file()?);
    let io = |e| Error::io(path, e);
    w.seek(SeekFrom::Start(pre.data_offset)).map_err(io)?;
    let mut at = 0u64;
    for (i, e) in entries.iter_mut().enumerate() {
        let bytes = data(i)?;
        if bytes.len() as u64 != e.len {
            return Err(Error::InvalidArgument(format!(
                "tensor `{}`: {} bytes given, {} planned",
                e.name,
                bytes.len(),
                e.len
            )));
        }
        w.write_all(&vec![0u8; (e.offset - at) as usize])
            .map_err(io)?;
        w.write_all(&bytes).map_err(io)?;
        e.crc = crc32fast::hash(&bytes);
        at = e.offset + e.len;
    }
    let table = format::encode_table(&entries);
    pre.table_crc = crc32fast::hash(&table);
    w.seek(SeekFrom::Start(0)).map_err(io)?;
    w.write_all(&pre.encode()).map_err(io)?;
    w.write_all(&header_json).map_err(io)?;
    w.write_all(&table).map_err(io)?;
    // Zero the gap up to the data section so the file holds no stale bytes.
    let gap = pre.data_offset - (pre.table_offset + pre.table_len);
    w.write_all(&vec![0u8; gap as usize]).map_err(io)?;
    let file = w
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(io)?;
    drop(file);
    tmp.persist()?;
    Ok(pre.data_offset + pre.data_len)
}

/// A file written under a temporary name beside its destination and removed unless persisted.
struct TempFile {
    tmp: PathBuf,
    dest: PathBuf,
    persisted: bool,
}

impl TempFile {
    fn create(dest: &Path) -> Result<TempFile> {
        let name = dest.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!("{} is not a file path", dest.display()))
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = dest.with_file_name(tmp_name);
        File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(TempFile {
            tmp,
            dest: dest.to_path_buf(),
            persisted: false,
        })
    }

    fn file(&self) -> Result<File> {
        File::options()
            .write(true)
            .open(&self.tmp)
            .map_err(|e| Error::io(&self.tmp, e))
    }

    fn persist(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
