//! The kernels a `.cu` declares: one `F2I_KERNEL void F2I_NAME(op)(…)` per kernel (see
//! kernels/common/f2i_device.h). Shared by the library (`sources.rs`) and build.rs, which
//! includes this file to generate the CPU harness's kernel table.

/// The `op` of every `F2I_KERNEL void F2I_NAME(op)(` in `source`, in order (no suffix).
pub fn declared_ops(source: &str) -> Vec<&str> {
    let marker = "F2I_KERNEL void F2I_NAME(";
    source
        .match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = &source[i + marker.len()..];
            rest.find(')').map(|end| &rest[..end])
        })
        .collect()
}
