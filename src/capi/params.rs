//! `f2i_upscale_params` and `f2i_engine_options` from the caller: defaults, `struct_size`,
//! enum values and ranges checked, turned into the pipeline's options.

use super::status::{CResult, Failure};
use super::types::{
    F2I_ENSEMBLE_MODEL, F2I_OVERLAP_DEFAULT, F2I_TILE_WHOLE_IMAGE, f2i_color_fix::*, f2i_device::*,
    f2i_dino_context::*, f2i_engine_options, f2i_memory::*, f2i_precision::*, f2i_upscale_params,
};
use crate::config::DinoContext;
use crate::pipeline::{ColorFix, Rect, UpscaleOptions};
use std::ffi::c_void;

pub fn default_options() -> f2i_engine_options {
    f2i_engine_options {
        struct_size: size_of::<f2i_engine_options>() as u32,
        device: F2I_DEVICE_AUTO as u32,
        device_index: 0,
        num_threads: 0,
        memory_budget_bytes: 0,
        precision: F2I_PRECISION_F16 as u32,
        flags: 0,
    }
}

/// `struct_size` of the first `f2i_engine_options` (before `precision`).
pub const ENGINE_OPTIONS_V1_SIZE: usize = 24;

pub fn default_params() -> f2i_upscale_params {
    f2i_upscale_params {
        struct_size: size_of::<f2i_upscale_params>() as u32,
        scale: 0,
        tile_size: 0,
        tile_overlap: F2I_OVERLAP_DEFAULT,
        color_fix: F2I_COLOR_FIX_WAVELET as u32,
        lora_scale: 1.0,
        roi: std::ptr::null(),
        progress: None,
        user_data: std::ptr::null_mut(),
        memory: F2I_MEMORY_HOST as u32,
        stream: std::ptr::null_mut(),
        dino_context: F2I_DINO_CONTEXT_MODEL as u32,
        ensemble: F2I_ENSEMBLE_MODEL,
    }
}

/// `struct_size` of the first `f2i_upscale_params` (before `memory`).
pub const PARAMS_V1_SIZE: usize = std::mem::offset_of!(f2i_upscale_params, memory);

/// Reads a caller's versioned struct: NULL gives `default`; `struct_size` (its first field)
/// must be at least `min_size` (the struct's first published size); fields beyond the
/// caller's `struct_size` (added in later versions) keep their defaults.
///
/// # Safety
/// `p` is NULL or points to a readable `T`-prefix of `struct_size` bytes whose first field is
/// a `u32` `struct_size`.
pub unsafe fn read_versioned<T: Copy>(
    p: *const T,
    default: T,
    min_size: usize,
    what: &str,
) -> CResult<T> {
    if p.is_null() {
        return Ok(default);
    }
    // SAFETY: non-null and readable per the contract; u32 has no invalid bit patterns.
    let size = unsafe { p.cast::<u32>().read_unaligned() } as usize;
    if size < min_size {
        return Err(Failure::invalid(format!(
            "{what}.struct_size is {size}, expected at least {min_size} (call the _init function \
             first)"
        )));
    }
    let n = size.min(size_of::<T>());
    let mut out = default;
    // SAFETY: the caller's `n ≤ struct_size` bytes are readable per the contract and `out` is
    // a `T` of at least `n` bytes; every field of our option structs is an integer, float, raw
    // pointer or optional function pointer, all valid for any bits, so any prefix overwrite
    // leaves a valid `T`.
    unsafe {
        std::ptr::copy_nonoverlapping(p.cast::<u8>(), (&raw mut out).cast::<u8>(), n);
    }
    Ok(out)
}

/// The caller's `f2i_upscale_params` (NULL: the defaults).
///
/// # Safety
/// As [`read_versioned`].
pub unsafe fn read_params(p: *const f2i_upscale_params) -> CResult<f2i_upscale_params> {
    // SAFETY: the caller's contract is read_versioned's.
    unsafe { read_versioned(p, default_params(), PARAMS_V1_SIZE, "params") }
}

/// One call's settings, checked against the model.
pub struct Call {
    pub opts: UpscaleOptions,
    pub lora_scale: f32,
    pub progress: super::types::f2i_progress_fn,
    pub user_data: *mut c_void,
    /// The pixels are in CUDA device memory.
    pub device_memory: bool,
    /// The caller's stream (0 = the engine's own).
    #[cfg_attr(not(any(feature = "cuda", feature = "cuda-sim")), allow(dead_code))]
    pub stream: u64,
}

/// Checks `p` for a model of factor `scale` and an input of `w × h`; the output size is
/// [`output_size`].
pub fn call(
    p: &f2i_upscale_params,
    scale: u32,
    w: usize,
    h: usize,
    budget: usize,
) -> CResult<Call> {
    if p.scale != 0 && p.scale != scale {
        return Err(Failure::invalid(format!(
            "scale {}: this model upscales x{scale} (pass 0 for the model's factor)",
            p.scale
        )));
    }
    let color_fix = match p.color_fix {
        c if c == F2I_COLOR_FIX_WAVELET as u32 => ColorFix::Wavelet,
        c if c == F2I_COLOR_FIX_ADAIN as u32 => ColorFix::Adain,
        c if c == F2I_COLOR_FIX_NONE as u32 => ColorFix::None,
        c => return Err(Failure::invalid(format!("unknown color_fix {c}"))),
    };
    if !p.lora_scale.is_finite() {
        return Err(Failure::invalid(format!(
            "lora_scale {} is not finite",
            p.lora_scale
        )));
    }
    let tile = match p.tile_size {
        0 => None,
        F2I_TILE_WHOLE_IMAGE => Some(0),
        t => Some(t as usize),
    };
    let overlap = match p.tile_overlap {
        F2I_OVERLAP_DEFAULT => 16 * scale as usize,
        o => o as usize,
    };
    let roi = roi(p, w, h)?;
    let device_memory = match p.memory {
        m if m == F2I_MEMORY_HOST as u32 => false,
        m if m == F2I_MEMORY_CUDA as u32 => true,
        m => return Err(Failure::invalid(format!("unknown memory {m}"))),
    };
    let dino_context = match p.dino_context {
        c if c == F2I_DINO_CONTEXT_MODEL as u32 => None,
        c if c == F2I_DINO_CONTEXT_TILE as u32 => Some(DinoContext::Tile),
        c if c == F2I_DINO_CONTEXT_IMAGE as u32 => Some(DinoContext::Image),
        c => return Err(Failure::invalid(format!("unknown dino_context {c}"))),
    };
    let ensemble = match p.ensemble {
        F2I_ENSEMBLE_MODEL => None,
        n => Some(crate::pipeline::ensemble::check(n as usize).map_err(Failure::from)?),
    };
    if device_memory && p.stream.is_null() {
        return Err(Failure::invalid(
            "memory is F2I_MEMORY_CUDA but stream is NULL: device-memory calls run on the \
             caller's stream (the output is ready when it gets there)",
        ));
    }
    Ok(Call {
        opts: UpscaleOptions {
            tile,
            overlap,
            color_fix,
            roi,
            memory_budget: budget,
            lora_scale: p.lora_scale,
            dino_context,
            ensemble,
        },
        lora_scale: p.lora_scale,
        progress: p.progress,
        user_data: p.user_data,
        device_memory,
        stream: p.stream as u64,
    })
}

/// The ROI, checked to lie inside the `w × h` input.
fn roi(p: &f2i_upscale_params, w: usize, h: usize) -> CResult<Option<Rect>> {
    if p.roi.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null; the caller passes a readable f2i_rect (four u32, any bits valid).
    let r = unsafe { p.roi.read_unaligned() };
    let (x, y, rw, rh) = (
        r.x as usize,
        r.y as usize,
        r.width as usize,
        r.height as usize,
    );
    if rw == 0 || rh == 0 || x + rw > w || y + rh > h {
        return Err(Failure::invalid(format!(
            "roi {rw}x{rh} at ({x}, {y}) is not a non-empty rectangle inside the {w}x{h} input"
        )));
    }
    Ok(Some(Rect {
        x,
        y,
        width: rw,
        height: rh,
    }))
}

/// Output `(width, height)` of a call on a `w × h` input.
pub fn output_size(c: &Call, scale: u32, w: usize, h: usize) -> (usize, usize) {
    let s = scale as usize;
    match c.opts.roi {
        Some(r) => (r.width * s, r.height * s),
        None => (w * s, h * s),
    }
}
