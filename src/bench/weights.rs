//! Seeded random weights for benchmarks: no weights file needed, the same values on every
//! machine for the same seed. Scaled like trained weights (±1/√fan_in for matrices, 1 ± 0.2 for
//! norm scales, small biases) so activations keep their usual range and f16 does not overflow;
//! the work done does not depend on the values.

use crate::backend::HostData;
use crate::error::Result;
use crate::model::WeightSource;
use crate::tensor::{DType, encode_f32};
use rayon::prelude::*;

/// Every parameter from SplitMix64 seeded by FNV-1a of its name and `seed`, stored as a pack
/// of element type `dtype` would store it (f16 / bf16: rounded to nearest).
pub struct RandomWeights {
    pub seed: u64,
    pub dtype: DType,
}

fn splitmix(z: u64) -> u64 {
    let mut z = z;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [-1, 1) from the `i`-th draw of stream `seed`.
pub fn unit(seed: u64, i: u64) -> f32 {
    let z = splitmix(seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    (2.0 * ((z >> 40) as f64 / (1u64 << 24) as f64) - 1.0) as f32
}

/// `n` values uniform in [lo, hi), stream `seed` (bench inputs).
pub fn uniform(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n as u64)
        .into_par_iter()
        .map(|i| lo + (hi - lo) * 0.5 * (unit(seed, i) + 1.0))
        .collect()
}

impl WeightSource for RandomWeights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<HostData> {
        let mut seed: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed;
        for b in name.as_bytes() {
            seed ^= *b as u64;
            seed = seed.wrapping_mul(0x100_0000_01b3);
        }
        let n: usize = shape.iter().product();
        let fan_in: usize = shape.iter().skip(1).product();
        let scale = if shape.len() >= 2 {
            1.0 / (fan_in.max(1) as f32).sqrt()
        } else if name.ends_with(".bias") {
            0.1
        } else {
            0.5
        };
        let norm_scale = shape.len() == 1 && name.ends_with(".weight");
        let values: Vec<f32> = (0..n as u64)
            .into_par_iter()
            .map(|i| {
                let r = unit(seed, i);
                if norm_scale { 1.0 + 0.2 * r } else { scale * r }
            })
            .collect();
        Ok(match self.dtype {
            DType::F32 => HostData::F32(values),
            dtype => HostData::Encoded {
                dtype,
                bytes: encode_f32(dtype, &values),
            },
        })
    }
}
