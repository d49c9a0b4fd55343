//! A pack file that changes under a live engine. By default (`PackLoad::Private`, and the C API
//! without `F2I_ENGINE_MAP_PACK`) a pack is read into private memory at open: truncating the
//! file, rewriting it in place or deleting it leaves running engines computing exactly what they
//! computed before, and opening the damaged file again is a typed error, never a crash. The
//! mapped mode is an explicit opt-in whose safe replacement is a rename over the file.
//!
//! The packs here are f32, so the CPU backend uses their weights in place from the pack's
//! memory: with a map, the truncations below would raise SIGBUS at the next upscale (the last
//! test shows it in a child process).

mod common;

use f2idiff::Error;
use f2idiff::backend::cpu::CpuBackend;
use f2idiff::capi::types::{
    F2I_ENGINE_MAP_PACK, f2i_engine_options, f2i_image, f2i_pixel_format, f2i_status,
};
use f2idiff::capi::*;
use f2idiff::convert::{LoraChoice, PackOptions, pack_folder};
use f2idiff::engine::Networks;
use f2idiff::pack::{Pack, PackLoad};
use f2idiff::pipeline::{UpscaleOptions, upscale};
use f2idiff::tensor::DType;
use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const W: usize = 12;

/// The sd test model as an f32 pack at `dir/name`.
fn f32_pack(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let opts = PackOptions {
        dtype: DType::F32,
        lora: LoraChoice::Merge,
        lora_alpha: None,
    };
    pack_folder(Path::new("tests/data/engine/sd"), &out, &opts).unwrap();
    out
}

/// The ways a file changes under an engine, each applied to the pack at `path`.
fn damage(path: &Path, how: &str) {
    match how {
        "truncate to half" => {
            let len = std::fs::metadata(path).unwrap().len();
            let f = OpenOptions::new().write(true).open(path).unwrap();
            f.set_len(len / 2).unwrap();
        }
        "truncate to zero" => {
            OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
        "overwrite in place" => {
            // Same length, every byte changed, through the same inode.
            let len = std::fs::metadata(path).unwrap().len() as usize;
            let mut f = OpenOptions::new().write(true).open(path).unwrap();
            f.write_all(&vec![0xA5; len]).unwrap();
            f.sync_all().unwrap();
        }
        "delete" => std::fs::remove_file(path).unwrap(),
        _ => unreachable!("{how}"),
    }
}

const DAMAGE: [&str; 4] = [
    "truncate to half",
    "overwrite in place",
    "truncate to zero",
    "delete",
];

fn lr() -> Vec<f32> {
    (0..3 * W * W)
        .map(|i| ((i * 37 + i / 5) % 251) as f32 / 255.0)
        .collect()
}

/// The output's bits through the library.
fn run_lib(nets: &Networks<CpuBackend>, backend: &CpuBackend) -> Vec<u32> {
    let sr = upscale(
        nets,
        backend,
        &lr(),
        W,
        W,
        &UpscaleOptions::default(),
        &mut |_, _| true,
    )
    .unwrap();
    sr.data.iter().map(|v| v.to_bits()).collect()
}

/// Whether this process maps `path` (from `/proc/self/maps`); `None` where that cannot be told.
fn maps_file(path: &Path) -> Option<bool> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let path = std::fs::canonicalize(path).ok()?;
    let path = path.to_str()?;
    Some(maps.lines().any(|l| l.ends_with(path)))
}

#[test]
fn a_private_pack_is_unaffected_by_truncation_rewrite_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let original = f32_pack(dir.path(), "original.f2i");
    let path = dir.path().join("live.f2i");
    std::fs::copy(&original, &path).unwrap();
    let pack = Arc::new(Pack::open(&path).unwrap());
    assert_eq!(pack.load_mode(), PackLoad::Private);
    assert_ne!(maps_file(&path), Some(true), "a private pack maps its file");
    // Tensor data keeps the format's alignment in private memory (f32 weights are used in
    // place as &[f32]).
    for e in pack.entries() {
        let t = pack.tensor(&e.name).unwrap();
        assert_eq!(t.data.as_ptr() as usize % 256, 0, "{}", e.name);
    }
    let backend = CpuBackend::new(2).unwrap();
    let nets = Networks::load(&backend, pack.clone(), 1.0).unwrap();
    let want = run_lib(&nets, &backend);
    for how in DAMAGE {
        damage(&path, how);
        assert_eq!(run_lib(&nets, &backend), want, "after `{how}`");
        pack.verify().unwrap();
        // Opening what is left is an error (I/O, truncated, bad magic), not a crash.
        let err = Pack::open(&path).err();
        assert!(
            matches!(
                err,
                Some(Error::Io { .. } | Error::Truncated { .. } | Error::BadMagic { .. })
            ),
            "reopening after `{how}`: {err:?}"
        );
        // Restore a good file for the next kind of damage (same path, new content).
        std::fs::copy(&original, &path).unwrap();
    }
}

#[test]
fn a_mapped_pack_is_opt_in_and_survives_a_rename_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = f32_pack(dir.path(), "live.f2i");
    let pack = Arc::new(Pack::open_with(&path, PackLoad::Mapped).unwrap());
    assert_eq!(pack.load_mode(), PackLoad::Mapped);
    assert_ne!(
        maps_file(&path),
        Some(false),
        "a mapped pack does not map its file"
    );
    let backend = CpuBackend::new(2).unwrap();
    let nets = Networks::load(&backend, pack.clone(), 1.0).unwrap();
    let want = run_lib(&nets, &backend);
    // The same model read privately computes the same bits.
    let private = Networks::load(&backend, Arc::new(Pack::open(&path).unwrap()), 1.0).unwrap();
    assert_eq!(run_lib(&private, &backend), want);
    // A different model renamed over the path (what `write_pack` does): the map keeps the old
    // file, so nothing changes.
    let other = dir.path().join("tmp.f2i");
    std::fs::write(&other, vec![0u8; 4096]).unwrap();
    std::fs::rename(&other, &path).unwrap();
    assert_eq!(run_lib(&nets, &backend), want);
    pack.verify().unwrap();
}

// ------------------------------------------------------------------------------ the C API

fn c_path(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

fn options(flags: u64) -> f2i_engine_options {
    let mut o = std::mem::MaybeUninit::<f2i_engine_options>::uninit();
    // SAFETY: init writes the whole struct.
    let mut o = unsafe {
        f2i_engine_options_init(o.as_mut_ptr());
        o.assume_init()
    };
    o.device = f2idiff::capi::types::f2i_device::F2I_DEVICE_CPU as u32;
    o.flags = flags;
    o
}

/// An engine on `path`, or the status of the failure.
fn create(path: &Path, opts: &f2i_engine_options) -> Result<Engine, f2i_status> {
    let mut engine = std::ptr::null_mut();
    let path = c_path(path);
    // SAFETY: a valid C string, readable options and a writable out-pointer.
    let s = unsafe { f2i_engine_create(path.as_ptr(), opts, &mut engine) };
    match s {
        f2i_status::F2I_OK => Ok(Engine(engine)),
        s => {
            assert!(engine.is_null());
            Err(s)
        }
    }
}

struct Engine(*mut f2idiff::capi::f2i_engine);

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: created by f2i_engine_create, freed once.
        unsafe { f2i_engine_free(self.0) };
    }
}

impl Engine {
    /// RGB8 upscale of the 12×12 test input with default parameters.
    fn upscale(&self) -> Result<Vec<u8>, f2i_status> {
        let mut src: Vec<u8> = lr().iter().map(|v| (v * 255.0).round() as u8).collect();
        let mut out = vec![0u8; 4 * W * 4 * W * 3];
        let image = |data: *mut u8, side: usize| f2i_image {
            format: f2i_pixel_format::F2I_PIXEL_RGB8 as u32,
            width: side as u32,
            height: side as u32,
            stride: side * 3,
            data: data.cast(),
            uv_data: std::ptr::null_mut(),
        };
        let (i, o) = (image(src.as_mut_ptr(), W), image(out.as_mut_ptr(), 4 * W));
        // SAFETY: both images describe live buffers of their sizes; the engine is live; NULL
        // parameters mean defaults.
        match unsafe { f2i_upscale(self.0, &i, &o, std::ptr::null()) } {
            f2i_status::F2I_OK => Ok(out),
            s => Err(s),
        }
    }
}

#[test]
fn a_c_engine_is_unaffected_by_truncation_rewrite_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let original = f32_pack(dir.path(), "original.f2i");
    let path = dir.path().join("live.f2i");
    std::fs::copy(&original, &path).unwrap();
    let engine = create(&path, &options(0)).unwrap();
    let want = engine.upscale().unwrap();
    for how in DAMAGE {
        damage(&path, how);
        assert_eq!(engine.upscale(), Ok(want.clone()), "after `{how}`");
        // A new engine on what is left: a typed error, no crash.
        let err = create(&path, &options(0)).err();
        assert!(
            matches!(
                err,
                Some(f2i_status::F2I_ERR_IO | f2i_status::F2I_ERR_FORMAT)
            ),
            "new engine after `{how}`: {err:?}"
        );
        std::fs::copy(&original, &path).unwrap();
    }
}

#[test]
fn c_engine_flags_map_on_request_and_are_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let path = f32_pack(dir.path(), "live.f2i");
    let private = create(&path, &options(0)).unwrap();
    let want = private.upscale().unwrap();
    assert_ne!(
        maps_file(&path),
        Some(true),
        "a default engine maps its pack"
    );
    // Mapped on request, even while a private engine on the same file lives (engines share a
    // pack only when they asked for the same mode).
    let mapped = create(&path, &options(F2I_ENGINE_MAP_PACK)).unwrap();
    assert_ne!(
        maps_file(&path),
        Some(false),
        "F2I_ENGINE_MAP_PACK did not map the pack"
    );
    drop(private);
    assert_eq!(mapped.upscale(), Ok(want.clone()));
    // The supported way to replace a mapped model: rename a new file over it.
    let other = dir.path().join("tmp.f2i");
    std::fs::write(&other, vec![0u8; 4096]).unwrap();
    std::fs::rename(&other, &path).unwrap();
    assert_eq!(mapped.upscale(), Ok(want.clone()));
    drop(mapped);
    let path = f32_pack(dir.path(), "again.f2i");
    // Unknown flag bits are refused.
    for bad in [2u64, 1 << 63, F2I_ENGINE_MAP_PACK | 4] {
        assert_eq!(
            create(&path, &options(bad)).err(),
            Some(f2i_status::F2I_ERR_INVALID_ARGUMENT),
            "flags {bad:#x}"
        );
    }
    // A caller built before `flags` existed passes a smaller struct_size: whatever lies where
    // `flags` now is must be ignored (not refused as unknown bits).
    let mut old = options(u64::MAX);
    old.struct_size = std::mem::offset_of!(f2i_engine_options, flags) as u32;
    assert_eq!(create(&path, &old).unwrap().upscale(), Ok(want));
}

/// Child of the test below: a mapped f32 pack truncated under a live engine.
#[test]
#[ignore = "run by mapped_truncation_is_what_the_private_default_prevents in a child process"]
fn mapped_truncation_child() {
    let Some(dir) = std::env::var_os("F2I_MAPPED_TRUNCATION_CHILD") else {
        return;
    };
    let path = f32_pack(Path::new(&dir), "live.f2i");
    let pack = Arc::new(Pack::open_with(&path, PackLoad::Mapped).unwrap());
    let backend = CpuBackend::new(1).unwrap();
    let nets = Networks::load(&backend, pack, 1.0).unwrap();
    run_lib(&nets, &backend);
    damage(&path, "truncate to zero");
    run_lib(&nets, &backend);
}

/// Why the default is private memory: the same truncation under a mapped pack kills the
/// process (SIGBUS) on Linux. Checked in a child process.
#[cfg(target_os = "linux")]
#[test]
fn mapped_truncation_is_what_the_private_default_prevents() {
    use std::os::unix::process::ExitStatusExt;
    if common::skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "mapped_truncation_child",
            "--ignored",
            "--nocapture",
        ])
        .env("F2I_MAPPED_TRUNCATION_CHILD", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(7), // SIGBUS
        "child: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
