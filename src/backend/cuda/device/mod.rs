//! The CUDA backend on a real GPU (feature `cuda`): [`DeviceExecutor`] drives the driver API
//! through cudarc (loaded at run time: the binary builds with no CUDA toolkit and runs where
//! there is no GPU), and kernels come as CUBIN for the device's architecture from, in order:
//! a kernel folder (`DeviceExecutor::new(_, Some(dir))` or `$F2I_KERNEL_DIR`, written by
//! `f2idiff kernels build`; no NVRTC needed), the on-disk cache, or NVRTC at the module's first
//! launch (loaded by hand so CUDA 12 and 13 libraries both work).

pub mod cache;
mod driver;
pub mod nvrtc;

pub use driver::{
    DeviceBuffer, DeviceExecutor, DeviceInfo, device_count, device_info, driver_library,
    driver_present, driver_version,
};

use super::precision::Precision;
use super::sources::source_hash;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The file in a kernel folder that records which kernel sources its cubins were built from.
pub const SOURCE_HASH_FILE: &str = "SOURCE_HASH";

/// `{module}.{f16|f32}.{arch}.cubin`: a precompiled module in a kernel folder.
pub fn cubin_file_name(module: &str, precision: Precision, arch: &str) -> String {
    format!("{module}.{}.{arch}.cubin", precision.suffix())
}

/// `{module}.{f16|f32}.{arch}.ptx`: the PTX of a module for `compute_XY` (`--ptx`).
pub fn ptx_file_name(module: &str, precision: Precision, arch: &str) -> String {
    format!("{module}.{}.{arch}.ptx", precision.suffix())
}

/// `$F2I_KERNEL_DIR`, when set.
pub fn kernel_dir_from_env() -> Option<PathBuf> {
    std::env::var_os("F2I_KERNEL_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A kernel folder must exist, and when it records its sources' hash, match this build's
/// kernels: cubins of other sources could take other arguments.
pub fn check_kernel_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "kernel folder {} does not exist (write one with `f2idiff kernels build`)",
            dir.display()
        )));
    }
    let recorded = dir.join(SOURCE_HASH_FILE);
    if let Ok(text) = std::fs::read_to_string(&recorded) {
        let want = source_hash();
        if text.trim() != want {
            return Err(Error::InvalidArgument(format!(
                "{}: the cubins were built from other kernel sources ({}) than this build's \
                 ({want}): rebuild them with `f2idiff kernels build`",
                recorded.display(),
                text.trim()
            )));
        }
    }
    Ok(())
}
