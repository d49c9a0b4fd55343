//! The pack reader on mutated packs: preamble, JSON header, tensor table, config consistency
//! (`Pack::from_bytes`, the checks `Pack::open` runs), every tensor's checksum (`verify`), and
//! for a pack that passes, the C API's `f2i_engine_create` on the same bytes as a file (which
//! opens, verifies and builds the networks) and one small upscale.
//!
//! Input: a flags byte (`f2idiff_fuzz::PACK_*`) and the pack's bytes up to its data section.
#![no_main]

use f2idiff::capi::types::*;
use f2idiff::capi::*;
use f2idiff::pack::Pack;
use f2idiff_fuzz::{pack_file, scratch};
use libfuzzer_sys::fuzz_target;
use std::ffi::CString;

fuzz_target!(|input: &[u8]| {
    let file = pack_file(input);
    let Ok(pack) = Pack::from_bytes("fuzz.f2i", &file) else {
        return;
    };
    // Every accessor on a validated pack is safe to call.
    for e in pack.entries() {
        let t = pack.require(&e.name).expect("listed tensor");
        assert_eq!(t.data.len() as u64, e.len);
    }
    if pack.verify().is_err() {
        return;
    }
    drop(pack);
    let path = scratch().join("pack.f2i");
    std::fs::write(&path, &file).expect("scratch write");
    engine_round(&path);
});

/// `f2i_engine_create` on the file, then an 8x8 upscale: typed statuses only, never a panic.
fn engine_round(path: &std::path::Path) {
    let c_path = CString::new(path.to_str().expect("utf-8 scratch")).expect("no NUL");
    let mut opts = std::mem::MaybeUninit::<f2i_engine_options>::uninit();
    // SAFETY: a writable f2i_engine_options.
    unsafe { f2i_engine_options_init(opts.as_mut_ptr()) };
    // SAFETY: initialised by the call above.
    let mut opts = unsafe { opts.assume_init() };
    opts.device = f2i_device::F2I_DEVICE_CPU as u32;
    opts.num_threads = 1;
    let mut engine = std::ptr::null_mut();
    // SAFETY: a NUL-terminated path, readable options, a writable out pointer.
    let st = unsafe { f2i_engine_create(c_path.as_ptr(), &opts, &mut engine) };
    assert_ne!(st, f2i_status::F2I_ERR_INTERNAL);
    if st != f2i_status::F2I_OK {
        assert!(engine.is_null());
        return;
    }
    let (w, h) = (8u32, 8u32);
    let (mut ow, mut oh) = (0u32, 0u32);
    // SAFETY: a live engine, default params, writable outputs.
    let st = unsafe { f2i_output_size(engine, w, h, std::ptr::null(), &mut ow, &mut oh) };
    if st == f2i_status::F2I_OK && (ow as u64) * (oh as u64) <= 1 << 16 {
        let input = vec![128u8; (w * h * 3) as usize];
        let mut output = vec![0u8; (ow * oh * 3) as usize];
        let img = |data: *mut u8, w: u32, h: u32| f2i_image {
            format: f2i_pixel_format::F2I_PIXEL_RGB8 as u32,
            width: w,
            height: h,
            stride: w as usize * 3,
            data: data.cast(),
            uv_data: std::ptr::null_mut(),
        };
        let (i, o) = (
            img(input.as_ptr().cast_mut(), w, h),
            img(output.as_mut_ptr(), ow, oh),
        );
        // SAFETY: both images describe buffers of exactly their declared size.
        let st = unsafe { f2i_upscale(engine, &i, &o, std::ptr::null()) };
        assert_ne!(st, f2i_status::F2I_ERR_INTERNAL);
        assert!(input.iter().all(|&b| b == 128), "input changed");
    }
    // SAFETY: created above, freed once.
    unsafe { f2i_engine_free(engine) };
}
