//! Frames in device memory through the C interface (`F2I_MEMORY_CUDA`), on the CUDA backend
//! whose kernels run on the CPU execution harness (`F2I_CUDA_SIM=1`: "device memory" is harness
//! memory, behind guard pages). Each result is compared byte for byte with the host-memory
//! path of the same engine: every pixel format in and out, pitches larger than the row, odd
//! NV12 sizes, ROI, alpha. Then the reserved arena (no device allocation per frame; a bigger
//! frame refused with nothing touched), cancellation, and misuse giving typed errors.
#![cfg(feature = "cuda-sim")]

mod common;

use f2idiff::backend::cuda::Executor;
use f2idiff::backend::cuda::sim::{SimBuffer, SimExecutor};
use f2idiff::capi::types::{
    F2I_TILE_WHOLE_IMAGE, f2i_color_fix, f2i_device, f2i_dino_context, f2i_engine_options,
    f2i_image, f2i_memory, f2i_pixel_format as pf, f2i_rect, f2i_status, f2i_upscale_params,
};
use f2idiff::capi::*;
use f2idiff::convert::{LoraChoice, PackOptions, pack_folder};
use f2idiff::tensor::DType;
use std::ffi::{CString, c_int, c_void};
use std::path::Path;
use std::sync::OnceLock;

/// A stand-in `CUstream` (the harness runs everything at once and ignores it).
const STREAM: *mut c_void = 0x5_7ea3 as *mut c_void;

/// The sd test model, packed once per process.
fn model() -> &'static CString {
    static MODEL: OnceLock<(tempfile::TempDir, CString)> = OnceLock::new();
    &MODEL
        .get_or_init(|| {
            // SAFETY: set once, before any engine reads it, by the first test to get here
            // (every test calls model() before creating an engine).
            unsafe {
                std::env::set_var("F2I_CUDA_SIM", "1");
                // Harness memory passed as host memory plays pinned memory on a Jetson.
                std::env::set_var("F2I_SIM_INTEGRATED", "1");
                // One thread schedule per launch: the frame kernels (kernels/frame.cu) share
                // nothing between threads (no shared memory, barriers or atomics), and the
                // networks' kernels are checked under two schedules by tests/cuda_*.rs.
                std::env::set_var("F2I_SIM_SCHEDULES", "1");
            }
            let dir = tempfile::tempdir().unwrap();
            // The sd test model with DINOv2 at 28×28 (4 patches, position embeddings
            // interpolated) instead of 224×224: the harness runs every thread of every block,
            // and the format checks below need many calls, not a big conditioning.
            let src = dir.path().join("sd");
            common::copy_dir(Path::new("tests/data/engine/sd"), &src);
            std::fs::write(
                src.join("f2idiff.json"),
                r#"{"scale": 4, "timestep": 999, "dino_image_size": 28}"#,
            )
            .unwrap();
            let out = dir.path().join("m.f2i");
            let opts = PackOptions {
                dtype: DType::F32,
                lora: LoraChoice::Merge,
                lora_alpha: None,
            };
            pack_folder(&src, &out, &opts).unwrap();
            let path = CString::new(out.to_str().unwrap()).unwrap();
            (dir, path)
        })
        .1
}

struct Engine(*mut f2i_engine);

impl Engine {
    fn new(device: f2i_device) -> Engine {
        let model = model();
        let mut opts = std::mem::MaybeUninit::<f2i_engine_options>::uninit();
        // SAFETY: init writes the whole struct.
        let mut opts = unsafe {
            f2i_engine_options_init(opts.as_mut_ptr());
            opts.assume_init()
        };
        opts.device = device as u32;
        let mut e = std::ptr::null_mut();
        // SAFETY: valid C string, options and out-pointer.
        let s = unsafe { f2i_engine_create(model.as_ptr(), &opts, &mut e) };
        assert_eq!(s, f2i_status::F2I_OK, "{}", last_error());
        Engine(e)
    }

    fn cuda() -> Engine {
        Engine::new(f2i_device::F2I_DEVICE_CUDA)
    }

    fn allocations(&self) -> u64 {
        let mut n = 0;
        // SAFETY: a live engine and a writable u64.
        let s = unsafe { f2i_engine_device_allocations(self.0, &mut n) };
        assert_eq!(s, f2i_status::F2I_OK);
        n
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: created by f2i_engine_create, freed once.
        unsafe { f2i_engine_free(self.0) };
    }
}

fn last_error() -> String {
    // SAFETY: f2i_last_error never returns NULL and the string lives until the next call.
    unsafe { std::ffi::CStr::from_ptr(f2i_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Asserts a call succeeded, with its message when it did not.
#[track_caller]
fn ok(s: f2i_status) {
    assert_eq!(s, f2i_status::F2I_OK, "{}", last_error());
}

fn params() -> f2i_upscale_params {
    let mut p = std::mem::MaybeUninit::<f2i_upscale_params>::uninit();
    // SAFETY: init writes the whole struct.
    let mut p = unsafe {
        f2i_upscale_params_init(p.as_mut_ptr());
        p.assume_init()
    };
    // Four tiles on the small inputs below, so the blend's ramps and placement are exercised.
    p.tile_size = 32;
    p.tile_overlap = 8;
    p
}

/// Bytes per pixel of a row (NV12: of the Y plane).
fn bpp(f: pf) -> usize {
    match f {
        pf::F2I_PIXEL_RGB8 | pf::F2I_PIXEL_BGR8 => 3,
        pf::F2I_PIXEL_RGBA8 | pf::F2I_PIXEL_BGRA8 => 4,
        pf::F2I_PIXEL_RGB16 => 6,
        _ => 1,
    }
}

fn is_nv12(f: pf) -> bool {
    matches!(f, pf::F2I_PIXEL_NV12 | pf::F2I_PIXEL_NV12_BT601_FULL)
}

/// An image buffer in host memory or harness ("device") memory, padded rows filled with 0xEE.
struct Img {
    format: pf,
    w: usize,
    h: usize,
    stride: usize,
    len: usize,
    ptr: *mut u8,
    _host: Option<Vec<u8>>,
    _device: Option<SimBuffer>,
}

impl Img {
    fn new(format: pf, w: usize, h: usize, pad: usize, device: bool) -> Img {
        let row = if is_nv12(format) {
            2 * w.div_ceil(2)
        } else {
            w * bpp(format)
        };
        let stride = row + pad;
        let rows = if is_nv12(format) {
            h + h.div_ceil(2)
        } else {
            h
        };
        let len = stride * rows;
        let (ptr, host, dev) = if device {
            let exec = SimExecutor::default();
            let buf = exec.alloc(len).unwrap();
            (exec.ptr(&buf) as *mut u8, None, Some(buf))
        } else {
            let mut v = vec![0u8; len];
            (v.as_mut_ptr(), Some(v), None)
        };
        // SAFETY: `len` writable bytes at `ptr`, owned by this value.
        unsafe { std::ptr::write_bytes(ptr, 0xEE, len) };
        Img {
            format,
            w,
            h,
            stride,
            len,
            ptr,
            _host: host,
            _device: dev,
        }
    }

    /// Pixels from a seeded pattern (row padding stays 0xEE).
    fn filled(format: pf, w: usize, h: usize, pad: usize, device: bool, seed: usize) -> Img {
        let img = Img::new(format, w, h, pad, device);
        let rows = if is_nv12(format) {
            h + h.div_ceil(2)
        } else {
            h
        };
        let row_bytes = |r: usize| {
            if is_nv12(format) && r >= h {
                2 * w.div_ceil(2)
            } else {
                w * bpp(format)
            }
        };
        for r in 0..rows {
            for x in 0..row_bytes(r) {
                let v = ((r * 131 + x * 37 + seed * 17 + (x * r) % 7) % 251) as u8;
                // SAFETY: inside the buffer (row r, byte x < row_bytes ≤ stride).
                unsafe { *img.ptr.add(r * img.stride + x) = v };
            }
        }
        img
    }

    fn bytes(&self) -> Vec<u8> {
        // SAFETY: `len` readable bytes at `ptr`, owned by this value.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
    }

    fn desc(&self) -> f2i_image {
        f2i_image {
            format: self.format as u32,
            width: self.w as u32,
            height: self.h as u32,
            stride: self.stride,
            data: self.ptr.cast(),
            uv_data: std::ptr::null_mut(),
        }
    }
}

fn upscale(e: &Engine, input: &Img, output: &Img, p: &f2i_upscale_params) -> f2i_status {
    let (i, o) = (input.desc(), output.desc());
    // SAFETY: both describe live buffers of their declared layouts; the engine is live.
    unsafe { f2i_upscale(e.0, &i, &o, p) }
}

/// One call in host memory and one in device memory on the same engine; returns both outputs
/// (whole buffers, padding included) after checking the inputs were not written.
fn both(
    e: &Engine,
    fin: pf,
    fout: pf,
    (w, h): (usize, usize),
    roi: Option<f2i_rect>,
    tiled: bool,
) -> [Vec<u8>; 2] {
    let mut p = params();
    if !tiled {
        p.tile_size = F2I_TILE_WHOLE_IMAGE;
    }
    p.roi = roi
        .as_ref()
        .map_or(std::ptr::null(), |r| r as *const f2i_rect);
    let (ow, oh) = roi.map_or((4 * w, 4 * h), |r| {
        (4 * r.width as usize, 4 * r.height as usize)
    });
    [false, true].map(|device| {
        let input = Img::filled(fin, w, h, 5, device, 1);
        let before = input.bytes();
        let output = Img::new(fout, ow, oh, 7, device);
        let mut q = p;
        if device {
            q.memory = f2i_memory::F2I_MEMORY_CUDA as u32;
            q.stream = STREAM;
        }
        let s = upscale(e, &input, &output, &q);
        assert_eq!(
            s,
            f2i_status::F2I_OK,
            "{fin:?} → {fout:?}: {}",
            last_error()
        );
        assert_eq!(input.bytes(), before, "the input was written");
        output.bytes()
    })
}

#[test]
fn every_format_in_and_out_matches_the_host_path_byte_for_byte() {
    let e = Engine::cuda();
    // Each input format once and each output format once; odd sizes for NV12.
    let cases = [
        (pf::F2I_PIXEL_RGB8, pf::F2I_PIXEL_NV12, (8, 6)),
        (pf::F2I_PIXEL_RGBA8, pf::F2I_PIXEL_BGRA8, (8, 6)),
        (pf::F2I_PIXEL_BGR8, pf::F2I_PIXEL_RGB16, (8, 6)),
        (pf::F2I_PIXEL_BGRA8, pf::F2I_PIXEL_RGBA8, (7, 5)),
        (pf::F2I_PIXEL_RGB16, pf::F2I_PIXEL_BGR8, (8, 6)),
        (pf::F2I_PIXEL_NV12, pf::F2I_PIXEL_RGB8, (7, 5)),
        (
            pf::F2I_PIXEL_NV12_BT601_FULL,
            pf::F2I_PIXEL_NV12_BT601_FULL,
            (7, 5),
        ),
    ];
    for (fin, fout, size) in cases {
        // One tile per call here (the conversions are what differ); tiles and blending are
        // checked with the ROI below.
        let [host, device] = both(&e, fin, fout, size, None, false);
        assert!(
            host == device,
            "{fin:?} → {fout:?}: device path differs from host path"
        );
        // Row padding of the output is never written.
        let (stride, rows) = (4 * size.0 * bpp(fout) + 7, 4 * size.1);
        for r in 0..rows {
            assert!(
                device[r * stride + 4 * size.0 * bpp(fout)..][..7]
                    .iter()
                    .all(|&b| b == 0xEE)
            );
        }
    }
}

#[test]
fn roi_and_odd_offsets_match_the_host_path() {
    let e = Engine::cuda();
    let roi = f2i_rect {
        x: 3,
        y: 1,
        width: 7,
        height: 5,
    };
    // Tiled once (four tiles: placement, ramps), one tile for the alpha case.
    for (fin, fout, tiled) in [
        (pf::F2I_PIXEL_NV12, pf::F2I_PIXEL_NV12, true),
        (pf::F2I_PIXEL_RGBA8, pf::F2I_PIXEL_RGBA8, false),
    ] {
        let [host, device] = both(&e, fin, fout, (13, 11), Some(roi), tiled);
        assert!(
            host == device,
            "{fin:?} → {fout:?} ROI: device path differs"
        );
    }
}

#[test]
fn a_reserved_engine_allocates_nothing_per_frame_and_refuses_bigger_frames() {
    let e = Engine::cuda();
    let mut p = params();
    p.tile_size = F2I_TILE_WHOLE_IMAGE;
    let mut bytes = 0u64;
    // SAFETY: live engine, readable params, writable out.
    let s = unsafe { f2i_engine_reserve(e.0, &p, 8, 6, &mut bytes) };
    assert_eq!(s, f2i_status::F2I_OK, "{}", last_error());
    assert!(bytes > 0);
    let reserved = e.allocations();
    let mut q = p;
    q.memory = f2i_memory::F2I_MEMORY_CUDA as u32;
    q.stream = STREAM;
    for (w, h, f) in [
        (8, 6, pf::F2I_PIXEL_RGBA8),
        (7, 5, pf::F2I_PIXEL_NV12),
        (8, 6, pf::F2I_PIXEL_RGB8),
    ] {
        let input = Img::filled(f, w, h, 0, true, 2);
        let output = Img::new(f, 4 * w, 4 * h, 0, true);
        ok(upscale(&e, &input, &output, &q));
    }
    assert_eq!(
        e.allocations(),
        reserved,
        "a reserved engine allocated per frame"
    );

    // A bigger frame: refused, nothing written, nothing allocated.
    let input = Img::filled(pf::F2I_PIXEL_RGB8, 9, 6, 0, true, 3);
    let output = Img::new(pf::F2I_PIXEL_RGB8, 36, 24, 0, true);
    let (before_in, before_out) = (input.bytes(), output.bytes());
    let s = upscale(&e, &input, &output, &q);
    assert_eq!(
        s,
        f2i_status::F2I_ERR_EXCEEDS_RESERVATION,
        "{}",
        last_error()
    );
    assert_eq!(input.bytes(), before_in);
    assert_eq!(output.bytes(), before_out);
    assert_eq!(e.allocations(), reserved);
    // A ROI of the reserved size inside it is fine.
    let roi = f2i_rect {
        x: 1,
        y: 0,
        width: 8,
        height: 6,
    };
    let mut r = q;
    r.roi = &roi;
    let output = Img::new(pf::F2I_PIXEL_RGB8, 32, 24, 0, true);
    ok(upscale(&e, &input, &output, &r));
    assert_eq!(e.allocations(), reserved);
}

unsafe extern "C" fn cancel_after_first(_: *mut c_void, done: u32, _: u32) -> c_int {
    c_int::from(done >= 1)
}

#[test]
fn cancel_stops_before_the_output_is_written() {
    let e = Engine::cuda();
    let mut p = params();
    p.memory = f2i_memory::F2I_MEMORY_CUDA as u32;
    p.stream = STREAM;
    p.progress = Some(cancel_after_first);
    let input = Img::filled(pf::F2I_PIXEL_RGB8, 12, 10, 0, true, 4);
    let output = Img::new(pf::F2I_PIXEL_RGB8, 48, 40, 0, true);
    let before = output.bytes();
    assert_eq!(
        upscale(&e, &input, &output, &p),
        f2i_status::F2I_ERR_CANCELLED
    );
    assert_eq!(output.bytes(), before);
}

#[test]
fn misuse_gives_typed_errors_with_nothing_touched() {
    let e = Engine::cuda();
    let device = |p: &mut f2i_upscale_params| {
        p.memory = f2i_memory::F2I_MEMORY_CUDA as u32;
        p.stream = STREAM;
    };
    let input = Img::filled(pf::F2I_PIXEL_RGB8, 6, 5, 0, true, 5);
    let output = Img::new(pf::F2I_PIXEL_RGB8, 24, 20, 0, true);
    let (before_in, before_out) = (input.bytes(), output.bytes());
    let invalid = f2i_status::F2I_ERR_INVALID_ARGUMENT;

    // Device memory without a stream.
    let mut p = params();
    p.memory = f2i_memory::F2I_MEMORY_CUDA as u32;
    assert_eq!(upscale(&e, &input, &output, &p), invalid);
    assert!(last_error().contains("stream is NULL"), "{}", last_error());
    // An unknown memory kind.
    p.memory = 7;
    p.stream = STREAM;
    assert_eq!(upscale(&e, &input, &output, &p), invalid);
    // Host memory flagged as device memory (detected: not a device allocation).
    let host_in = Img::filled(pf::F2I_PIXEL_RGB8, 6, 5, 0, false, 5);
    let host_before = host_in.bytes();
    let mut p = params();
    device(&mut p);
    assert_eq!(upscale(&e, &host_in, &output, &p), invalid);
    assert!(last_error().contains("not"), "{}", last_error());
    assert_eq!(host_in.bytes(), host_before);
    // A device buffer shorter than the image it claims to hold.
    let mut short = output.desc();
    short.height = 20;
    short.stride = 24 * 3 + 64;
    // SAFETY: the descriptors name live buffers; the engine must refuse the short one.
    let s = unsafe { f2i_upscale(e.0, &input.desc(), &short, &p) };
    assert_eq!(s, invalid, "{}", last_error());
    // The AdaIN colour fix is host-only.
    p.color_fix = f2i_color_fix::F2I_COLOR_FIX_ADAIN as u32;
    assert_eq!(
        upscale(&e, &input, &output, &p),
        f2i_status::F2I_ERR_UNSUPPORTED
    );
    // So is the whole image's DINOv2 context; an unknown context is invalid.
    let mut p = params();
    device(&mut p);
    p.dino_context = f2i_dino_context::F2I_DINO_CONTEXT_IMAGE as u32;
    assert_eq!(
        upscale(&e, &input, &output, &p),
        f2i_status::F2I_ERR_UNSUPPORTED
    );
    assert!(
        last_error().contains("F2I_DINO_CONTEXT_TILE"),
        "{}",
        last_error()
    );
    p.dino_context = 3;
    assert_eq!(upscale(&e, &input, &output, &p), invalid);
    // So is the self-ensemble; a size there is not is invalid.
    let mut p = params();
    device(&mut p);
    p.ensemble = 2;
    assert_eq!(
        upscale(&e, &input, &output, &p),
        f2i_status::F2I_ERR_UNSUPPORTED
    );
    assert!(last_error().contains("ensemble"), "{}", last_error());
    p.ensemble = 3;
    assert_eq!(upscale(&e, &input, &output, &p), invalid);
    assert_eq!(input.bytes(), before_in);
    assert_eq!(output.bytes(), before_out);
    // Too small a struct_size; an older one (before `memory`) means host memory.
    let mut p = params();
    device(&mut p);
    p.struct_size = 16;
    assert_eq!(upscale(&e, &input, &output, &p), invalid);
    assert_eq!(input.bytes(), before_in);
    assert_eq!(output.bytes(), before_out);
    p.struct_size = std::mem::offset_of!(f2i_upscale_params, memory) as u32;
    let host_out = Img::new(pf::F2I_PIXEL_RGB8, 24, 20, 0, false);
    assert_eq!(upscale(&e, &host_in, &host_out, &p), f2i_status::F2I_OK);
    // Device memory on a CPU engine.
    let cpu = Engine::new(f2i_device::F2I_DEVICE_CPU);
    let mut p = params();
    device(&mut p);
    assert_eq!(
        upscale(&cpu, &input, &output, &p),
        f2i_status::F2I_ERR_UNSUPPORTED
    );
    // SAFETY: live engine; NULL params and out are allowed.
    let s = unsafe { f2i_engine_reserve(cpu.0, std::ptr::null(), 8, 8, std::ptr::null_mut()) };
    assert_eq!(s, f2i_status::F2I_ERR_UNSUPPORTED);
    assert_eq!(input.bytes(), before_in);
    assert_eq!(output.bytes(), before_out);
}

#[test]
fn pinned_host_frames_on_an_integrated_gpu_are_used_in_place() {
    let e = Engine::cuda();
    let mut p = params();
    p.tile_size = F2I_TILE_WHOLE_IMAGE;
    // SAFETY: live engine, readable params; NULL out is allowed.
    let s = unsafe { f2i_engine_reserve(e.0, &p, 8, 6, std::ptr::null_mut()) };
    assert_eq!(s, f2i_status::F2I_OK, "{}", last_error());
    let reserved = e.allocations();
    // Host memory (memory = F2I_MEMORY_HOST) that the driver knows: harness allocations here,
    // pinned or registered memory on a Jetson. It takes the device path in place: no arena is
    // allocated (the reserved one serves), and the result is the pageable path's.
    let (fin, fout) = (pf::F2I_PIXEL_NV12, pf::F2I_PIXEL_BGRA8);
    let pinned_in = Img::filled(fin, 8, 6, 3, true, 6);
    let pinned_out = Img::new(fout, 32, 24, 5, true);
    ok(upscale(&e, &pinned_in, &pinned_out, &p));
    assert_eq!(
        e.allocations(),
        reserved,
        "a pinned frame was not used in place"
    );
    let pageable_in = Img::filled(fin, 8, 6, 3, false, 6);
    let pageable_out = Img::new(fout, 32, 24, 5, false);
    assert_eq!(
        upscale(&e, &pageable_in, &pageable_out, &p),
        f2i_status::F2I_OK
    );
    assert!(
        e.allocations() > reserved,
        "pageable frames take the host path"
    );
    assert!(pinned_out.bytes() == pageable_out.bytes());
}

#[test]
fn two_engines_on_one_model_share_the_weights_and_run_at_once() {
    let a = Engine::cuda();
    let b = Engine::cuda();
    // The second engine uses the weights the first (or another live engine of this process)
    // uploaded: it has allocated nothing yet (its arena and scratch come with its first call).
    assert_eq!(
        b.allocations(),
        0,
        "the second engine uploaded its own weights"
    );
    let mut p = params();
    p.tile_size = F2I_TILE_WHOLE_IMAGE;
    p.memory = f2i_memory::F2I_MEMORY_CUDA as u32;
    p.stream = STREAM;
    let frame = |seed| Img::filled(pf::F2I_PIXEL_NV12, 8, 6, 0, true, seed);
    let (in_a, in_b) = (frame(7), frame(8));
    // Alone, one after the other on engine a.
    let alone: Vec<Vec<u8>> = [&in_a, &in_b]
        .iter()
        .map(|input| {
            let out = Img::new(pf::F2I_PIXEL_RGB8, 32, 24, 0, true);
            assert_eq!(upscale(&a, input, &out, &p), f2i_status::F2I_OK);
            out.bytes()
        })
        .collect();
    // Both engines at once, from two threads.
    struct Shared<'a>(&'a Engine, &'a Img, f2i_upscale_params);
    // SAFETY: each thread uses its own engine and its own input; the C interface allows
    // engines on different threads.
    unsafe impl Send for Shared<'_> {}
    let together: Vec<Vec<u8>> = std::thread::scope(|s| {
        let jobs = [Shared(&a, &in_a, p), Shared(&b, &in_b, p)].map(|job| {
            s.spawn(move || {
                let job = job;
                let out = Img::new(pf::F2I_PIXEL_RGB8, 32, 24, 0, true);
                assert_eq!(upscale(job.0, job.1, &out, &job.2), f2i_status::F2I_OK);
                out.bytes()
            })
        });
        jobs.map(|j| j.join().unwrap()).to_vec()
    });
    assert!(
        together == alone,
        "concurrent engines differ from one engine alone"
    );
}
