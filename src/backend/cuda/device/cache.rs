//! The on-disk cache of NVRTC-compiled cubins: one file per module × precision × architecture,
//! keyed by the kernel sources' hash and the NVRTC version, so an edited kernel or a new
//! compiler never reuses a stale binary. `$F2I_KERNEL_CACHE`, else
//! `$XDG_CACHE_HOME/f2idiff/kernels`, else `~/.cache/f2idiff/kernels`. Writes are atomic
//! (temporary file + rename); any cache failure only costs a recompile.

use super::super::precision::Precision;
use super::super::sources::source_hash;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The cache folder, when one can be named.
pub fn dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env("F2I_KERNEL_CACHE") {
        return Some(d);
    }
    if let Some(d) = env("XDG_CACHE_HOME") {
        return Some(d.join("f2idiff").join("kernels"));
    }
    env("HOME").map(|h| h.join(".cache").join("f2idiff").join("kernels"))
}

/// The cache file name of one compiled module.
pub fn file_name(module: &str, precision: Precision, arch: &str, nvrtc: (i32, i32)) -> String {
    let mut h = Sha256::new();
    h.update(source_hash().as_bytes());
    h.update(format!(
        "|{module}|{}|{arch}|nvrtc {}.{}",
        precision.suffix(),
        nvrtc.0,
        nvrtc.1
    ));
    let key: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{module}.{}.{arch}.nvrtc{}.{}.{key}.cubin",
        precision.suffix(),
        nvrtc.0,
        nvrtc.1
    )
}

/// A cached cubin, if present and plausibly whole (an ELF image).
pub fn load(name: &str) -> Option<Vec<u8>> {
    let bytes = std::fs::read(dir()?.join(name)).ok()?;
    bytes.starts_with(b"\x7fELF").then_some(bytes)
}

/// Stores a cubin; failures are reported to the caller as text, never fatal.
pub fn store(name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    let d = dir().ok_or("no cache folder (set F2I_KERNEL_CACHE or HOME)")?;
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let tmp = d.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let target = d.join(name);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &target));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", target.display()));
    }
    Ok(target)
}
