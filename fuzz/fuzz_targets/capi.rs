//! The C boundary: `f2i_upscale` (and `f2i_output_size`, and sometimes `f2i_engine_create`)
//! called as a C host would, with arbitrary `f2i_image` descriptors (format, size, stride, NV12
//! plane placement, output overlapping the input), params (`struct_size`, scale, ROI, tile,
//! overlap, colour fix, LoRA scale, ensemble, a cancelling progress callback) and engine
//! options, on the tiny model of `tests/data/pack/tiny` (merged and runtime LoRA). The
//! descriptors are fuzzed, never the memory: every buffer is allocated here to the size its
//! descriptor declares.
//!
//! Oracle: every call returns `F2I_OK` or a typed status (never `F2I_ERR_INTERNAL`, a caught
//! panic), the input is unchanged, the output's row padding is never written, progress counts
//! are sane, and a successful call returns finite pixels (no NaN for RGB16 is implicit).
#![no_main]

use f2idiff::capi::types::*;
use f2idiff::capi::*;
use f2idiff::convert::{LoraChoice, PackOptions, pack_folder};
use f2idiff_fuzz::{Bytes, scratch, tiny_folder};
use libfuzzer_sys::fuzz_target;
use std::ffi::{CString, c_int, c_void};
use std::sync::OnceLock;

/// Largest buffer one descriptor may need; larger ones are skipped (cost, not correctness).
const MAX_BUFFER: u64 = 1 << 20;
/// Byte that fills the output before a call: where it survives, nothing was written.
const CANARY: u8 = 0xA5;

/// The tiny model packed with merged and with runtime LoRA.
fn packs() -> &'static [CString; 2] {
    static PACKS: OnceLock<[CString; 2]> = OnceLock::new();
    PACKS.get_or_init(|| {
        [
            ("merged", LoraChoice::Merge),
            ("runtime", LoraChoice::Runtime),
        ]
        .map(|(name, lora)| {
            let out = scratch().join(format!("tiny-{name}.f2i"));
            let opts = PackOptions {
                lora,
                ..PackOptions::default()
            };
            pack_folder(&tiny_folder(), &out, &opts).expect("tiny model packs");
            CString::new(out.to_str().expect("utf-8")).expect("no NUL")
        })
    })
}

fn options() -> f2i_engine_options {
    let mut opts = std::mem::MaybeUninit::<f2i_engine_options>::uninit();
    // SAFETY: a writable f2i_engine_options.
    unsafe { f2i_engine_options_init(opts.as_mut_ptr()) };
    // SAFETY: initialised by the call above.
    unsafe { opts.assume_init() }
}

fn create(path: &CString, opts: &f2i_engine_options) -> Result<usize, f2i_status> {
    let mut engine = std::ptr::null_mut();
    // SAFETY: a NUL-terminated path, readable options, a writable out pointer.
    let st = unsafe { f2i_engine_create(path.as_ptr(), opts, &mut engine) };
    assert_ne!(st, f2i_status::F2I_ERR_INTERNAL, "{}", last_error());
    match st {
        f2i_status::F2I_OK => Ok(engine as usize),
        st => {
            assert!(engine.is_null());
            Err(st)
        }
    }
}

/// One CPU engine (one thread) per pack, made once per process (as addresses: raw pointers
/// are not `Sync`).
fn engines() -> &'static [usize; 2] {
    static ENGINES: OnceLock<[usize; 2]> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let mut opts = options();
        opts.device = f2i_device::F2I_DEVICE_CPU as u32;
        opts.num_threads = 1;
        packs()
            .each_ref()
            .map(|p| create(p, &opts).expect("tiny engine"))
    })
}

fn last_error() -> String {
    // SAFETY: f2i_last_error never returns NULL and its string lives until the next call.
    unsafe { std::ffi::CStr::from_ptr(f2i_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Bytes per pixel of the main plane (NV12: of the Y plane); unknown formats get 4.
fn bytes_per_pixel(format: u32) -> u64 {
    match format {
        0 | 2 => 3,
        1 | 3 => 4,
        4 => 6,
        _ if is_nv12(format) => 1,
        _ => 4,
    }
}

fn is_nv12(format: u32) -> bool {
    format == 5 || format == 6
}

/// How an image is laid out in the buffer this target allocates for it.
struct Layout {
    format: u32,
    width: u32,
    height: u32,
    stride: u64,
    /// NV12: 0 = UV right after Y (uv_data NULL), 1 = separate buffer, 2 = UV on top of Y.
    uv_mode: u8,
}

impl Layout {
    fn read(b: &mut Bytes, width: u32, height: u32) -> Layout {
        let format = b.pick(&[0, 1, 2, 3, 4, 5, 6, 7]);
        let row = width as u64 * bytes_per_pixel(format);
        let stride = match b.u8() {
            0..=159 => row,
            160..=239 => row + (b.u8() % 17) as u64,
            240..=249 => row.saturating_sub(1 + b.u8() as u64 % 4),
            _ => b.u32() as u64,
        };
        Layout {
            format,
            width,
            height,
            stride,
            uv_mode: b.u8() % 3,
        }
    }

    fn row_bytes(&self) -> u64 {
        self.width as u64 * bytes_per_pixel(self.format)
    }

    /// (start, row bytes, rows) of each plane within the main buffer (UV in its own buffer is
    /// the second entry with start 0).
    fn planes(&self) -> Vec<(u64, u64, u64)> {
        let (w, h) = (self.width as u64, self.height as u64);
        let mut p = vec![(0, self.row_bytes(), h)];
        if is_nv12(self.format) {
            let start = match self.uv_mode {
                0 => h * self.stride,
                _ => 0,
            };
            p.push((start, 2 * w.div_ceil(2), h.div_ceil(2)));
        }
        p
    }

    /// Saturates: sizes past [`MAX_BUFFER`] are skipped anyway.
    fn plane_len(&self, rows: u64, row_bytes: u64) -> u64 {
        (rows - 1)
            .saturating_mul(self.stride.max(row_bytes))
            .saturating_add(row_bytes)
    }

    /// Bytes of the main buffer and of a separate UV buffer, or None when too large.
    fn sizes(&self) -> Option<(u64, u64)> {
        if self.width == 0 || self.height == 0 || self.stride > MAX_BUFFER {
            return None;
        }
        let planes = self.planes();
        let (_, rb, rows) = planes[0];
        let mut main = self
            .plane_len(rows, rb)
            .max(rows.saturating_mul(self.stride));
        let mut uv = 0;
        if let Some(&(start, rb, rows)) = planes.get(1) {
            let len = self.plane_len(rows, rb);
            match self.uv_mode {
                0 => main = main.max(start.saturating_add(len)),
                1 => uv = len,
                _ => main = main.max(len),
            }
        }
        (main <= MAX_BUFFER && uv <= MAX_BUFFER).then_some((main, uv))
    }
}

/// An image's memory and its descriptor.
struct Image {
    layout: Layout,
    main: Vec<u8>,
    uv: Vec<u8>,
}

impl Image {
    fn new(layout: Layout, fill: impl FnMut(usize) -> u8) -> Option<Image> {
        let (main, uv) = layout.sizes()?;
        let mut fill = fill;
        Some(Image {
            main: (0..main as usize).map(&mut fill).collect(),
            uv: (0..uv as usize).map(fill).collect(),
            layout,
        })
    }

    /// The descriptor, its data at `main` (which is this image's buffer or holds it).
    fn descriptor(&mut self, main: *mut u8) -> f2i_image {
        let uv_data: *mut c_void = match (is_nv12(self.layout.format), self.layout.uv_mode) {
            (true, 1) => self.uv.as_mut_ptr().cast(),
            (true, 2) => main.cast(),
            _ => std::ptr::null_mut(),
        };
        f2i_image {
            format: self.layout.format,
            width: self.layout.width,
            height: self.layout.height,
            stride: self.layout.stride as usize,
            data: main.cast(),
            uv_data,
        }
    }

    /// Checks that only pixel rows of the planes changed from [`CANARY`].
    fn check_padding(&self) {
        let l = &self.layout;
        let mut main_ok = vec![false; self.main.len()];
        let mut uv_ok = vec![false; self.uv.len()];
        for (i, &(start, rb, rows)) in l.planes().iter().enumerate() {
            let mask = if i == 1 && l.uv_mode == 1 {
                &mut uv_ok
            } else {
                &mut main_ok
            };
            for r in 0..rows {
                let at = (start + r * l.stride) as usize;
                for m in mask.iter_mut().skip(at).take(rb as usize) {
                    *m = true;
                }
            }
        }
        for (buf, ok) in [(&self.main, main_ok), (&self.uv, uv_ok)] {
            for (i, (&b, ok)) in buf.iter().zip(ok).enumerate() {
                assert!(
                    ok || b == CANARY,
                    "byte {i} outside the output's rows was written"
                );
            }
        }
    }
}

/// What the progress callback sees and does.
#[derive(Default)]
struct Progress {
    cancel_at: u32,
    calls: u32,
    last_done: u32,
    total: u32,
}

unsafe extern "C" fn progress(user: *mut c_void, done: u32, total: u32) -> c_int {
    // SAFETY: `user` is the `Progress` this target passed for this call, on this thread.
    let p = unsafe { &mut *user.cast::<Progress>() };
    assert!(done >= 1 && done <= total, "progress {done}/{total}");
    assert!(done > p.last_done, "progress went back");
    assert!(p.total == 0 || p.total == total, "total changed");
    (p.calls, p.last_done, p.total) = (p.calls + 1, done, total);
    (p.calls >= p.cancel_at) as c_int
}

fn side(b: &mut Bytes) -> u32 {
    match b.u8() {
        0..=249 => 1 + b.u8() as u32 % 24,
        250..=252 => 0,
        _ => b.pick(&[65536, 65537, 40000, 1]),
    }
}

fuzz_target!(|input: &[u8]| {
    let mut b = Bytes(input);
    let mode = b.u8();
    let runtime = mode & 1;
    let mut own_engine = None::<OwnEngine>;
    let engine = if mode & 0x1e == 0x1e {
        // A fresh engine from fuzzed options (threads capped: see docs/SECURITY.md).
        let mut opts = options();
        opts.struct_size = b.pick(&[opts.struct_size, 24, 28, 0, 23, opts.struct_size + 8]);
        opts.device = b.pick(&[0, 1, 1, 2, 3]);
        opts.device_index = b.pick(&[0, u32::MAX, 1, 7]) as i32;
        opts.num_threads = b.u8() as u32 % 3;
        opts.memory_budget_bytes = [0, 1, 1 << 20, 1 << 40, u64::MAX][b.u8() as usize % 5];
        opts.precision = b.pick(&[0, 1, 2]);
        opts.flags = b.pick(&[0, 1, 2, 3]) as u64;
        match create(&packs()[runtime as usize], &opts) {
            Ok(e) => own_engine.insert(OwnEngine(e)).0,
            Err(_) => return,
        }
    } else {
        engines()[runtime as usize]
    } as *mut f2i_engine;

    // Params.
    let mut params = std::mem::MaybeUninit::<f2i_upscale_params>::uninit();
    // SAFETY: a writable f2i_upscale_params.
    unsafe { f2i_upscale_params_init(params.as_mut_ptr()) };
    // SAFETY: initialised by the call above.
    let mut params = unsafe { params.assume_init() };
    let size = params.struct_size;
    // The current size, older headers' (before `memory`, before `ensemble`), and sizes that
    // must be refused.
    let v2 = std::mem::offset_of!(f2i_upscale_params, memory) as u32;
    let v5 = std::mem::offset_of!(f2i_upscale_params, ensemble) as u32;
    params.struct_size = b.pick(&[size, size, size, v2, v5, 0, size - 1, v2 - 1, size + 16]);
    // Host memory, or "device memory" that is really host memory (a CPU engine must refuse it).
    params.memory = b.pick(&[0, 0, 0, 1, 2]);
    params.scale = b.pick(&[0, 0, 4, 2, 8]);
    params.tile_size = b.pick(&[0, 0, F2I_TILE_WHOLE_IMAGE, 32, 64, 128, 12, 8]);
    params.tile_overlap = b.pick(&[F2I_OVERLAP_DEFAULT, 0, 4, 8, 16, 64, 3]);
    params.color_fix = b.pick(&[0, 1, 2, 3]);
    // The model's ensemble, one to four copies, and sizes that must be refused.
    params.ensemble = b.pick(&[0, 0, 0, 1, 2, 4, 3, u32::MAX]);
    params.lora_scale =
        [1.0, 0.0, 0.5, -2.0, 1e30, f32::NAN, f32::INFINITY, 3.5][b.u8() as usize % 8];
    let (in_w, in_h) = (side(&mut b), side(&mut b));
    let roi = f2i_rect {
        x: b.u8() as u32 % 32,
        y: b.u8() as u32 % 32,
        width: b.pick(&[1, 2, 5, 8, 16, 0, 24]),
        height: b.pick(&[1, 2, 5, 8, 16, 0, 24]),
    };
    if b.u8() % 4 == 0 {
        params.roi = &roi;
    }
    let mut prog = Progress {
        cancel_at: 1 + b.u8() as u32 % 4,
        ..Progress::default()
    };
    // Cost control, not correctness: without a callback, small tiles make a call slow, and a
    // whole-image tile on a large input makes attention quadratic in its pixels. Such calls
    // get a tiled run that the callback cancels early.
    let small_tiles = matches!(params.tile_size, 8 | 12 | 32);
    let large = in_w as u64 * in_h as u64 > 32 * 32;
    if large {
        params.tile_size = 64;
        prog.cancel_at = 1;
    }
    if b.bool() || small_tiles || large {
        params.progress = Some(progress);
        params.user_data = (&raw mut prog).cast();
    }

    // Input: random pixels; sometimes the output lives in the same buffer, overlapping it.
    let in_layout = Layout::read(&mut b, in_w, in_h);
    let mut seed = b.u32() | 1;
    let Some(mut src) = Image::new(in_layout, |_| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as u8
    }) else {
        return;
    };

    let (mut ow, mut oh) = (0u32, 0u32);
    // SAFETY: a live engine, readable params (roi points to a live rect), writable outputs.
    let st = unsafe { f2i_output_size(engine, in_w, in_h, &params, &mut ow, &mut oh) };
    assert_ne!(st, f2i_status::F2I_ERR_INTERNAL, "{}", last_error());
    if st != f2i_status::F2I_OK {
        (ow, oh) = (in_w.saturating_mul(4), in_h.saturating_mul(4));
    }
    match b.u8() {
        0..=229 => {}
        230..=239 => ow = ow.wrapping_add(1),
        240..=249 => oh = oh.wrapping_sub(4),
        _ => (ow, oh) = (oh, ow),
    }
    let out_layout = Layout::read(&mut b, ow, oh);
    let Some(mut dst) = Image::new(out_layout, |_| CANARY) else {
        return;
    };
    let overlap = b.u8() % 16 == 0;

    let in_main_before = src.main.clone();
    let in_uv_before = src.uv.clone();
    let status = if overlap {
        // One buffer: the input at its start, the output `shift` bytes in.
        let (_, rb, rows) = src.layout.planes()[0];
        let span = src.layout.plane_len(rows, rb) as usize;
        let shift = b.u16() as usize % span;
        let mut shared = src.main.clone();
        shared.resize(shift + dst.main.len().max(src.main.len()), CANARY);
        let before = shared.clone();
        let in_desc = src.descriptor(shared.as_mut_ptr());
        // SAFETY: `shift` is inside `shared`, which holds the output's bytes past it.
        let out_desc = dst.descriptor(unsafe { shared.as_mut_ptr().add(shift) });
        // SAFETY: every descriptor describes memory allocated here to its declared size.
        let st = unsafe { f2i_upscale(engine, &in_desc, &out_desc, &params) };
        assert_ne!(st, f2i_status::F2I_OK, "overlapping buffers were accepted");
        assert!(shared == before, "a refused call wrote memory");
        st
    } else {
        let (in_ptr, out_ptr) = (src.main.as_mut_ptr(), dst.main.as_mut_ptr());
        let in_desc = src.descriptor(in_ptr);
        let out_desc = dst.descriptor(out_ptr);
        // SAFETY: every descriptor describes memory allocated here to its declared size.
        unsafe { f2i_upscale(engine, &in_desc, &out_desc, &params) }
    };
    assert_ne!(status, f2i_status::F2I_ERR_INTERNAL, "{}", last_error());
    assert!(
        src.main == in_main_before && src.uv == in_uv_before,
        "the input changed"
    );
    if !overlap {
        dst.check_padding();
    }
    if status == f2i_status::F2I_ERR_CANCELLED {
        assert!(params.progress.is_some() && prog.calls >= prog.cancel_at);
    }
});

/// An engine made for one input, freed on every way out.
struct OwnEngine(usize);

impl Drop for OwnEngine {
    fn drop(&mut self) {
        // SAFETY: from `f2i_engine_create`, freed once, no call in flight.
        unsafe { f2i_engine_free(self.0 as *mut f2i_engine) };
    }
}
