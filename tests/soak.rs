//! Concurrency soak through the C interface: several threads, each with its own engine (three
//! on one runtime-LoRA pack file, so they share its pack and networks, one mapped, one on a
//! merged pack), run a few hundred calls with random pixel formats, strides, ROIs, tiles,
//! colour fixes, LoRA scales and cancellations from the progress callback. Every finished call
//! must equal, byte for byte, the same call run alone on one thread beforehand; a cancelled
//! call must leave its engine fully usable. Meant to run under a sanitizer too
//! (docs/SECURITY.md; `scripts/fuzz.sh --ci` runs it under AddressSanitizer,
//! `scripts/tsan-soak.sh` under ThreadSanitizer).

use f2idiff::capi::types::*;
use f2idiff::capi::*;
use f2idiff::convert::{LoraChoice, PackOptions, pack_folder};
use std::ffi::{CString, c_int, c_void};
use std::path::Path;

/// Threads and calls per thread (the soak's size: `F2I_SOAK_CALLS` overrides the latter).
const THREADS: usize = 4;
/// Fewer under qemu-user (scripts/test-aarch64.sh emulates every instruction); the x86-64 run
/// in the same CI is the soak.
const CALLS: usize = if cfg!(target_arch = "aarch64") { 5 } else { 50 };

/// A deterministic xorshift stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const FORMATS: [f2i_pixel_format; 7] = [
    f2i_pixel_format::F2I_PIXEL_RGB8,
    f2i_pixel_format::F2I_PIXEL_RGBA8,
    f2i_pixel_format::F2I_PIXEL_BGR8,
    f2i_pixel_format::F2I_PIXEL_BGRA8,
    f2i_pixel_format::F2I_PIXEL_RGB16,
    f2i_pixel_format::F2I_PIXEL_NV12,
    f2i_pixel_format::F2I_PIXEL_NV12_BT601_FULL,
];

/// (bytes per pixel of the main plane, NV12).
fn layout(f: f2i_pixel_format) -> (usize, bool) {
    use f2i_pixel_format::*;
    match f {
        F2I_PIXEL_RGB8 | F2I_PIXEL_BGR8 => (3, false),
        F2I_PIXEL_RGBA8 | F2I_PIXEL_BGRA8 => (4, false),
        F2I_PIXEL_RGB16 => (6, false),
        F2I_PIXEL_NV12 | F2I_PIXEL_NV12_BT601_FULL => (1, true),
    }
}

/// An image in one buffer (NV12: UV right after Y, `uv_data` NULL).
struct Image {
    format: f2i_pixel_format,
    width: u32,
    height: u32,
    stride: usize,
    bytes: Vec<u8>,
}

impl Image {
    fn new(format: f2i_pixel_format, width: u32, height: u32, pad: usize, rng: &mut Rng) -> Image {
        let (bpp, nv12) = layout(format);
        // NV12's UV rows hold ceil(w/2) pairs: one byte more than Y for an odd width.
        let row = if nv12 {
            2 * width.div_ceil(2) as usize
        } else {
            width as usize * bpp
        };
        let stride = row + pad;
        let uv_rows = if nv12 { height.div_ceil(2) as usize } else { 0 };
        let len = (height as usize + uv_rows) * stride;
        Image {
            format,
            width,
            height,
            stride,
            bytes: (0..len).map(|_| rng.next() as u8).collect(),
        }
    }

    fn descriptor(&mut self) -> f2i_image {
        f2i_image {
            format: self.format as u32,
            width: self.width,
            height: self.height,
            stride: self.stride,
            data: self.bytes.as_mut_ptr().cast(),
            uv_data: std::ptr::null_mut(),
        }
    }
}

/// One call: everything random is drawn here, so a thread and the reference run the same.
#[derive(Clone)]
struct Job {
    engine: usize,
    input_seed: u64,
    in_format: f2i_pixel_format,
    out_format: f2i_pixel_format,
    width: u32,
    height: u32,
    in_pad: usize,
    out_pad: usize,
    roi: Option<f2i_rect>,
    tile: u32,
    overlap: u32,
    color_fix: f2i_color_fix,
    lora_scale: f32,
    /// Cancel after this many tiles (the first call of the callback is tile 1).
    cancel_after: Option<u32>,
}

impl Job {
    fn random(engine: usize, rng: &mut Rng) -> Job {
        let (width, height) = (5 + rng.below(12) as u32, 5 + rng.below(12) as u32);
        let roi = (rng.below(3) == 0).then(|| {
            let (w, h) = (
                1 + rng.below(width as u64) as u32,
                1 + rng.below(height as u64) as u32,
            );
            f2i_rect {
                x: rng.below((width - w + 1) as u64) as u32,
                y: rng.below((height - h + 1) as u64) as u32,
                width: w,
                height: h,
            }
        });
        Job {
            engine,
            input_seed: rng.next() | 1,
            in_format: FORMATS[rng.below(7) as usize],
            out_format: FORMATS[rng.below(7) as usize],
            width,
            height,
            in_pad: [0, 1, 5][rng.below(3) as usize],
            out_pad: [0, 3][rng.below(2) as usize],
            roi,
            tile: [0, 32, 48, 128, F2I_TILE_WHOLE_IMAGE][rng.below(5) as usize],
            // Smaller than every tile above (the default, 64, is not).
            overlap: [0, 8, 16][rng.below(3) as usize],
            color_fix: [
                f2i_color_fix::F2I_COLOR_FIX_WAVELET,
                f2i_color_fix::F2I_COLOR_FIX_ADAIN,
                f2i_color_fix::F2I_COLOR_FIX_NONE,
            ][rng.below(3) as usize],
            lora_scale: [1.0, 0.0, 0.5][rng.below(3) as usize],
            cancel_after: (rng.below(5) == 0).then(|| 1 + rng.below(2) as u32),
        }
    }
}

struct Cancel {
    after: u32,
    calls: u32,
}

unsafe extern "C" fn progress(user: *mut c_void, done: u32, total: u32) -> c_int {
    // SAFETY: `user` is this call's `Cancel`, used only on the calling thread.
    let c = unsafe { &mut *user.cast::<Cancel>() };
    assert!(done >= 1 && done <= total);
    c.calls += 1;
    (c.calls >= c.after) as c_int
}

/// Runs `job` on `engine`: the status and, on success, the output bytes.
fn run(engine: *mut f2i_engine, job: &Job) -> (f2i_status, Vec<u8>) {
    let mut rng = Rng(job.input_seed);
    let mut input = Image::new(job.in_format, job.width, job.height, job.in_pad, &mut rng);
    let before = input.bytes.clone();
    let mut params = std::mem::MaybeUninit::<f2i_upscale_params>::uninit();
    // SAFETY: init writes the whole struct.
    let mut params = unsafe {
        f2i_upscale_params_init(params.as_mut_ptr());
        params.assume_init()
    };
    params.tile_size = job.tile;
    params.tile_overlap = job.overlap;
    params.color_fix = job.color_fix as u32;
    params.lora_scale = job.lora_scale;
    if let Some(roi) = &job.roi {
        params.roi = roi;
    }
    let mut cancel = Cancel {
        after: job.cancel_after.unwrap_or(u32::MAX),
        calls: 0,
    };
    params.progress = Some(progress);
    params.user_data = (&raw mut cancel).cast();
    let (mut ow, mut oh) = (0, 0);
    // SAFETY: a live engine, readable params, writable sizes.
    let s = unsafe { f2i_output_size(engine, job.width, job.height, &params, &mut ow, &mut oh) };
    assert_eq!(s, f2i_status::F2I_OK);
    let mut output = Image::new(job.out_format, ow, oh, job.out_pad, &mut Rng(7));
    let (i, o) = (input.descriptor(), output.descriptor());
    // SAFETY: both descriptors describe the buffers above, which outlive the call.
    let s = unsafe { f2i_upscale(engine, &i, &o, &params) };
    assert!(input.bytes == before, "the input changed");
    (s, output.bytes)
}

fn last_error() -> String {
    // SAFETY: never NULL; valid until this thread's next call.
    unsafe { std::ffi::CStr::from_ptr(f2i_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn engine(path: &CString, map: bool, threads: u32) -> usize {
    let mut opts = std::mem::MaybeUninit::<f2i_engine_options>::uninit();
    // SAFETY: init writes the whole struct.
    let mut opts = unsafe {
        f2i_engine_options_init(opts.as_mut_ptr());
        opts.assume_init()
    };
    opts.device = f2i_device::F2I_DEVICE_CPU as u32;
    opts.num_threads = threads;
    if map {
        opts.flags = F2I_ENGINE_MAP_PACK;
    }
    let mut e = std::ptr::null_mut();
    // SAFETY: a C string, readable options, a writable out pointer.
    let s = unsafe { f2i_engine_create(path.as_ptr(), &opts, &mut e) };
    assert_eq!(s, f2i_status::F2I_OK);
    e as usize
}

fn free(e: usize) {
    // SAFETY: from `engine`, freed once, no call in flight.
    unsafe { f2i_engine_free(e as *mut f2i_engine) };
}

#[test]
fn threads_with_own_engines_match_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    // From the main crate, or from fuzz/ (`scripts/fuzz.sh --ci` builds this file there, with
    // AddressSanitizer, reusing the fuzz targets' build).
    let src = ["tests/data/pack/tiny", "../tests/data/pack/tiny"]
        .map(Path::new)
        .into_iter()
        .find(|p| p.is_dir())
        .expect("tests/data/pack/tiny");
    let pack = |name: &str, lora| {
        let out = dir.path().join(name);
        let opts = PackOptions {
            lora,
            ..PackOptions::default()
        };
        pack_folder(src, &out, &opts).unwrap();
        CString::new(out.to_str().unwrap()).unwrap()
    };
    let runtime = pack("runtime.f2i", LoraChoice::Runtime);
    let merged = pack("merged.f2i", LoraChoice::Merge);
    // Thread t's engine: 0 and 1 share the runtime pack (private), 2 maps it, 3 is merged;
    // 0 and 2 compute on two threads of their own (so their kernels' parallel splits run under
    // the sanitizer too), 1 and 3 on one. The references run on one thread: the output does
    // not depend on the thread count (tests/determinism.rs).
    let engine_spec = [
        (&runtime, false, 2),
        (&runtime, false, 1),
        (&runtime, true, 2),
        (&merged, false, 1),
    ];
    let calls = std::env::var("F2I_SOAK_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CALLS);
    let mut rng = Rng(0x50a6_0001);
    let jobs: Vec<Vec<Job>> = (0..THREADS)
        .map(|t| (0..calls).map(|_| Job::random(t, &mut rng)).collect())
        .collect();

    // Reference: every job that is not cancelled, alone, on one engine per pack and mode.
    let reference: Vec<Vec<Option<Vec<u8>>>> = {
        let refs: Vec<usize> = engine_spec
            .iter()
            .map(|&(p, m, _)| engine(p, m, 1))
            .collect();
        let out = jobs
            .iter()
            .map(|js| {
                js.iter()
                    .map(|j| {
                        j.cancel_after.is_none().then(|| {
                            let (s, out) = run(refs[j.engine] as *mut f2i_engine, j);
                            assert_eq!(s, f2i_status::F2I_OK, "reference: {}", last_error());
                            out
                        })
                    })
                    .collect()
            })
            .collect();
        refs.into_iter().for_each(free);
        out
    };

    std::thread::scope(|scope| {
        for (t, (js, refs)) in jobs.iter().zip(&reference).enumerate() {
            let (path, map, threads) = engine_spec[t];
            scope.spawn(move || {
                let e = engine(path, map, threads) as *mut f2i_engine;
                for (k, (j, expected)) in js.iter().zip(refs).enumerate() {
                    let (s, out) = run(e, j);
                    match expected {
                        Some(expected) => {
                            assert_eq!(s, f2i_status::F2I_OK, "thread {t} call {k}");
                            assert!(&out == expected, "thread {t} call {k}: output differs");
                        }
                        // A cancelled call may still finish when it has fewer tiles.
                        None => assert!(
                            s == f2i_status::F2I_ERR_CANCELLED || s == f2i_status::F2I_OK,
                            "thread {t} call {k}: {s:?}"
                        ),
                    }
                }
                free(e as usize);
            });
        }
    });
}
