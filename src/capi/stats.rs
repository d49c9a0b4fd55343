//! What an engine has done so far, for integrators who monitor it.

use super::engine::f2i_engine;
use super::status::{Failure, boundary};
use super::types::f2i_status;
use std::sync::atomic::Ordering;

/// Writes to `*out` how many tiles of `engine`'s calls so far produced values that are not
/// finite in f16 storage (an activation beyond f16's range) and were therefore computed again
/// in f32 on the same device. 0 on engines that compute in f32 (the CPU, `F2I_PRECISION_F32`).
/// The result of each such call is the f32 one; a growing count means the model needs f16
/// pre-scales (see README.md, "f16 safety").
///
/// # Safety
/// `engine` is NULL or a live engine; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn f2i_engine_f32_reruns(
    engine: *const f2i_engine,
    out: *mut u64,
) -> f2i_status {
    boundary(|| {
        if engine.is_null() || out.is_null() {
            return Err(Failure::invalid("engine and out must not be NULL"));
        }
        // SAFETY: a live engine per the contract; only shared access is used.
        let n = unsafe { &*engine }.f32_reruns.load(Ordering::Relaxed);
        // SAFETY: non-null and writable per the contract.
        unsafe { out.write_unaligned(n) };
        Ok(())
    })
}
