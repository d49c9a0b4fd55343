//! What an engine has done so far, for integrators who monitor it.

use super::engine::{EngineNets, f2i_engine};
use super::status::{CResult, Failure, boundary};
use super::types::f2i_status;
use std::sync::atomic::Ordering;

/// Writes `count(engine)` to `*out`: the shape of every counter export.
///
/// # Safety
/// `engine` is NULL or a live engine; `out` NULL or writable.
unsafe fn write_count(
    engine: *const f2i_engine,
    out: *mut u64,
    count: impl FnOnce(&f2i_engine) -> CResult<u64>,
) -> f2i_status {
    boundary(|| {
        if engine.is_null() || out.is_null() {
            return Err(Failure::invalid("engine and out must not be NULL"));
        }
        // SAFETY: a live engine per the contract; only shared access is used.
        let n = count(unsafe { &*engine })?;
        // SAFETY: non-null and writable per the contract.
        unsafe { out.write_unaligned(n) };
        Ok(())
    })
}

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
    // SAFETY: the caller's contract is write_count's.
    unsafe { write_count(engine, out, |e| Ok(e.f32_reruns.load(Ordering::Relaxed))) }
}

/// Writes to `*out` how many device allocations `engine` has made so far (tile arenas,
/// scratch, frame buffers, and weights when it uploaded them; engines sharing weights count
/// them once); 0 for CPU engines. What a caller checks that a reserved engine's calls
/// allocate nothing.
///
/// # Safety
/// `engine` is NULL or a live engine not in use by another thread; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn f2i_engine_device_allocations(
    engine: *const f2i_engine,
    out: *mut u64,
) -> f2i_status {
    // SAFETY: the caller's contract is write_count's.
    unsafe {
        write_count(engine, out, |e| {
            Ok(match &e.lock()?.nets {
                EngineNets::Cpu(..) => 0,
                #[cfg(feature = "cuda")]
                EngineNets::Cuda(e) => e.backend.device_allocations(),
                #[cfg(feature = "cuda-sim")]
                EngineNets::CudaSim(e) => e.backend.device_allocations(),
            })
        })
    }
}
