//! Weights stored in half precision (f16 / bf16, as a pack holds them) and their widening to
//! f32, which is exact: every f16 and bf16 value is an f32 value.

use crate::tensor::DType;
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

/// Values widened per parallel task.
const CHUNK: usize = 1 << 16;

/// A weight's values as a kernel may read them: f32, or the 16-bit patterns of an f16 / bf16
/// tensor, widened by the kernel as it goes.
#[derive(Clone, Copy)]
pub enum Values<'a> {
    F32(&'a [f32]),
    Half(DType, &'a [u16]),
}

impl<'a> Values<'a> {
    pub fn len(self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::Half(_, b) => b.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Values `start..start + len`.
    pub fn slice(self, start: usize, len: usize) -> Values<'a> {
        match self {
            Values::F32(v) => Values::F32(&v[start..][..len]),
            Values::Half(d, b) => Values::Half(d, &b[start..][..len]),
        }
    }
}

/// The 16-bit patterns of little-endian `bytes` (a stored f16 / bf16 tensor).
pub fn le_u16s(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// `dst` = the values of `dtype` (f16 or bf16) whose bit patterns are `bits`, on the current
/// rayon pool.
///
/// # Panics
/// When the lengths differ or `dtype` is f32 (programmer errors).
pub fn widen(dtype: DType, bits: &[u16], dst: &mut [f32]) {
    assert_eq!(bits.len(), dst.len(), "widen: lengths differ");
    dst.par_chunks_mut(CHUNK)
        .zip(bits.par_chunks(CHUNK))
        .for_each(|(d, s)| widen_serial(dtype, s, d));
}

/// [`widen`] on the calling thread.
pub fn widen_serial(dtype: DType, bits: &[u16], dst: &mut [f32]) {
    match dtype {
        // F16C where the CPU has it (the `half` crate checks at run time).
        DType::F16 => bytemuck::cast_slice::<u16, f16>(bits).convert_to_f32_slice(dst),
        DType::BF16 => bytemuck::cast_slice::<u16, bf16>(bits).convert_to_f32_slice(dst),
        DType::F32 => panic!("widen: f32 has no 16-bit patterns"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{decode_f32, encode_f32};

    #[test]
    fn widening_is_exact_in_parallel_and_serially() {
        // Normals, subnormals, signed zeros, infinities, NaN, across several chunks.
        let mut v: Vec<f32> = (0..3 * CHUNK + 17)
            .map(|i| (i as f32 * 0.37).sin() * 70_000.0)
            .collect();
        v[..6].copy_from_slice(&[0.0, -0.0, 1e-7, -3e-6, f32::INFINITY, f32::NAN]);
        for dtype in [DType::F16, DType::BF16] {
            let bytes = encode_f32(dtype, &v);
            let bits = le_u16s(&bytes);
            let want: Vec<u32> = decode_f32(dtype, &bytes)
                .iter()
                .map(|x| x.to_bits())
                .collect();
            let mut par = vec![0f32; v.len()];
            widen(dtype, &bits, &mut par);
            let mut ser = vec![0f32; v.len()];
            widen_serial(dtype, &bits, &mut ser);
            for got in [par, ser] {
                let got: Vec<u32> = got.iter().map(|x| x.to_bits()).collect();
                assert_eq!(got, want, "{dtype:?}");
            }
        }
    }
}
