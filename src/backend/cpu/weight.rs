//! CPU parameters. f32 weights are used in place from the pack's memory. f16 / bf16 matrices
//! stay in their stored precision — in place in the pack, half the memory of f32 — and are
//! widened to f32 each time they are used: by the Winograd weight transform as it goes, elsewhere
//! into one buffer the backend reuses ([`Widener`]), in parallel on the backend's pool. The products then run on exactly the f32 values that widening
//! at load gave, so the output's bits do not change; the cost is one pass over the weight per use
//! (`benches/RESULTS.md`). Small f16 / bf16 tensors (biases, norm scales: fewer than
//! [`HALF_MIN`] values, or one dimension) are widened once at load.

use super::kernels::widen::{Values, le_u16s, widen};
use crate::backend::HostData;
use crate::error::{Error, Result};
use crate::pack::Pack;
use crate::tensor::{DType, decode_f32};
use std::sync::{Arc, Mutex};

/// The fewest values an f16 / bf16 tensor of two or more dimensions needs to stay in half
/// precision; smaller ones are widened at load (the saving would not pay for a pass per use).
pub const HALF_MIN: usize = 1 << 16;

pub enum CpuWeight {
    Mapped {
        /// Keeps the pack's memory (private copy or map) alive for `ptr`.
        _pack: Arc<Pack>,
        ptr: *const f32,
        len: usize,
    },
    Owned(Vec<f32>),
    /// f16 or bf16 values as stored, widened per use.
    Half {
        dtype: DType,
        bits: HalfBits,
    },
}

/// The 16-bit patterns of a half-precision weight.
pub enum HalfBits {
    Mapped {
        /// Keeps the pack's memory alive for `ptr`.
        _pack: Arc<Pack>,
        ptr: *const u16,
        len: usize,
    },
    Owned(Vec<u16>),
}

// SAFETY: `Mapped` variants point into the pack's read-only memory, which their `Arc<Pack>` keeps
// alive and nothing mutates; sharing or sending read-only access across threads is sound.
unsafe impl Send for CpuWeight {}
// SAFETY: as above: the data is immutable for the weight's whole life.
unsafe impl Sync for CpuWeight {}

impl HalfBits {
    fn as_slice(&self) -> &[u16] {
        match self {
            // SAFETY: ptr/len came from a bounds-checked, 2-byte-aligned slice of the pack's
            // memory, which `_pack` keeps alive and which is never written.
            HalfBits::Mapped { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
            HalfBits::Owned(v) => v,
        }
    }
}

impl CpuWeight {
    pub fn from_host(shape: &[usize], data: HostData) -> Result<CpuWeight> {
        let n: usize = shape.iter().product();
        let keep_half = |dtype: DType| dtype != DType::F32 && shape.len() >= 2 && n >= HALF_MIN;
        let w = match data {
            HostData::F32(v) => CpuWeight::Owned(v),
            HostData::Encoded { dtype, bytes } => {
                if keep_half(dtype) {
                    CpuWeight::Half {
                        dtype,
                        bits: HalfBits::Owned(le_u16s(&bytes)),
                    }
                } else {
                    CpuWeight::Owned(decode_f32(dtype, &bytes))
                }
            }
            HostData::Packed { pack, name } => {
                let t = pack.require(&name)?;
                let little = cfg!(target_endian = "little");
                if t.dtype == DType::F32 && little {
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
                } else if keep_half(t.dtype) {
                    let bits = match bytemuck::try_cast_slice::<u8, u16>(t.data) {
                        Ok(b) if little => HalfBits::Mapped {
                            ptr: b.as_ptr(),
                            len: b.len(),
                            _pack: pack.clone(),
                        },
                        // Unaligned or big-endian: a copy, still in half precision.
                        _ => HalfBits::Owned(le_u16s(t.data)),
                    };
                    CpuWeight::Half {
                        dtype: t.dtype,
                        bits,
                    }
                } else {
                    CpuWeight::Owned(decode_f32(t.dtype, t.data))
                }
            }
        };
        if w.len() != n {
            return Err(Error::InvalidArgument(format!(
                "weight has {} values, shape {shape:?} needs {n}",
                w.len()
            )));
        }
        Ok(w)
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.values().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the values occupy (in the pack's memory or owned): 4 per f32 value, 2 per half.
    pub fn resident_bytes(&self) -> usize {
        match self {
            CpuWeight::Half { .. } => 2 * self.len(),
            _ => 4 * self.len(),
        }
    }

    /// The values as stored, for kernels that widen half-precision values themselves.
    pub fn values(&self) -> Values<'_> {
        match self {
            // SAFETY: ptr/len came from a bounds-checked slice of the pack's memory, which
            // `_pack` keeps alive and which is never written.
            CpuWeight::Mapped { ptr, len, .. } => {
                Values::F32(unsafe { std::slice::from_raw_parts(*ptr, *len) })
            }
            CpuWeight::Owned(v) => Values::F32(v),
            CpuWeight::Half { dtype, bits } => Values::Half(*dtype, bits.as_slice()),
        }
    }

    /// Calls `f` with the values in f32: in place, or widened into `widener`'s buffer (on the
    /// current rayon pool). Call it inside the backend's pool.
    pub fn with_f32<R>(&self, widener: &Widener, f: impl FnOnce(&[f32]) -> R) -> R {
        match self.values() {
            Values::F32(values) => f(values),
            Values::Half(dtype, bits) => widener.widened(dtype, bits, f),
        }
    }
}

/// The buffer half-precision weights are widened into, reused from one use to the next: it
/// grows to the largest such weight and is freed with the backend.
#[derive(Default)]
pub struct Widener {
    buf: Mutex<Vec<f32>>,
}

impl Widener {
    /// Bytes the buffer holds now.
    pub fn capacity_bytes(&self) -> usize {
        self.buf.lock().map(|b| 4 * b.capacity()).unwrap_or(0)
    }

    /// Calls `f` with `bits` (of `dtype`) widened to f32. Uses the shared buffer, or a buffer
    /// of its own when another use holds the shared one (nested or concurrent calls).
    fn widened<R>(&self, dtype: DType, bits: &[u16], f: impl FnOnce(&[f32]) -> R) -> R {
        let mut own = Vec::new();
        let mut shared = self.buf.try_lock().ok();
        let buf = match shared.as_deref_mut() {
            Some(b) => b,
            None => &mut own,
        };
        if buf.len() < bits.len() {
            buf.resize(bits.len(), 0.0);
        }
        let dst = &mut buf[..bits.len()];
        widen(dtype, bits, dst);
        f(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::encode_f32;

    fn values(n: usize) -> Vec<f32> {
        // Normals, subnormals, zeros of both signs, infinities: every class widening must keep.
        let special = [
            0.0,
            -0.0,
            1e-7,
            -3e-6,
            65504.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        (0..n)
            .map(|i| {
                special
                    .get(i)
                    .copied()
                    .unwrap_or((i as f32 * 0.37).sin() * 9.0)
            })
            .collect()
    }

    #[test]
    fn large_matrices_stay_half_and_widen_to_the_load_time_values() {
        let shape = [256, 257];
        let n = 256 * 257;
        for dtype in [DType::F16, DType::BF16] {
            let bytes = encode_f32(dtype, &values(n));
            let want = decode_f32(dtype, &bytes);
            let w = CpuWeight::from_host(
                &shape,
                HostData::Encoded {
                    dtype,
                    bytes: bytes.clone(),
                },
            )
            .unwrap();
            assert!(matches!(w, CpuWeight::Half { .. }), "{dtype:?} kept half");
            assert_eq!(w.len(), n);
            assert_eq!(w.resident_bytes(), 2 * n);
            let widener = Widener::default();
            let got = w.with_f32(&widener, |v| v.to_vec());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{dtype:?}");
            // The buffer is reused, and a nested use (the buffer is busy) gets its own.
            let nested = w.with_f32(&widener, |a| w.with_f32(&widener, |b| a == b));
            assert!(nested);
            assert_eq!(widener.capacity_bytes(), 4 * n);
        }
    }

    #[test]
    fn vectors_small_tensors_and_f32_are_widened_or_kept_at_load() {
        let cases: [(&[usize], DType); 4] = [
            (&[HALF_MIN * 2], DType::F16),
            (&[8, 8], DType::F16),
            (&[256, 256], DType::F32),
            (&[16, 16], DType::BF16),
        ];
        for (shape, dtype) in cases {
            let n: usize = shape.iter().product();
            let bytes = encode_f32(dtype, &values(n));
            let w = CpuWeight::from_host(shape, HostData::Encoded { dtype, bytes }).unwrap();
            assert!(matches!(w, CpuWeight::Owned(_)), "{shape:?} {dtype:?}");
            assert_eq!(w.resident_bytes(), 4 * n);
        }
    }

    #[test]
    fn a_wrong_length_is_an_error() {
        let bytes = encode_f32(DType::F16, &values(HALF_MIN));
        let r = CpuWeight::from_host(
            &[2, HALF_MIN],
            HostData::Encoded {
                dtype: DType::F16,
                bytes,
            },
        );
        assert!(matches!(r, Err(Error::InvalidArgument(_))));
    }
}
