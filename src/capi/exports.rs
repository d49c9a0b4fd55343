//! The exported C functions. Each checks every pointer and size before use and runs inside
//! [`boundary`], so no panic crosses into C and the thread's last error is always set.

use super::engine::f2i_engine;
use super::image::{self, SizeLimit};
use super::params::{self, default_options, default_params, read_versioned};
use super::status::{self, Failure, boundary};
use super::types::{
    F2I_ENGINE_MAP_PACK, F2I_MAX_THREADS, RawStatus, f2i_engine_options, f2i_image, f2i_status,
    f2i_upscale_params,
};
use std::ffi::{CStr, c_char};
use std::path::Path;

/// Every `f2i_engine_options.flags` bit this version knows.
const KNOWN_ENGINE_FLAGS: u64 = F2I_ENGINE_MAP_PACK;

/// Fills `opts` with the defaults (automatic device, all cores, 2 GiB tile budget) and its
/// `struct_size`. NULL is a no-op.
///
/// # Safety
/// `opts` is NULL or points to a writable `f2i_engine_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn f2i_engine_options_init(opts: *mut f2i_engine_options) {
    if !opts.is_null() {
        // SAFETY: non-null and writable per the contract.
        unsafe { opts.write_unaligned(default_options()) };
    }
}

/// Fills `params` with the defaults (model's scale, automatic tile, 16 x scale overlap, wavelet
/// colour fix, LoRA scale 1, whole image, no callback) and its `struct_size`. NULL is a no-op.
///
/// # Safety
/// `params` is NULL or points to a writable `f2i_upscale_params`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn f2i_upscale_params_init(params: *mut f2i_upscale_params) {
    if !params.is_null() {
        // SAFETY: non-null and writable per the contract.
        unsafe { params.write_unaligned(default_params()) };
    }
}

/// Opens a packed model (`f2idiff pack`), checks every tensor's checksum and loads the networks.
/// The file is read into private memory (unless `F2I_ENGINE_MAP_PACK`, see
/// `f2i_engine_options`), so it may change or vanish afterwards without effect on the engine.
/// `opts` NULL means defaults. On success `*out` is the engine; on failure it is NULL.
/// Errors: F2I_ERR_IO (missing or unreadable file), F2I_ERR_FORMAT (not a valid pack),
/// F2I_ERR_UNSUPPORTED (newer pack version, CUDA in a CPU-only build), F2I_ERR_INVALID_ARGUMENT.
///
/// # Safety
/// `model_path` is NULL or a NUL-terminated string; `opts` is NULL or readable; `out` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn f2i_engine_create(
    model_path: *const c_char,
    opts: *const f2i_engine_options,
    out: *mut *mut f2i_engine,
) -> f2i_status {
    boundary(|| {
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        // SAFETY: non-null and writable per the contract.
        unsafe { out.write_unaligned(std::ptr::null_mut()) };
        if model_path.is_null() {
            return Err(Failure::invalid("model_path is NULL"));
        }
        // SAFETY: non-null and NUL-terminated per the contract.
        let bytes = unsafe { CStr::from_ptr(model_path) }.to_bytes();
        let path = path_from_bytes(bytes)?;
        // SAFETY: NULL or readable per the contract.
        let opts = unsafe {
            read_versioned(
                opts,
                default_options(),
                params::ENGINE_OPTIONS_V1_SIZE,
                "opts",
            )
        }?;
        let unknown = opts.flags & !KNOWN_ENGINE_FLAGS;
        if unknown != 0 {
            return Err(Failure::invalid(format!(
                "opts.flags has unknown bits {unknown:#x}"
            )));
        }
        if opts.num_threads > F2I_MAX_THREADS {
            return Err(Failure::invalid(format!(
                "opts.num_threads {} is over F2I_MAX_THREADS ({F2I_MAX_THREADS})",
                opts.num_threads
            )));
        }
        let engine = Box::new(f2i_engine::create(path, &opts)?);
        // SAFETY: as above.
        unsafe { out.write_unaligned(Box::into_raw(engine)) };
        Ok(())
    })
}

#[cfg(unix)]
fn path_from_bytes(b: &[u8]) -> status::CResult<&Path> {
    use std::os::unix::ffi::OsStrExt;
    if b.is_empty() {
        return Err(Failure::invalid("model_path is empty"));
    }
    Ok(Path::new(std::ffi::OsStr::from_bytes(b)))
}

#[cfg(not(unix))]
fn path_from_bytes(b: &[u8]) -> status::CResult<&Path> {
    match std::str::from_utf8(b) {
        Ok("") => Err(Failure::invalid("model_path is empty")),
        Ok(s) => Ok(Path::new(s)),
        Err(_) => Err(Failure::invalid("model_path is not UTF-8")),
    }
}

/// Frees an engine. NULL is a no-op. The engine must not be in use by another thread. A CUDA
/// engine first waits for the work its device-memory calls enqueued on callers' streams (the
/// whole device is synchronised, so those streams may already be destroyed).
///
/// # Safety
/// `engine` is NULL or came from `f2i_engine_create` and was not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn f2i_engine_free(engine: *mut f2i_engine) {
    if engine.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: came from Box::into_raw in f2i_engine_create, freed once per the contract.
        drop(unsafe { Box::from_raw(engine) });
    }));
}

/// The output size of `f2i_upscale` for an input of `in_width x in_height` with `params`
/// (NULL = defaults): the input (or the ROI) times the scale. Use it to size the output buffer.
///
/// # Safety
/// `engine` is NULL or a live engine; `params` NULL or readable; `out_width` / `out_height`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn f2i_output_size(
    engine: *const f2i_engine,
    in_width: u32,
    in_height: u32,
    params: *const f2i_upscale_params,
    out_width: *mut u32,
    out_height: *mut u32,
) -> f2i_status {
    boundary(|| {
        if engine.is_null() || out_width.is_null() || out_height.is_null() {
            return Err(Failure::invalid(
                "engine, out_width and out_height must not be NULL",
            ));
        }
        // SAFETY: a live engine per the contract; only shared access is used.
        let engine = unsafe { &*engine };
        let (w, h) = SizeLimit::INPUT.check(in_width as u64, in_height as u64, "input")?;
        // SAFETY: NULL or readable per the contract.
        let p = unsafe { params::read_params(params) }?;
        let call = params::call(&p, engine.scale, w, h, engine.memory_budget)?;
        let (ow, oh) = params::output_size(&call, engine.scale, w, h);
        // SAFETY: non-null and writable per the contract; sides ≤ 65536 x 16 fit in u32.
        unsafe {
            out_width.write_unaligned(ow as u32);
            out_height.write_unaligned(oh as u32);
        }
        Ok(())
    })
}

/// Super-resolves `input` into `output` (sized by `f2i_output_size`, any pixel format; see
/// `f2i_pixel_format`). `params` NULL means defaults. Writes only the pixel rows of `output`;
/// on failure or cancel its content is unspecified and nothing else is touched.
///
/// # Safety
/// `engine` is NULL or a live engine; `input` and `output` are NULL or describe buffers of the
/// declared layout; `params` is NULL or readable, and its `roi` NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn f2i_upscale(
    engine: *mut f2i_engine,
    input: *const f2i_image,
    output: *const f2i_image,
    params: *const f2i_upscale_params,
) -> f2i_status {
    boundary(|| {
        if engine.is_null() {
            return Err(Failure::invalid("engine is NULL"));
        }
        // SAFETY: a live engine per the contract; shared access only (its lock serialises use).
        let engine = unsafe { &*engine };
        // SAFETY: NULL or readable per the contract.
        let input = unsafe { image::check(input, "input", SizeLimit::INPUT) }?;
        // SAFETY: NULL or readable per the contract.
        let p = unsafe { params::read_params(params) }?;
        let call = params::call(
            &p,
            engine.scale,
            input.width,
            input.height,
            engine.memory_budget,
        )?;
        let (ow, oh) = params::output_size(&call, engine.scale, input.width, input.height);
        // SAFETY: NULL or readable per the contract.
        let output = unsafe { image::check(output, "output", SizeLimit::OUTPUT) }?;
        if (output.width, output.height) != (ow, oh) {
            return Err(Failure::invalid(format!(
                "output is {}x{}, expected {ow}x{oh} (see f2i_output_size)",
                output.width, output.height
            )));
        }
        if output.overlaps(&input) || output.self_overlaps() {
            return Err(Failure::invalid(
                "output memory overlaps the input or itself",
            ));
        }
        // SAFETY: both described per the contract and checked not to overlap.
        unsafe { super::run::run(engine, &input, &output, &call) }
    })
}

/// This thread's last failure message with context; "" after a success. Valid until this
/// thread's next f2idiff call; never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn f2i_last_error() -> *const c_char {
    status::last_error()
}

/// A fixed English description of a status ("unknown status" for other values); never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn f2i_status_string(status: RawStatus) -> *const c_char {
    status::status_string(status).as_ptr()
}

/// The library's version, "MAJOR.MINOR.PATCH" (F2I_VERSION_STRING of the header it was built
/// with).
#[unsafe(no_mangle)]
pub extern "C" fn f2i_version_string() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
