//! The types of the C interface, exactly as `include/f2idiff.h` declares them (cbindgen reads
//! this file). Enum-typed *inputs* are carried as `u32` on the Rust side (the `Raw*` aliases,
//! which cbindgen prints under the enum's C name): a C caller may pass any integer in an enum,
//! and an out-of-range value in a Rust enum would be undefined behaviour, not an error.

#![allow(non_camel_case_types)]

use std::ffi::{c_int, c_void};

/// Result of every fallible call. Values are never renumbered; 0 is success.
/// `f2i_last_error()` gives the failure's message with context.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum f2i_status {
    F2I_OK = 0,
    /// A NULL pointer, an unknown enum value, a size out of range, an output of the wrong
    /// size, overlapping buffers, or an engine used from two threads at once.
    F2I_ERR_INVALID_ARGUMENT = 1,
    /// The model file is missing or unreadable.
    F2I_ERR_IO = 2,
    /// The model file is not a valid f2idiff pack (corrupt, truncated, inconsistent).
    F2I_ERR_FORMAT = 3,
    /// Valid but not supported by this build (pack version, device, scale).
    F2I_ERR_UNSUPPORTED = 4,
    /// An allocation failed (the image or the tile arena is too large).
    F2I_ERR_OUT_OF_MEMORY = 5,
    /// The compute device failed.
    F2I_ERR_DEVICE = 6,
    /// The progress callback returned non-zero.
    F2I_ERR_CANCELLED = 7,
    /// The model produced non-finite values (NaN or infinity).
    F2I_ERR_NUMERIC = 8,
    /// A bug in f2idiff (an internal panic was caught at the interface).
    F2I_ERR_INTERNAL = 9,
    /// The frame (or region, tile, pixel format) needs more memory than the engine reserved
    /// with `f2i_engine_reserve`; nothing was allocated, and the input is untouched.
    F2I_ERR_EXCEEDS_RESERVATION = 10,
}

/// Pixel layouts. 8-bit channels are `uint8_t`; RGB16 channels are native-endian `uint16_t`
/// (any byte alignment is accepted). Alpha (RGBA8 / BGRA8) is upscaled bicubically; an output
/// with alpha from an input without it gets opaque alpha.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum f2i_pixel_format {
    F2I_PIXEL_RGB8 = 0,
    F2I_PIXEL_RGBA8 = 1,
    F2I_PIXEL_BGR8 = 2,
    F2I_PIXEL_BGRA8 = 3,
    F2I_PIXEL_RGB16 = 4,
    /// 4:2:0, a Y plane then an interleaved Cb,Cr plane of ceil(w/2) x ceil(h/2) pairs;
    /// BT.709 limited range (Y 16..235, Cb/Cr 16..240). Each chroma pair covers its 2x2 block
    /// on input; on output it is the mean of its block.
    F2I_PIXEL_NV12 = 5,
    /// As `F2I_PIXEL_NV12`, but BT.601 full range (Y and Cb/Cr 0..255, as JPEG / JFIF).
    F2I_PIXEL_NV12_BT601_FULL = 6,
}

/// Colour correction of the SR image against the bicubic upscale (paper §4; StableSR's).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum f2i_color_fix {
    F2I_COLOR_FIX_WAVELET = 0,
    F2I_COLOR_FIX_ADAIN = 1,
    F2I_COLOR_FIX_NONE = 2,
}

/// Where the engine computes. AUTO picks CUDA when this build has it and a GPU is present,
/// else the CPU.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum f2i_device {
    F2I_DEVICE_AUTO = 0,
    F2I_DEVICE_CPU = 1,
    F2I_DEVICE_CUDA = 2,
}

/// Storage precision on CUDA (the CPU always computes in f32).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum f2i_precision {
    /// f16 storage, f32 arithmetic (the default).
    F2I_PRECISION_F16 = 0,
    /// f32 storage (debugging; twice the memory).
    F2I_PRECISION_F32 = 1,
}

/// Where an `f2i_upscale` call's pixels live.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum f2i_memory {
    /// Host memory (the default). The call returns when the output is written.
    F2I_MEMORY_HOST = 0,
    /// CUDA device memory of the engine's GPU (`cuMemAlloc`, `cudaMalloc`, pitched
    /// allocations, a mapped NvBufSurface; or pinned / registered host memory, through unified
    /// addressing), on a CUDA engine, with a non-NULL `stream`. See `f2i_upscale_params`.
    F2I_MEMORY_CUDA = 1,
}

/// What DINOv2 conditions each tile on (`f2i_upscale_params.dino_context`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum f2i_dino_context {
    /// The model's own setting (its `f2idiff.json` `dino_context`; the tile when absent).
    F2I_DINO_CONTEXT_MODEL = 0,
    /// Each tile's own LR pixels.
    F2I_DINO_CONTEXT_TILE = 1,
    /// The whole input's LR pixels (also with an ROI), resized once: every tile gets the same
    /// tokens. Host memory only (F2I_ERR_UNSUPPORTED with F2I_MEMORY_CUDA).
    F2I_DINO_CONTEXT_IMAGE = 2,
}

/// `f2i_pixel_format` as passed in by a caller (any integer).
pub type RawPixelFormat = u32;
/// `f2i_color_fix` as passed in by a caller (any integer).
pub type RawColorFix = u32;
/// `f2i_device` as passed in by a caller (any integer).
pub type RawDevice = u32;
/// `f2i_precision` as passed in by a caller (any integer).
pub type RawPrecision = u32;
/// `f2i_memory` as passed in by a caller (any integer).
pub type RawMemory = u32;
/// `f2i_dino_context` as passed in by a caller (any integer).
pub type RawDinoContext = u32;
/// `f2i_status` as passed in by a caller (any integer).
pub type RawStatus = u32;

/// An image in caller-owned memory.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct f2i_image {
    pub format: RawPixelFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes per row (NV12: of the Y plane and of the UV plane). At least width x bytes per
    /// pixel; rows may be padded. Padding bytes of an output are never written.
    pub stride: usize,
    /// The pixels (NV12: the Y plane).
    pub data: *mut c_void,
    /// NV12 only: the UV plane; NULL means right after the Y plane (at data + height x stride).
    /// Ignored for other formats.
    pub uv_data: *mut c_void,
}

/// A rectangle in input (LR) pixels.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct f2i_rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Called after each tile from the thread that called `f2i_upscale`; return non-zero to
/// cancel (`f2i_upscale` then returns `F2I_ERR_CANCELLED`).
pub type f2i_progress_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, tiles_done: u32, tiles_total: u32) -> c_int,
>;

/// Engine options. Initialise with `f2i_engine_options_init`, then change fields.
///
/// The model file: by default the engine reads the whole pack into private memory when it is
/// created (costing the file's size in memory while the engine lives), and never touches the
/// file again: the file may then be truncated, rewritten or deleted while engines run, with no
/// effect on them. `F2I_ENGINE_MAP_PACK` in `flags` maps the file instead (no copy; pages are
/// shared with the page cache and other processes); the caller must then not truncate or
/// rewrite the file in place until every engine on it is freed: touching a truncated page
/// raises SIGBUS, which kills the process, and an in-place rewrite changes the weights in use.
/// Replacing the file by renaming a new one over it, or deleting it, is safe in both modes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct f2i_engine_options {
    /// `sizeof(f2i_engine_options)`, set by the init function (lets the struct grow).
    pub struct_size: u32,
    pub device: RawDevice,
    /// GPU ordinal for CUDA; 0 or -1 (default) for the CPU.
    pub device_index: i32,
    /// CPU threads; 0 = all cores. At most `F2I_MAX_THREADS`.
    pub num_threads: u32,
    /// Budget for one tile's activations when `tile_size` is 0 (automatic); 0 = 2 GiB. The
    /// automatic tile is the largest whose arena, planned as for one CPU thread, fits it, so
    /// the tile and the output do not depend on `num_threads`; each further CPU thread adds
    /// its kernels' scratch (at most 16 MiB per thread for up to 512 channels).
    pub memory_budget_bytes: u64,
    /// CUDA storage precision (added in 0.2; callers built against an older header, whose
    /// `struct_size` ends before this field, get F2I_PRECISION_F16). CUDA kernels come from
    /// NVRTC at first use (cached), or from precompiled cubins in the folder named by the
    /// environment variable `F2I_KERNEL_DIR` (`f2idiff kernels build`).
    pub precision: RawPrecision,
    /// `F2I_ENGINE_*` bits; 0 by default. Unknown bits are F2I_ERR_INVALID_ARGUMENT. (Added
    /// after `precision`: callers built against an older header, whose `struct_size` ends
    /// before this field, get 0.)
    pub flags: u64,
}

/// `f2i_engine_options.flags`: map the model file instead of reading it into private memory.
/// The file must then stay unchanged (no truncation, no in-place rewrite) while any engine on
/// it lives; see `f2i_engine_options`.
pub const F2I_ENGINE_MAP_PACK: u64 = 1;

/// Per-call parameters. Initialise with `f2i_upscale_params_init`, then change fields.
///
/// Frames in device memory (`memory` = F2I_MEMORY_CUDA, added in 0.3): `input` and `output`
/// describe device planes (`data`, NV12's `uv_data`, `stride` = the pitch in bytes), each checked
/// to lie inside one allocation of the engine's GPU (a host pointer, a short buffer or memory of
/// another GPU is F2I_ERR_INVALID_ARGUMENT before anything is enqueued). Every kernel runs on
/// `stream`, in order after the work already on it, and `f2i_upscale` returns once the work is
/// enqueued: the output is valid when `stream` reaches that point (synchronise it, or record an
/// event after the call). Until then the caller must not write the input planes nor read or
/// write the output planes, and must not destroy `stream` or the engine. The next call on the
/// same engine may be issued at once (it queues behind). The engine keeps its tile arena and
/// f32 frame buffers between calls (see `f2i_engine_reserve` to size them up front).
/// `progress` is called after each tile is *enqueued*; returning non-zero stops enqueueing and
/// the call returns F2I_ERR_CANCELLED without writing the output (tiles already enqueued still
/// run). Not in this mode: the AdaIN colour fix and the whole image's DINOv2 context (both
/// F2I_ERR_UNSUPPORTED; a model whose pack declares the image context needs
/// `dino_context` = F2I_DINO_CONTEXT_TILE here), and the f32 rerun of
/// tiles whose f16 values overflow (their pixels come out clamped; packs calibrated with
/// `f2idiff calibrate` avoid the overflow).
///
/// `stream` with host memory: the work runs on that stream and the call synchronises it before
/// returning. NULL = the engine's own stream.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct f2i_upscale_params {
    /// `sizeof(f2i_upscale_params)`, set by the init function.
    pub struct_size: u32,
    /// 0 = the model's factor; any other value must equal it.
    pub scale: u32,
    /// Output tile side in pixels, a multiple of 8 and of the scale; 0 = automatic: the model's
    /// own tile when its pack declares one (the patch size it was trained on), else the largest
    /// tile whose activations fit the engine's memory budget, which also caps the model's;
    /// `F2I_TILE_WHOLE_IMAGE` = one tile.
    pub tile_size: u32,
    /// Overlap between tiles in output pixels, a multiple of the scale;
    /// `F2I_OVERLAP_DEFAULT` = 16 x scale.
    pub tile_overlap: u32,
    pub color_fix: RawColorFix,
    /// Strength of runtime LoRA (packs made with `f2idiff pack --lora runtime`); 1.0 by
    /// default; ignored by packs with merged LoRA. Must be finite.
    pub lora_scale: f32,
    /// Upscale only this rectangle of the input (digital zoom); NULL = the whole image.
    pub roi: *const f2i_rect,
    /// Optional progress / cancel callback.
    pub progress: f2i_progress_fn,
    pub user_data: *mut c_void,
    /// Where the pixels live (`f2i_memory`). Added in 0.3: callers built against an older
    /// header, whose `struct_size` ends before this field, get F2I_MEMORY_HOST.
    pub memory: RawMemory,
    /// A `cudaStream_t` / `CUstream` of the engine's GPU; NULL = the engine's own stream.
    /// Required (non-NULL) with F2I_MEMORY_CUDA. Ignored by CPU engines with host memory.
    pub stream: *mut c_void,
    /// What DINOv2 conditions each tile on (`f2i_dino_context`). Added in 0.4: callers built
    /// against an older header, whose `struct_size` ends before this field, get
    /// F2I_DINO_CONTEXT_MODEL.
    pub dino_context: RawDinoContext,
    /// Self-ensemble: how many mirrored copies of the input to upscale and average (1 = none,
    /// 2 = also its left-right mirror, 4 = also the up-down mirror and both; each copy costs
    /// one more upscale); `F2I_ENSEMBLE_MODEL` (0) = the model's own (its pack's `ensemble`,
    /// else 1). Host memory only. Added in 0.5: callers built against an older header, whose
    /// `struct_size` ends before this field, get F2I_ENSEMBLE_MODEL.
    pub ensemble: u32,
}

/// `f2i_upscale_params.ensemble`: the model's own self-ensemble.
pub const F2I_ENSEMBLE_MODEL: u32 = 0;

/// `f2i_upscale_params.tile_size`: the whole image as one tile.
pub const F2I_TILE_WHOLE_IMAGE: u32 = 0xFFFF_FFFF;
/// `f2i_upscale_params.tile_overlap`: 16 x the scale (what the CLI uses).
pub const F2I_OVERLAP_DEFAULT: u32 = 0xFFFF_FFFF;
/// Largest accepted input side, in pixels.
pub const F2I_MAX_INPUT_SIDE: u32 = 65536;
/// Largest accepted input area, in pixels: 2^28 (16384 x 16384; a 12 MP frame is 1/22 of it).
/// Outputs may be up to 16 x 16 times larger (the largest scale).
pub const F2I_MAX_INPUT_PIXELS: u64 = 268_435_456;
/// Largest accepted `f2i_engine_options.num_threads` (`CpuBackend::MAX_THREADS`).
pub const F2I_MAX_THREADS: u32 = 1024;
const _: () = assert!(F2I_MAX_THREADS as usize == crate::backend::cpu::CpuBackend::MAX_THREADS);
