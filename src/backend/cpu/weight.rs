//! CPU parameters: f32 weights are used in place from the pack's memory; f16 / bf16 are widened
//! to f32 once at load (CPU math is f32 throughout).

use crate::backend::HostData;
use crate::error::{Error, Result};
use crate::pack::Pack;
use crate::tensor::{DType, decode_f32};
use std::sync::Arc;

pub enum CpuWeight {
    Mapped {
        /// Keeps the pack's memory (private copy or map) alive for `ptr`.
        _pack: Arc<Pack>,
        ptr: *const f32,
        len: usize,
    },
    Owned(Vec<f32>),
}

// SAFETY: `Mapped` points into the pack's read-only memory, which its `Arc<Pack>` keeps alive and
// nothing mutates; sharing or sending read-only access across threads is sound.
unsafe impl Send for CpuWeight {}
// SAFETY: as above: the data is immutable for the weight's whole life.
unsafe impl Sync for CpuWeight {}

impl CpuWeight {
    pub fn from_host(shape: &[usize], data: HostData) -> Result<CpuWeight> {
        let n: usize = shape.iter().product();
        let w = match data {
            HostData::F32(v) => CpuWeight::Owned(v),
            HostData::Packed { pack, name } => {
                let t = pack.require(&name)?;
                if t.dtype == DType::F32 && cfg!(target_endian = "little") {
                    let floats: &[f32] = bytemuck::try_cast_slice(t.data).map_err(|e| {
                        Error::corrupt(
                            pack.path(),
                            format!("tensor `{name}` is not f32-aligned: {e}"),
                        )
                    })?;
                    CpuWeight::Mapped {
                        ptr: floats.as_ptr(),
                        len: floats.len(),
                        _pack: pack.clone(),
                    }
                } else {
                    CpuWeight::Owned(decode_f32(t.dtype, t.data))
                }
            }
        };
        if w.as_slice().len() != n {
            return Err(Error::InvalidArgument(format!(
                "weight has {} values, shape {shape:?} needs {n}",
                w.as_slice().len()
            )));
        }
        Ok(w)
    }

    pub fn as_slice(&self) -> &[f32] {
        match self {
            // SAFETY: ptr/len came from a bounds-checked slice of the pack's memory, which
            // `_pack` keeps alive and which is never written.
            CpuWeight::Mapped { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
            CpuWeight::Owned(v) => v,
        }
    }
}
