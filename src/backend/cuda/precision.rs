//! Storage precision of the CUDA backend: activations and weights in f16 (default) or f32
//! (debugging); arithmetic is f32 in both (kernels widen on load and round once on store).

use half::f16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F16,
    F32,
}

impl Precision {
    pub fn bytes(self) -> usize {
        match self {
            Precision::F16 => 2,
            Precision::F32 => 4,
        }
    }

    /// The suffix of every kernel compiled for this storage type (`silu_f16`).
    pub fn suffix(self) -> &'static str {
        match self {
            Precision::F16 => "f16",
            Precision::F32 => "f32",
        }
    }

    /// `src` encoded in this storage type (f16: round to nearest even, as the kernels do).
    pub fn encode(self, src: &[f32]) -> Vec<u8> {
        match self {
            Precision::F32 => bytemuck::cast_slice(src).to_vec(),
            Precision::F16 => src
                .iter()
                .flat_map(|&v| f16::from_f32(v).to_bits().to_le_bytes())
                .collect(),
        }
    }

    /// Widens `src` (this storage type) into `dst`.
    pub fn decode(self, src: &[u8], dst: &mut [f32]) {
        match self {
            Precision::F32 => {
                for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                    *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            Precision::F16 => {
                for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                    *d = f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
                }
            }
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f16" => Ok(Precision::F16),
            "f32" => Ok(Precision::F32),
            _ => Err(format!("unknown precision `{s}` (expected f16 or f32)")),
        }
    }
}
