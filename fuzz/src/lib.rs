//! Helpers shared by the fuzz targets and the seed writer: the encodings that turn one fuzz
//! input into the files a surface reads (a pack without its tensor data, a model folder without
//! its weights), a per-process scratch folder, and the tiny packs the C-boundary target runs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A folder of this process for the files a target writes (in `$TMPDIR`; `scripts/fuzz.sh`
/// points that at `/dev/shm` where it exists, so nothing touches a disk).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("f2idiff-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    })
}

/// The model folder the converter tests use (`tests/data/pack/tiny`): real diffusers /
/// transformers / PEFT files of a tiny F2IDiff-SR.
pub fn tiny_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/pack/tiny")
}

// ---------------------------------------------------------------------------------------------
// Packs: one input = a flags byte and the pack's metadata (preamble, header, table). The data
// section is zeros, so a seed is a few KiB instead of the whole file.

/// Input flag: recompute the preamble's, header's and table's CRC-32 after mutation, so the
/// fuzzer gets past the checksums to the JSON, the table and the configs.
pub const PACK_FIX_CRCS: u8 = 1;
/// Input flag: append the zero-filled data section the preamble declares (up to
/// [`PACK_MAX_DATA`]).
pub const PACK_FILL_DATA: u8 = 2;
/// Input flag: also set every tensor's CRC-32 to that of its (zero) data, so `verify` passes
/// and the engine is built.
pub const PACK_FIX_TENSOR_CRCS: u8 = 4;
/// Largest data section a pack input is padded to.
pub const PACK_MAX_DATA: u64 = 4 << 20;

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn section(b: &[u8], off: u64, len: u64) -> Option<std::ops::Range<usize>> {
    let end = off.checked_add(len)?;
    (end <= b.len() as u64).then_some(off as usize..end as usize)
}

/// The pack file one fuzz input stands for (see the `PACK_*` flags).
pub fn pack_file(input: &[u8]) -> Vec<u8> {
    let Some((&flags, meta)) = input.split_first() else {
        return Vec::new();
    };
    let mut file = meta.to_vec();
    let pre = f2idiff::pack::format::PREAMBLE_LEN;
    if file.len() < pre {
        return file;
    }
    let (data_off, data_len) = (u64_at(&file, 48), u64_at(&file, 56));
    if flags & PACK_FILL_DATA != 0
        && let Some(end) = data_off.checked_add(data_len)
        && end > file.len() as u64
        && data_len <= PACK_MAX_DATA
        && end <= PACK_MAX_DATA + (1 << 20)
    {
        file.resize(end as usize, 0);
    }
    if flags & PACK_FIX_TENSOR_CRCS != 0 {
        fix_tensor_crcs(&mut file);
    }
    if flags & (PACK_FIX_CRCS | PACK_FIX_TENSOR_CRCS) != 0 {
        fix_crcs(&mut file);
    }
    file
}

/// Recomputes the header, table and preamble checksums where the sections lie in `file`.
pub fn fix_crcs(file: &mut [u8]) {
    if let Some(r) = section(file, u64_at(file, 16), u64_at(file, 24)) {
        let crc = crc32fast::hash(&file[r]);
        file[64..68].copy_from_slice(&crc.to_le_bytes());
    }
    if let Some(r) = section(file, u64_at(file, 32), u64_at(file, 40)) {
        let crc = crc32fast::hash(&file[r]);
        file[68..72].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&file[..124]);
    file[124..128].copy_from_slice(&crc.to_le_bytes());
}

/// Sets each tensor's CRC-32 to that of the bytes it points at, when the table parses.
fn fix_tensor_crcs(file: &mut [u8]) {
    use f2idiff::pack::format;
    let (data_off, data_len) = (u64_at(file, 48), u64_at(file, 56));
    let Some(table) = section(file, u64_at(file, 32), u64_at(file, 40)) else {
        return;
    };
    let Some(data) = section(file, data_off, data_len) else {
        return;
    };
    let Ok(mut entries) = format::decode_table(Path::new("fuzz"), &file[table.clone()], data_len)
    else {
        return;
    };
    for e in &mut entries {
        if let Some(r) = section(&file[data.clone()], e.offset, e.len) {
            e.crc = crc32fast::hash(&file[data.start + r.start..data.start + r.end]);
        }
    }
    let bytes = format::encode_table(&entries);
    if bytes.len() == table.len() {
        file[table].copy_from_slice(&bytes);
    }
}

/// The fuzz input for a pack file: [`PACK_FIX_CRCS`] | [`PACK_FILL_DATA`] |
/// [`PACK_FIX_TENSOR_CRCS`] and its bytes up to the data section.
pub fn pack_input(file: &[u8]) -> Vec<u8> {
    let data_off = u64_at(file, 48) as usize;
    let mut out = vec![PACK_FIX_CRCS | PACK_FILL_DATA | PACK_FIX_TENSOR_CRCS];
    out.extend_from_slice(&file[..data_off.min(file.len())]);
    out
}

// ---------------------------------------------------------------------------------------------
// Model folders: one input = a list of files. Each entry: u8 kind, u8 path length, path, u32 LE
// content length, content. Kind 0: the content is the file. Kind 1: the content is a safetensors
// JSON header; the file gets the 8-byte length prefix and zero tensor data up to the largest
// `data_offsets` end (bit 2: one byte short; bit 3: seven bytes too many).

/// Most bytes of zero tensor data one safetensors entry gets.
pub const FOLDER_MAX_DATA: u64 = 2 << 20;
/// Most files in one folder input.
pub const FOLDER_MAX_FILES: usize = 64;

/// One file of a folder input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderFile {
    pub kind: u8,
    pub path: String,
    pub content: Vec<u8>,
}

/// Splits a folder input into its files (stops at the first incomplete entry).
pub fn folder_files(mut b: &[u8]) -> Vec<FolderFile> {
    let mut out = Vec::new();
    while out.len() < FOLDER_MAX_FILES && b.len() >= 2 {
        let (kind, name_len) = (b[0], b[1] as usize);
        b = &b[2..];
        if b.len() < name_len + 4 {
            break;
        }
        let path = String::from_utf8_lossy(&b[..name_len]).into_owned();
        b = &b[name_len..];
        let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        b = &b[4..];
        let len = len.min(b.len());
        out.push(FolderFile {
            kind,
            path,
            content: b[..len].to_vec(),
        });
        b = &b[len..];
    }
    out
}

/// Encodes files as a folder input.
pub fn folder_input(files: &[FolderFile]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in files {
        out.push(f.kind);
        out.push(f.path.len() as u8);
        out.extend_from_slice(f.path.as_bytes());
        out.extend_from_slice(&(f.content.len() as u32).to_le_bytes());
        out.extend_from_slice(&f.content);
    }
    out
}

/// The bytes of one file of a folder input.
pub fn folder_file_bytes(f: &FolderFile) -> Vec<u8> {
    if f.kind & 3 != 1 {
        return f.content.clone();
    }
    let end = serde_json::from_slice::<serde_json::Value>(&f.content)
        .ok()
        .and_then(|v| {
            v.as_object().map(|o| {
                o.values()
                    .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
                    .max()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
        .min(FOLDER_MAX_DATA);
    let mut data_len = end as usize;
    if f.kind & 4 != 0 {
        data_len = data_len.saturating_sub(1);
    }
    if f.kind & 8 != 0 {
        data_len += 7;
    }
    let mut out = (f.content.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&f.content);
    out.resize(out.len() + data_len, 0);
    out
}

/// Writes a folder input under `dir` (emptied first). Paths with `..`, absolute paths and
/// empty components are skipped: the fuzzer must not write outside its scratch folder.
pub fn write_folder(dir: &Path, files: &[FolderFile]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("folder");
    for f in files {
        let parts: Vec<&str> = f.path.split('/').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('\0'))
        {
            continue;
        }
        let path = parts.iter().fold(dir.to_path_buf(), |p, c| p.join(c));
        if let Some(parent) = path.parent()
            && std::fs::create_dir_all(parent).is_err()
        {
            continue;
        }
        let _ = std::fs::write(&path, folder_file_bytes(f));
    }
}

/// A real model folder as a folder input: safetensors files become kind 1 (header only).
pub fn encode_folder(dir: &Path) -> Vec<FolderFile> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<FolderFile>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("folder")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(root, &p, out);
            continue;
        }
        let rel = p.strip_prefix(root).expect("inside").to_string_lossy();
        if rel.ends_with("README.md") {
            continue;
        }
        let bytes = std::fs::read(&p).expect("read");
        let (kind, content) = if rel.ends_with(".safetensors") {
            let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
            (1, bytes[8..8 + n].to_vec())
        } else {
            (0, bytes)
        };
        out.push(FolderFile {
            kind,
            path: rel.into_owned(),
            content,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Small input reader for structured targets: a byte source that yields zeros when exhausted.

/// Reads fields from a fuzz input; past its end every read is 0.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }
    /// Usually a value from `common`, sometimes any `u32`.
    pub fn pick(&mut self, common: &[u32]) -> u32 {
        let i = self.u8() as usize;
        if i < common.len() * 8 {
            common[i % common.len()]
        } else {
            self.u32()
        }
    }
}
