//! The kernel sources, compiled into the library: NVRTC compiles them at first use (or
//! `f2idiff kernels build` ahead of time), and the same files build the CPU execution harness.
//! Each module is compiled twice, with and without `F2I_ACT_F16` (f16 / f32 storage).

use super::kernel_names::declared_ops;
use super::precision::Precision;
use sha2::{Digest, Sha256};

/// Headers the kernels include, by the name they include them with.
pub const HEADERS: &[(&str, &str)] = &[
    (
        "common/f2i_device.h",
        include_str!("../../../kernels/common/f2i_device.h"),
    ),
    (
        "common/f2i_mma.h",
        include_str!("../../../kernels/common/f2i_mma.h"),
    ),
    (
        "common/f2i_cubic.h",
        include_str!("../../../kernels/common/f2i_cubic.h"),
    ),
    (
        "common/f2i_norm.h",
        include_str!("../../../kernels/common/f2i_norm.h"),
    ),
];

/// One `kernels/<name>.cu`.
#[derive(Debug, Clone, Copy)]
pub struct Module {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! module {
    ($name:literal) => {
        Module {
            name: $name,
            source: include_str!(concat!("../../../kernels/", $name, ".cu")),
        }
    };
}

pub const MODULES: &[Module] = &[
    module!("elementwise"),
    module!("resize"),
    module!("frame"),
    module!("norm"),
    module!("conv"),
    module!("conv_tc"),
    module!("linear"),
    module!("attention"),
    module!("attention_tc"),
    module!("probe"),
    module!("peak"),
];

impl Module {
    /// Kernel names declared in this module (`F2I_KERNEL void F2I_NAME(op)(`), without suffix.
    pub fn ops(&self) -> Vec<&'static str> {
        declared_ops(self.source)
    }

    /// Full kernel names for `precision` (`silu_f16`).
    pub fn kernels(&self, precision: Precision) -> Vec<String> {
        self.ops()
            .into_iter()
            .map(|op| format!("{op}_{}", precision.suffix()))
            .collect()
    }

    /// Preprocessor definitions selecting `precision`.
    pub fn defines(precision: Precision) -> &'static [&'static str] {
        match precision {
            Precision::F16 => &["-DF2I_ACT_F16=1"],
            Precision::F32 => &[],
        }
    }
}

/// SHA-256 of every header and module (hex): the cache key of compiled kernels.
pub fn source_hash() -> String {
    let mut h = Sha256::new();
    for (name, text) in HEADERS {
        h.update(name.as_bytes());
        h.update(text.as_bytes());
    }
    for m in MODULES {
        h.update(m.name.as_bytes());
        h.update(m.source.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
