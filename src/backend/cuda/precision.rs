//! Storage precision of the CUDA backend: activations and weights in f16 (default) or f32
//! (debugging); arithmetic is f32 in both (kernels widen on load and round once on store).

use crate::tensor::DType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F16,
    F32,
}

impl Precision {
    pub fn bytes(self) -> usize {
        self.dtype().size()
    }

    /// The suffix of every kernel compiled for this storage type (`silu_f16`).
    pub fn suffix(self) -> &'static str {
        match self {
            Precision::F16 => "f16",
            Precision::F32 => "f32",
        }
    }

    /// The element type of this storage (conversions: `crate::tensor::{encode_f32, decode_f32}`,
    /// f16 rounding to nearest even as the kernels do).
    pub fn dtype(self) -> DType {
        match self {
            Precision::F16 => DType::F16,
            Precision::F32 => DType::F32,
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
