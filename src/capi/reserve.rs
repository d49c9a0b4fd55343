//! Device memory reserved up front, for real-time callers: after `f2i_engine_reserve`, a
//! device-memory `f2i_upscale` allocates nothing on the device, and a frame that would need
//! more is refused (`F2I_ERR_EXCEEDS_RESERVATION`) instead of allocating.

use super::engine::{EngineNets, f2i_engine};
use super::image::SizeLimit;
use super::params;
use super::status::{CResult, Failure, boundary};
use super::types::{f2i_status, f2i_upscale_params};

/// Reserves the device memory of `F2I_MEMORY_CUDA` calls on regions (the ROI, or the whole
/// image when there is none) of up to `max_width` x `max_height` input pixels, with `params`'
/// tile size and overlap (NULL = defaults; a call with `tile_size` 0 then uses the tile chosen
/// here): the tile arena, the f32 accumulator and tile buffers (16 bytes per output pixel of
/// the region with its margin, plus three tiles), the output's alpha plane, and the weights and
/// scratch that would otherwise go up at the first call. Afterwards such calls make no device
/// allocation (`f2i_engine_device_allocations` stays put); a call that needs more (a larger
/// region, tile or overlap) returns F2I_ERR_EXCEEDS_RESERVATION with nothing enqueued and its
/// buffers untouched. Calling again replaces the reservation, after waiting for the engine's
/// enqueued work. `*reserved_bytes` (when not NULL) receives the device bytes held. Host-memory
/// calls are not covered (they allocate host buffers per call). CPU engines:
/// F2I_ERR_UNSUPPORTED.
///
/// # Safety
/// `engine` is NULL or a live engine not in use by another thread; `params` NULL or readable;
/// `reserved_bytes` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn f2i_engine_reserve(
    engine: *mut f2i_engine,
    params: *const f2i_upscale_params,
    max_width: u32,
    max_height: u32,
    reserved_bytes: *mut u64,
) -> f2i_status {
    boundary(|| {
        if engine.is_null() {
            return Err(Failure::invalid("engine is NULL"));
        }
        // SAFETY: a live engine per the contract; shared access only (its lock serialises use).
        let engine = unsafe { &*engine };
        let (w, h) =
            SizeLimit::INPUT.check(max_width as u64, max_height as u64, "reserved size")?;
        // SAFETY: NULL or readable per the contract.
        let p = unsafe { params::read_params(params) }?;
        let mut p = p;
        p.roi = std::ptr::null();
        let call = params::call(&p, engine.scale, w, h, engine.memory_budget)?;
        let bytes = reserve(engine, &call, w, h)?;
        if !reserved_bytes.is_null() {
            // SAFETY: non-null and writable per the contract.
            unsafe { reserved_bytes.write_unaligned(bytes) };
        }
        Ok(())
    })
}

fn reserve(engine: &f2i_engine, call: &params::Call, w: usize, h: usize) -> CResult<u64> {
    let mut loaded = engine.lock()?;
    engine.set_lora_scale(&mut loaded, call.lora_scale)?;
    match &mut loaded.nets {
        EngineNets::Cpu(..) => Err(crate::Error::Unsupported(format!(
            "f2i_engine_reserve ({w}x{h}) on a CPU engine (it reserves CUDA device memory)"
        ))
        .into()),
        #[cfg(feature = "cuda")]
        EngineNets::Cuda(e) => e.reserve(call, w, h),
        #[cfg(feature = "cuda-sim")]
        EngineNets::CudaSim(e) => e.reserve(call, w, h),
    }
}
