//! NVRTC, loaded by hand (dlopen through libloading) rather than through cudarc: a cudarc build
//! for CUDA 12.x does not look for `libnvrtc.so.13`, which is all a CUDA 13 system (driver 580,
//! JetPack 7) has. Search order: `$F2I_NVRTC_PATH`, `libnvrtc.so`, `libnvrtc.so.13`,
//! `libnvrtc.so.12`, then versioned 12.x names.
//!
//! Kernels are compiled to CUBIN for the device's real architecture (`sm_XY`), never loaded
//! from PTX: PTX from a newer NVRTC than the driver fails to load. PTX (`compute_XY`) is only
//! produced for `f2idiff kernels build --ptx` (ptxas reports in CI).

use super::super::precision::Precision;
use super::super::sources::{HEADERS, Module};
use crate::error::{Error, Result};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::OnceLock;

type NvrtcResult = c_int;
type Program = *mut c_void;

type VersionFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> NvrtcResult;
type CreateFn = unsafe extern "C" fn(
    *mut Program,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> NvrtcResult;
type CompileFn = unsafe extern "C" fn(Program, c_int, *const *const c_char) -> NvrtcResult;
type SizeFn = unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult;
type GetFn = unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult;
type DestroyFn = unsafe extern "C" fn(*mut Program) -> NvrtcResult;
type ErrorStringFn = unsafe extern "C" fn(NvrtcResult) -> *const c_char;
type NumArchsFn = unsafe extern "C" fn(*mut c_int) -> NvrtcResult;
type ArchsFn = unsafe extern "C" fn(*mut c_int) -> NvrtcResult;

/// What to produce: CUBIN for a real architecture (loaded by the driver) or PTX for the virtual
/// one (for ptxas reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Cubin,
    Ptx,
}

/// A loaded NVRTC library and the entry points the backend uses.
pub struct Nvrtc {
    /// The file the dynamic loader opened (from `dladdr`), or the name it was asked for.
    pub path: String,
    /// `nvrtcVersion()`: (major, minor).
    pub version: (i32, i32),
    create: CreateFn,
    compile: CompileFn,
    log_size: SizeFn,
    log: GetFn,
    cubin_size: SizeFn,
    cubin: GetFn,
    ptx_size: SizeFn,
    ptx: GetFn,
    destroy: DestroyFn,
    error_string: ErrorStringFn,
    num_archs: Option<NumArchsFn>,
    archs: Option<ArchsFn>,
    _lib: libloading::Library,
}

impl std::fmt::Debug for Nvrtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nvrtc")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The library names tried, in order (after `$F2I_NVRTC_PATH`): the loader's search path
/// first, then the usual toolkit folders (`$CUDA_HOME`, `$CUDA_PATH`, `/usr/local/cuda`), which
/// are often not on it.
pub fn candidates() -> Vec<String> {
    let mut names: Vec<String> = ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    names.extend((0..=9).rev().map(|minor| format!("libnvrtc.so.12.{minor}")));
    let mut roots: Vec<String> = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .collect();
    roots.push("/usr/local/cuda".into());
    let target = format!("targets/{}-linux/lib", std::env::consts::ARCH);
    let mut paths = Vec::new();
    for root in &roots {
        for lib in ["lib64", target.as_str()] {
            for name in ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"] {
                let p = format!("{root}/{lib}/{name}");
                if std::path::Path::new(&p).exists() && !paths.contains(&p) {
                    paths.push(p);
                }
            }
        }
    }
    names.extend(paths);
    names
}

/// The file a symbol of a loaded library lives in (`dladdr`), when the platform says.
pub(crate) fn library_file(symbol: *const c_void) -> Option<String> {
    #[cfg(unix)]
    {
        // SAFETY: `info` is a plain C struct that dladdr fills in; `symbol` is only used as an
        // address to look up, never dereferenced. dli_fname, when non-null, is a NUL-terminated
        // string owned by the loader, copied before returning.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            if libc::dladdr(symbol, &mut info) != 0 && !info.dli_fname.is_null() {
                return Some(
                    CStr::from_ptr(info.dli_fname)
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let _ = symbol;
    None
}

impl Nvrtc {
    /// The process-wide NVRTC, loaded on first use.
    pub fn global() -> Result<&'static Nvrtc> {
        static NVRTC: OnceLock<std::result::Result<Nvrtc, String>> = OnceLock::new();
        NVRTC
            .get_or_init(|| Nvrtc::load().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Unsupported(e.trim_start_matches("unsupported: ").to_string()))
    }

    /// Opens NVRTC: `$F2I_NVRTC_PATH` when set (and only it), else the first of [`candidates`].
    pub fn load() -> Result<Nvrtc> {
        if let Some(path) = std::env::var_os("F2I_NVRTC_PATH").filter(|p| !p.is_empty()) {
            return Nvrtc::open(&path.to_string_lossy()).map_err(|e| {
                Error::Unsupported(format!("F2I_NVRTC_PATH={}: {e}", path.to_string_lossy()))
            });
        }
        let mut tried = Vec::new();
        for name in candidates() {
            match Nvrtc::open(&name) {
                Ok(n) => return Ok(n),
                Err(e) => tried.push(format!("{name} ({e})")),
            }
        }
        Err(Error::Unsupported(format!(
            "no NVRTC (libnvrtc.so) found to compile the CUDA kernels: install the CUDA runtime \
             compiler (e.g. pip nvidia-cuda-nvrtc-cu12) and set F2I_NVRTC_PATH or \
             LD_LIBRARY_PATH, or point F2I_KERNEL_DIR at cubins from `f2idiff kernels build`; \
             tried {}",
            tried
                .iter()
                .map(|t| t.split(" (").next().unwrap_or(t))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    fn open(name: &str) -> std::result::Result<Nvrtc, String> {
        // SAFETY: loading NVRTC runs its initialisers, which have no preconditions; the library
        // is kept alive in `_lib` for as long as the function pointers below are used.
        let lib = unsafe { libloading::Library::new(name) }.map_err(|e| e.to_string())?;
        /// Copies a function pointer out of the library.
        fn sym<F: Copy>(lib: &libloading::Library, name: &str) -> std::result::Result<F, String> {
            // SAFETY: every `F` used below is the C signature NVRTC documents for `name`
            // (stable since CUDA 11); the pointer stays valid while `lib` lives.
            unsafe { lib.get::<F>(name.as_bytes()) }
                .map(|s| *s)
                .map_err(|e| format!("missing symbol {name}: {e}"))
        }
        let version_fn: VersionFn = sym(&lib, "nvrtcVersion")?;
        let (mut major, mut minor) = (0, 0);
        // SAFETY: both out-pointers are valid for writes.
        if unsafe { version_fn(&mut major, &mut minor) } != 0 {
            return Err("nvrtcVersion failed".into());
        }
        let path = library_file(version_fn as *const c_void).unwrap_or_else(|| name.to_string());
        Ok(Nvrtc {
            path,
            version: (major, minor),
            create: sym(&lib, "nvrtcCreateProgram")?,
            compile: sym(&lib, "nvrtcCompileProgram")?,
            log_size: sym(&lib, "nvrtcGetProgramLogSize")?,
            log: sym(&lib, "nvrtcGetProgramLog")?,
            cubin_size: sym(&lib, "nvrtcGetCUBINSize")?,
            cubin: sym(&lib, "nvrtcGetCUBIN")?,
            ptx_size: sym(&lib, "nvrtcGetPTXSize")?,
            ptx: sym(&lib, "nvrtcGetPTX")?,
            destroy: sym(&lib, "nvrtcDestroyProgram")?,
            error_string: sym(&lib, "nvrtcGetErrorString")?,
            num_archs: sym(&lib, "nvrtcGetNumSupportedArchs").ok(),
            archs: sym(&lib, "nvrtcGetSupportedArchs").ok(),
            _lib: lib,
        })
    }

    /// "12.9"
    pub fn version_string(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }

    /// The real architectures this NVRTC compiles for (`[75, 80, 86, 87, 89, 90, ...]`), when
    /// it can say.
    pub fn supported_archs(&self) -> Option<Vec<i32>> {
        let (num, get) = (self.num_archs?, self.archs?);
        let mut n = 0;
        // SAFETY: out-pointer valid for writes.
        if unsafe { num(&mut n) } != 0 || n <= 0 {
            return None;
        }
        let mut v = vec![0; n as usize];
        // SAFETY: `v` holds exactly the `n` entries NVRTC reported.
        if unsafe { get(v.as_mut_ptr()) } != 0 {
            return None;
        }
        Some(v)
    }

    fn error_name(&self, rc: NvrtcResult) -> String {
        // SAFETY: nvrtcGetErrorString accepts any code and returns a static string (or null).
        let p = unsafe { (self.error_string)(rc) };
        if p.is_null() {
            return format!("NVRTC error {rc}");
        }
        // SAFETY: non-null, NUL-terminated, static.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// Compiles `module` for `precision` and `arch` (`sm_90`): CUBIN for the real architecture
    /// or PTX for the virtual one. Errors carry NVRTC's log.
    pub fn compile(
        &self,
        module: &Module,
        precision: Precision,
        arch: &str,
        output: Output,
    ) -> Result<Vec<u8>> {
        let digits = arch.strip_prefix("sm_").ok_or_else(|| {
            Error::InvalidArgument(format!("bad architecture `{arch}` (expected sm_XY)"))
        })?;
        let target = match output {
            Output::Cubin => format!("--gpu-architecture=sm_{digits}"),
            Output::Ptx => format!("--gpu-architecture=compute_{digits}"),
        };
        let mut options = vec![
            target,
            "-default-device".to_string(),
            "--std=c++17".to_string(),
        ];
        options.extend(Module::defines(precision).iter().map(|d| d.to_string()));
        let what = format!(
            "NVRTC {} ({}): {}.cu ({}, {arch})",
            self.version_string(),
            self.path,
            module.name,
            precision.suffix()
        );
        let cstr = |s: &str| {
            CString::new(s).map_err(|_| Error::InvalidArgument(format!("{what}: NUL in {s:?}")))
        };
        let source = cstr(module.source)?;
        let name = cstr(&format!("{}.cu", module.name))?;
        let header_texts = HEADERS
            .iter()
            .map(|(_, t)| cstr(t))
            .collect::<Result<Vec<_>>>()?;
        let header_names = HEADERS
            .iter()
            .map(|(n, _)| cstr(n))
            .collect::<Result<Vec<_>>>()?;
        let text_ptrs: Vec<*const c_char> = header_texts.iter().map(|s| s.as_ptr()).collect();
        let name_ptrs: Vec<*const c_char> = header_names.iter().map(|s| s.as_ptr()).collect();
        let c_options = options
            .iter()
            .map(|o| cstr(o))
            .collect::<Result<Vec<_>>>()?;
        let option_ptrs: Vec<*const c_char> = c_options.iter().map(|s| s.as_ptr()).collect();

        let mut prog: Program = std::ptr::null_mut();
        // SAFETY: every string is NUL-terminated and outlives the call; the header arrays have
        // HEADERS.len() entries each; `prog` is a valid out-pointer.
        let rc = unsafe {
            (self.create)(
                &mut prog,
                source.as_ptr(),
                name.as_ptr(),
                HEADERS.len() as c_int,
                text_ptrs.as_ptr(),
                name_ptrs.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(Error::Device(format!(
                "{what}: nvrtcCreateProgram: {}",
                self.error_name(rc)
            )));
        }
        let guard = ProgramGuard { nvrtc: self, prog };
        // SAFETY: `prog` is a live program; the option array has option_ptrs.len() entries.
        let rc = unsafe { (self.compile)(prog, option_ptrs.len() as c_int, option_ptrs.as_ptr()) };
        let log = self.read(prog, self.log_size, self.log).unwrap_or_default();
        let log = String::from_utf8_lossy(&log)
            .trim_end_matches('\0')
            .trim()
            .to_string();
        if rc != 0 {
            return Err(Error::Device(format!(
                "{what}: {} [options: {}]\n{log}",
                self.error_name(rc),
                options.join(" ")
            )));
        }
        let out = match output {
            Output::Cubin => self.read(prog, self.cubin_size, self.cubin),
            Output::Ptx => self.read(prog, self.ptx_size, self.ptx).map(|mut v| {
                // PTX comes NUL-terminated; files should not carry the NUL.
                while v.last() == Some(&0) {
                    v.pop();
                }
                v
            }),
        }
        .map_err(|rc| Error::Device(format!("{what}: reading output: {}", self.error_name(rc))))?;
        drop(guard);
        Ok(out)
    }

    /// A size-then-copy NVRTC getter.
    fn read(
        &self,
        prog: Program,
        size: SizeFn,
        get: GetFn,
    ) -> std::result::Result<Vec<u8>, NvrtcResult> {
        let mut n = 0usize;
        // SAFETY: `prog` is live, `n` a valid out-pointer.
        let rc = unsafe { size(prog, &mut n) };
        if rc != 0 {
            return Err(rc);
        }
        let mut buf = vec![0u8; n];
        if n == 0 {
            return Ok(buf);
        }
        // SAFETY: `buf` has exactly the size NVRTC reported for this output.
        let rc = unsafe { get(prog, buf.as_mut_ptr() as *mut c_char) };
        if rc != 0 {
            return Err(rc);
        }
        Ok(buf)
    }
}

/// Destroys an NVRTC program on every exit path.
struct ProgramGuard<'a> {
    nvrtc: &'a Nvrtc,
    prog: Program,
}

impl Drop for ProgramGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `prog` was created by nvrtcCreateProgram and is destroyed exactly once.
        unsafe { (self.nvrtc.destroy)(&mut self.prog) };
    }
}
