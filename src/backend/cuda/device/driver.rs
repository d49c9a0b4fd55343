//! [`DeviceExecutor`]: the CUDA driver API through cudarc's `driver::sys` level (loaded at run
//! time): the device's primary context, one non-blocking stream, `cuMemAlloc`, asynchronous
//! copies on the stream, modules loaded from cubins (precompiled, cached, or compiled by NVRTC
//! on the module's first launch) and `cuLaunchKernel`.

use super::super::executor::{Arg, DevPtr, Executor, Launch};
use super::super::precision::Precision;
use super::super::sources::{MODULES, Module};
use super::{cache, check_kernel_dir, cubin_file_name, kernel_dir_from_env, nvrtc};
use crate::error::{Error, Result};
use cudarc::driver::sys;
use std::collections::HashMap;
use std::ffi::{CString, c_int, c_uint, c_void};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The name of a driver status (`CUDA_ERROR_OUT_OF_MEMORY`).
fn status_name(rc: sys::CUresult) -> String {
    let mut p: *const std::ffi::c_char = std::ptr::null();
    // SAFETY: cuGetErrorName accepts any code and stores a static string (or leaves null).
    let ok = unsafe { sys::cuGetErrorName(rc, &mut p) } == sys::CUresult::CUDA_SUCCESS;
    if ok && !p.is_null() {
        // SAFETY: non-null, NUL-terminated, static storage owned by the driver.
        return unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned();
    }
    format!("{rc:?}")
}

/// `Ok` for `CUDA_SUCCESS`, else `Error::Device` naming the call and the status.
fn check(what: &str, rc: sys::CUresult) -> Result<()> {
    if rc == sys::CUresult::CUDA_SUCCESS {
        return Ok(());
    }
    let name = status_name(rc);
    if rc == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        return Err(Error::OutOfMemory(format!("CUDA: {what}: {name}")));
    }
    Err(Error::Device(format!("CUDA: {what}: {name}")))
}

/// Runs `f`, turning a panic inside cudarc (a missing library or symbol) into an error: the
/// SDK never panics because of the machine it runs on.
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        Err(Error::Unsupported(format!("CUDA driver: {what}: {msg}")))
    })
}

/// Is a CUDA driver library loadable? Never panics.
pub fn driver_present() -> bool {
    // SAFETY: is_culib_present only tries to dlopen the driver's library names.
    std::panic::catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false)
}

/// The error for a machine without the CUDA driver library.
pub(crate) fn no_driver() -> Error {
    Error::Unsupported(
        "no CUDA driver (libcuda.so) found: install the NVIDIA driver, or add the folder that \
         holds libcuda.so.1 to LD_LIBRARY_PATH"
            .into(),
    )
}

/// Every driver entry point this module calls. cudarc resolves each on first use and panics
/// when one is missing, so they are all checked up front.
const SYMBOLS: &[&str] = &[
    "cuInit",
    "cuDriverGetVersion",
    "cuGetErrorName",
    "cuDeviceGetCount",
    "cuDeviceGet",
    "cuDeviceGetName",
    "cuDeviceTotalMem_v2",
    "cuDeviceGetAttribute",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxSetCurrent",
    "cuStreamCreate",
    "cuStreamSynchronize",
    "cuStreamDestroy_v2",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuModuleLoadData",
    "cuModuleGetFunction",
    "cuModuleUnload",
    "cuFuncSetAttribute",
    "cuLaunchKernel",
    "cuPointerGetAttribute",
    "cuCtxSynchronize",
];

/// The driver library is there and has every entry point used (checked once).
fn driver_complete() -> Result<()> {
    static CHECKED: std::sync::OnceLock<std::result::Result<(), String>> =
        std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            if !driver_present() {
                return Err(no_driver().to_string());
            }
            let missing: Vec<&str> = std::panic::catch_unwind(|| {
                // SAFETY: culib() opens the library is_culib_present found (it cannot panic
                // after that succeeded, and a panic is caught anyway); symbols are only looked
                // up, never called here.
                let lib = unsafe { sys::culib() };
                SYMBOLS
                    .iter()
                    .copied()
                    // SAFETY: as above: a lookup only.
                    .filter(|s| unsafe { lib.get::<*const c_void>(s.as_bytes()) }.is_err())
                    .collect()
            })
            .map_err(|_| no_driver().to_string())?;
            if missing.is_empty() {
                return Ok(());
            }
            Err(format!(
                "the CUDA driver library {} lacks {} (a driver older than CUDA 12.2, or a stub \
                 library)",
                driver_library().unwrap_or_else(|| "libcuda.so".into()),
                missing.join(", ")
            ))
        })
        .clone()
        .map_err(|e| Error::Unsupported(e.trim_start_matches("unsupported: ").to_string()))
}

/// `cuInit` once the library is known to be there; `Unsupported` when there is no device.
pub(crate) fn init() -> Result<()> {
    driver_complete()?;
    guarded("cuInit", || {
        // SAFETY: cuInit has no preconditions; repeated calls are allowed.
        let rc = unsafe { sys::cuInit(0) };
        if rc == sys::CUresult::CUDA_SUCCESS {
            return Ok(());
        }
        Err(Error::Unsupported(format!(
            "no usable CUDA device: cuInit failed with {} (libcuda.so was found)",
            status_name(rc)
        )))
    })
}

/// The driver's CUDA version (`cuDriverGetVersion`): 12020 for 12.2.
pub fn driver_version() -> Result<i32> {
    driver_complete()?;
    guarded("cuDriverGetVersion", || {
        let mut v = 0;
        // SAFETY: valid out-pointer.
        check("cuDriverGetVersion", unsafe {
            sys::cuDriverGetVersion(&mut v)
        })?;
        Ok(v)
    })
}

/// The file the driver library was loaded from, when the loader says.
pub fn driver_library() -> Option<String> {
    if !driver_present() {
        return None;
    }
    std::panic::catch_unwind(|| {
        // SAFETY: culib() opens (once) the library is_culib_present found; the symbol is only
        // used as an address for dladdr.
        let sym = unsafe { sys::culib().get::<*const c_void>(b"cuInit") }.ok()?;
        nvrtc::library_file(*sym)
    })
    .ok()
    .flatten()
}

/// Number of CUDA devices (0 when there is no driver).
pub fn device_count() -> Result<usize> {
    init()?;
    guarded("cuDeviceGetCount", || {
        let mut n = 0;
        // SAFETY: valid out-pointer.
        check("cuDeviceGetCount", unsafe { sys::cuDeviceGetCount(&mut n) })?;
        Ok(n.max(0) as usize)
    })
}

/// What a device is: name, compute capability, memory.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub total_memory: usize,
    pub multiprocessors: i32,
    /// An integrated GPU (Jetson): host and device share DRAM.
    pub integrated: bool,
}

impl DeviceInfo {
    /// `sm_90`
    pub fn arch(&self) -> String {
        format!(
            "sm_{}{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }
}

fn attribute(dev: sys::CUdevice, a: sys::CUdevice_attribute) -> Result<i32> {
    let mut v = 0;
    // SAFETY: `dev` came from cuDeviceGet; valid out-pointer.
    check("cuDeviceGetAttribute", unsafe {
        sys::cuDeviceGetAttribute(&mut v, a, dev)
    })?;
    Ok(v)
}

/// Describes device `ordinal` (after [`init`]).
pub fn device_info(ordinal: usize) -> Result<(sys::CUdevice, DeviceInfo)> {
    let count = device_count()?;
    if ordinal >= count {
        return Err(Error::Unsupported(format!(
            "no CUDA device cuda:{ordinal} (the driver reports {count} device{})",
            if count == 1 { "" } else { "s" }
        )));
    }
    guarded("device query", || {
        let mut dev: sys::CUdevice = 0;
        // SAFETY: valid out-pointer; ordinal < count.
        check("cuDeviceGet", unsafe {
            sys::cuDeviceGet(&mut dev, ordinal as c_int)
        })?;
        let mut name = [0 as std::ffi::c_char; 256];
        // SAFETY: `name` is writable for its length, which is passed.
        check("cuDeviceGetName", unsafe {
            sys::cuDeviceGetName(name.as_mut_ptr(), name.len() as c_int, dev)
        })?;
        // SAFETY: the driver NUL-terminates within the length given (last byte stays 0).
        let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        let mut mem = 0usize;
        // SAFETY: valid out-pointer and device.
        check("cuDeviceTotalMem", unsafe {
            sys::cuDeviceTotalMem_v2(&mut mem, dev)
        })?;
        use sys::CUdevice_attribute::*;
        let info = DeviceInfo {
            ordinal,
            name,
            compute_capability: (
                attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            ),
            total_memory: mem,
            multiprocessors: attribute(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            integrated: attribute(dev, CU_DEVICE_ATTRIBUTE_INTEGRATED)? != 0,
        };
        Ok((dev, info))
    })
}

/// A retained primary context, released when the executor and every buffer are gone.
struct Context {
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
}

impl Context {
    /// Makes the context current on the calling thread (driver calls act on the current one).
    fn bind(&self) -> Result<()> {
        // SAFETY: `ctx` is a primary context retained by this value, alive until drop.
        check("cuCtxSetCurrent", unsafe { sys::cuCtxSetCurrent(self.ctx) })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: releases the one reference taken by cuDevicePrimaryCtxRetain in `new`.
        unsafe { sys::cuDevicePrimaryCtxRelease_v2(self.dev) };
    }
}

// SAFETY: a CUcontext is a driver handle usable from any thread (each call binds it first).
unsafe impl Send for Context {}
// SAFETY: as above; the handle is never mutated after creation.
unsafe impl Sync for Context {}

/// A device allocation, freed on drop.
pub struct DeviceBuffer {
    ptr: sys::CUdeviceptr,
    bytes: usize,
    ctx: Arc<Context>,
}

impl DeviceBuffer {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        let _ = guarded("cuMemFree", || {
            self.ctx.bind()?;
            // SAFETY: `ptr` came from cuMemAlloc in this context and is freed exactly once;
            // cuMemFree synchronises with work still using it.
            check("cuMemFree", unsafe { sys::cuMemFree_v2(self.ptr) })
        });
    }
}

/// The loaded kernels: modules per (module index, precision suffix), functions by full name.
#[derive(Default)]
struct Kernels {
    modules: HashMap<(usize, &'static str), sys::CUmodule>,
    functions: HashMap<String, sys::CUfunction>,
    /// The largest dynamic shared memory opted into per function.
    shared_optin: HashMap<String, u32>,
}

/// Kernels executed on a GPU.
pub struct DeviceExecutor {
    ctx: Arc<Context>,
    /// The executor's own stream.
    stream: sys::CUstream,
    /// A caller's stream that work goes to instead (`Executor::set_stream`); 0 = `stream`.
    caller_stream: std::sync::atomic::AtomicU64,
    /// Boxed: the executor stays small inside enums of backends.
    s: Box<State>,
}

struct State {
    info: DeviceInfo,
    kernel_dir: Option<PathBuf>,
    kernels: Mutex<Kernels>,
    sync_each_launch: bool,
}

// SAFETY: the stream and module handles are driver objects usable from any thread once the
// context is bound (every method binds it); the mutable kernel tables sit behind a Mutex.
unsafe impl Send for DeviceExecutor {}
// SAFETY: as above; the driver serialises work issued to one stream from several threads.
unsafe impl Sync for DeviceExecutor {}

const CU_STREAM_NON_BLOCKING: c_uint = 1;
const DEFAULT_SHARED_LIMIT: u32 = 48 * 1024;

impl DeviceExecutor {
    /// Opens device `ordinal`. Kernels come from `kernel_dir` (or `$F2I_KERNEL_DIR`) when it
    /// holds `{module}.{f16|f32}.sm_XY.cubin` for this device, else from the on-disk cache,
    /// else NVRTC compiles them on the first launch of their module. No driver, no device or
    /// a bad ordinal is `Error::Unsupported`, never a panic.
    pub fn new(ordinal: usize, kernel_dir: Option<PathBuf>) -> Result<DeviceExecutor> {
        let kernel_dir = kernel_dir.or_else(kernel_dir_from_env);
        if let Some(d) = &kernel_dir {
            check_kernel_dir(d)?;
        }
        init()?;
        let (dev, info) = device_info(ordinal)?;
        guarded("context creation", || {
            let mut ctx: sys::CUcontext = std::ptr::null_mut();
            // SAFETY: `dev` came from cuDeviceGet; valid out-pointer.
            check("cuDevicePrimaryCtxRetain", unsafe {
                sys::cuDevicePrimaryCtxRetain(&mut ctx, dev)
            })?;
            let ctx = Arc::new(Context { dev, ctx });
            ctx.bind()?;
            let mut stream: sys::CUstream = std::ptr::null_mut();
            // SAFETY: a context is current; valid out-pointer.
            check("cuStreamCreate", unsafe {
                sys::cuStreamCreate(&mut stream, CU_STREAM_NON_BLOCKING)
            })?;
            Ok(DeviceExecutor {
                ctx,
                stream,
                caller_stream: std::sync::atomic::AtomicU64::new(0),
                s: Box::new(State {
                    info,
                    kernel_dir,
                    kernels: Mutex::new(Kernels::default()),
                    sync_each_launch: std::env::var("F2I_CUDA_SYNC").is_ok_and(|v| v.trim() == "1"),
                }),
            })
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.s.info
    }

    /// Where work goes now: the caller's stream when one is set, else the executor's own.
    fn current_stream(&self) -> sys::CUstream {
        match self
            .caller_stream
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => self.stream,
            s => s as usize as sys::CUstream,
        }
    }

    /// One pointer attribute of `ptr` (a `u64`-sized or smaller value), or the driver's error.
    fn pointer_attribute<T: Default>(
        &self,
        ptr: DevPtr,
        attribute: sys::CUpointer_attribute,
    ) -> Result<T> {
        let mut v = T::default();
        // SAFETY: `v` is a writable value of the attribute's type (the callers pair each
        // attribute with its documented type); the driver only inspects the address.
        check("cuPointerGetAttribute", unsafe {
            sys::cuPointerGetAttribute((&raw mut v).cast(), attribute, ptr)
        })?;
        Ok(v)
    }

    /// The architecture kernels are compiled for (`sm_90`).
    pub fn arch(&self) -> String {
        self.s.info.arch()
    }

    /// Loads every module for `precision` now (instead of at each module's first launch), so
    /// a missing compiler or kernel file shows at start-up.
    pub fn preload(&self, precision: Precision) -> Result<()> {
        guarded("module loading", || {
            self.ctx.bind()?;
            let mut k = self.lock()?;
            for i in 0..MODULES.len() {
                self.load_module(&mut k, i, precision)?;
            }
            Ok(())
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Kernels>> {
        self.s
            .kernels
            .lock()
            .map_err(|_| Error::Device("CUDA kernel table poisoned by a panic".into()))
    }

    /// The cubin of one module: the kernel folder, the cache, or NVRTC (then cached).
    fn cubin(&self, module: &Module, precision: Precision) -> Result<Vec<u8>> {
        let arch = self.arch();
        let file = cubin_file_name(module.name, precision, &arch);
        if let Some(dir) = &self.s.kernel_dir {
            let path = dir.join(&file);
            if path.is_file() {
                return std::fs::read(&path).map_err(|source| Error::Io { path, source });
            }
        }
        let compiler = nvrtc::Nvrtc::global().map_err(|e| match &self.s.kernel_dir {
            Some(d) => Error::Unsupported(format!(
                "{} has no {file} for {} and {e}",
                d.display(),
                self.s.info.name
            )),
            None => e,
        })?;
        let key = cache::file_name(module.name, precision, &arch, compiler.version);
        if let Some(bytes) = cache::load(&key) {
            return Ok(bytes);
        }
        let bytes = compiler.compile(module, precision, &arch, nvrtc::Output::Cubin)?;
        if let Err(e) = cache::store(&key, &bytes) {
            if std::env::var_os("F2I_VERBOSE").is_some() {
                eprintln!("f2idiff: kernel cache not written: {e}");
            }
        }
        Ok(bytes)
    }

    /// Loads module `index` for `precision` (once) and records its functions.
    fn load_module(&self, k: &mut Kernels, index: usize, precision: Precision) -> Result<()> {
        if k.modules.contains_key(&(index, precision.suffix())) {
            return Ok(());
        }
        let module = &MODULES[index];
        let image = self.cubin(module, precision)?;
        let mut handle: sys::CUmodule = std::ptr::null_mut();
        // SAFETY: the context is bound; `image` is a whole cubin (ELF) that outlives the call.
        check(
            &format!(
                "cuModuleLoadData({}) for {}",
                cubin_file_name(module.name, precision, &self.arch()),
                self.s.info.name
            ),
            unsafe { sys::cuModuleLoadData(&mut handle, image.as_ptr() as *const c_void) },
        )?;
        k.modules.insert((index, precision.suffix()), handle);
        for name in module.kernels(precision) {
            let c = CString::new(name.clone())
                .map_err(|_| Error::InvalidArgument(format!("bad kernel name {name:?}")))?;
            let mut f: sys::CUfunction = std::ptr::null_mut();
            // SAFETY: `handle` is the module just loaded; `c` is NUL-terminated.
            check(&format!("cuModuleGetFunction({name})"), unsafe {
                sys::cuModuleGetFunction(&mut f, handle, c.as_ptr())
            })?;
            k.functions.insert(name, f);
        }
        Ok(())
    }

    /// The function for a full kernel name, loading its module on first use.
    fn function(&self, k: &mut Kernels, kernel: &str) -> Result<sys::CUfunction> {
        if let Some(&f) = k.functions.get(kernel) {
            return Ok(f);
        }
        let (op, precision) = if let Some(op) = kernel.strip_suffix("_f16") {
            (op, Precision::F16)
        } else if let Some(op) = kernel.strip_suffix("_f32") {
            (op, Precision::F32)
        } else {
            return Err(Error::InvalidArgument(format!(
                "kernel `{kernel}` has no _f16/_f32 suffix"
            )));
        };
        let index = MODULES
            .iter()
            .position(|m| m.ops().contains(&op))
            .ok_or_else(|| Error::Unsupported(format!("no kernel `{kernel}` in kernels/*.cu")))?;
        self.load_module(k, index, precision)?;
        k.functions
            .get(kernel)
            .copied()
            .ok_or_else(|| Error::Device(format!("kernel `{kernel}` missing after loading")))
    }
}

impl Drop for DeviceExecutor {
    fn drop(&mut self) {
        let _ = guarded("executor teardown", || {
            self.ctx.bind()?;
            // SAFETY: `stream` and every module were created by this executor in this context
            // and are destroyed exactly once, after the stream's work has finished.
            unsafe {
                // Callers' streams may still run kernels that read this executor's buffers
                // (f2i_engine_free waits for them); such a stream may be gone by now, so the
                // whole context is waited for instead of the handle.
                if self.current_stream() != self.stream {
                    sys::cuCtxSynchronize();
                }
                sys::cuStreamSynchronize(self.stream);
                if let Ok(k) = self.s.kernels.get_mut() {
                    for (_, m) in k.modules.drain() {
                        sys::cuModuleUnload(m);
                    }
                }
                sys::cuStreamDestroy_v2(self.stream);
            }
            Ok(())
        });
    }
}

impl Executor for DeviceExecutor {
    type Buffer = DeviceBuffer;

    fn describe(&self) -> String {
        format!(
            "cuda:{} {} ({})",
            self.s.info.ordinal,
            self.s.info.name,
            self.arch()
        )
    }

    fn alloc(&self, bytes: usize) -> Result<DeviceBuffer> {
        guarded("cuMemAlloc", || {
            self.ctx.bind()?;
            let mut ptr: sys::CUdeviceptr = 0;
            // SAFETY: context bound; valid out-pointer. cuMemAlloc aligns to at least 256 bytes.
            check(&format!("cuMemAlloc({bytes} bytes)"), unsafe {
                sys::cuMemAlloc_v2(&mut ptr, bytes.max(1))
            })?;
            Ok(DeviceBuffer {
                ptr,
                bytes,
                ctx: self.ctx.clone(),
            })
        })
    }

    fn ptr(&self, buf: &DeviceBuffer) -> DevPtr {
        buf.ptr
    }

    fn freeze(&self, _buf: &DeviceBuffer) -> Result<()> {
        Ok(())
    }

    fn copy_to_device(&self, dst: DevPtr, src: &[u8]) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        guarded("cuMemcpyHtoDAsync", || {
            self.ctx.bind()?;
            // SAFETY: `dst` is an address inside a live allocation of this context with
            // `src.len()` bytes (the backend computes it from checked views); `src` is
            // pageable host memory, which the driver stages before returning, so the caller
            // may reuse it as soon as this returns.
            check("cuMemcpyHtoDAsync", unsafe {
                sys::cuMemcpyHtoDAsync_v2(
                    dst,
                    src.as_ptr() as *const c_void,
                    src.len(),
                    self.current_stream(),
                )
            })
        })
    }

    fn copy_to_host(&self, src: DevPtr, dst: &mut [u8]) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        guarded("cuMemcpyDtoHAsync", || {
            self.ctx.bind()?;
            // SAFETY: `src` lies in a live allocation with `dst.len()` bytes; `dst` stays
            // borrowed until the stream synchronisation below completes the copy.
            check("cuMemcpyDtoHAsync", unsafe {
                sys::cuMemcpyDtoHAsync_v2(
                    dst.as_mut_ptr() as *mut c_void,
                    src,
                    dst.len(),
                    self.current_stream(),
                )
            })?;
            // SAFETY: `stream` is live.
            check("cuStreamSynchronize (after a copy to host)", unsafe {
                sys::cuStreamSynchronize(self.current_stream())
            })
        })
    }

    fn launch(&self, kernel: &str, g: &Launch, args: &[Arg]) -> Result<()> {
        guarded("cuLaunchKernel", || {
            self.ctx.bind()?;
            let f = {
                let mut k = self.lock()?;
                let f = self.function(&mut k, kernel)?;
                if g.shared_bytes > DEFAULT_SHARED_LIMIT
                    && k.shared_optin.get(kernel).copied().unwrap_or(0) < g.shared_bytes
                {
                    // SAFETY: `f` is a live function of a loaded module.
                    check(
                        &format!(
                            "{kernel}: opting into {} bytes of shared memory",
                            g.shared_bytes
                        ),
                        unsafe {
                            sys::cuFuncSetAttribute(
                                f,
                                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                g.shared_bytes as c_int,
                            )
                        },
                    )?;
                    k.shared_optin.insert(kernel.to_string(), g.shared_bytes);
                }
                f
            };
            // Argument values live in `slots`; `params` points at each (kernelParams), exactly
            // as the harness executor passes them.
            let mut slots: Vec<u64> = args.iter().map(Arg::slot).collect();
            let mut params: Vec<*mut c_void> = slots
                .iter_mut()
                .map(|s| s as *mut u64 as *mut c_void)
                .collect();
            // SAFETY: `f` belongs to a module loaded in this context; `params` has one entry
            // per kernel parameter, each pointing at an 8-byte slot whose low bytes hold the
            // value (little-endian hosts), alive for the call (the driver copies parameters
            // before returning); grid/block are validated by the driver.
            check(
                &format!(
                    "cuLaunchKernel({kernel}, grid {:?}, block {:?}, {} B shared)",
                    g.grid, g.block, g.shared_bytes
                ),
                unsafe {
                    sys::cuLaunchKernel(
                        f,
                        g.grid[0],
                        g.grid[1],
                        g.grid[2],
                        g.block[0],
                        g.block[1],
                        g.block[2],
                        g.shared_bytes,
                        self.current_stream(),
                        params.as_mut_ptr(),
                        std::ptr::null_mut(),
                    )
                },
            )?;
            if self.s.sync_each_launch {
                // SAFETY: `stream` is live.
                check(&format!("{kernel} (F2I_CUDA_SYNC=1)"), unsafe {
                    sys::cuStreamSynchronize(self.current_stream())
                })?;
            }
            Ok(())
        })
    }

    fn synchronize(&self) -> Result<()> {
        guarded("cuStreamSynchronize", || {
            self.ctx.bind()?;
            // SAFETY: `stream` is live.
            check("cuStreamSynchronize", unsafe {
                sys::cuStreamSynchronize(self.current_stream())
            })
        })
    }

    fn set_stream(&self, stream: DevPtr) -> Result<()> {
        self.caller_stream
            .store(stream, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn synchronize_device(&self) -> Result<()> {
        guarded("cuCtxSynchronize", || {
            self.ctx.bind()?;
            // SAFETY: a context is current.
            check("cuCtxSynchronize", unsafe { sys::cuCtxSynchronize() })
        })
    }

    fn host_alias(&self, ptr: usize, bytes: usize) -> Option<DevPtr> {
        use sys::CUpointer_attribute as A;
        if !self.s.info.integrated {
            return None;
        }
        guarded("cuPointerGetAttribute", || {
            self.ctx.bind()?;
            let kind: u32 =
                self.pointer_attribute(ptr as DevPtr, A::CU_POINTER_ATTRIBUTE_MEMORY_TYPE)?;
            if kind != sys::CUmemorytype::CU_MEMORYTYPE_HOST as u32 {
                return Err(Error::InvalidArgument("not pinned host memory".into()));
            }
            let alias: u64 =
                self.pointer_attribute(ptr as DevPtr, A::CU_POINTER_ATTRIBUTE_DEVICE_POINTER)?;
            self.check_device_range(alias, bytes, true)?;
            Ok(alias)
        })
        .ok()
    }

    fn check_device_range(&self, ptr: DevPtr, bytes: usize, _writable: bool) -> Result<()> {
        use sys::CUpointer_attribute as A;
        guarded("cuPointerGetAttribute", || {
            self.ctx.bind()?;
            let bad =
                |why: String| Error::InvalidArgument(format!("{bytes} bytes at {ptr:#x}: {why}"));
            let kind: u32 = self
                .pointer_attribute(ptr, A::CU_POINTER_ATTRIBUTE_MEMORY_TYPE)
                .map_err(|_| bad("not memory the CUDA driver knows (a host pointer?)".into()))?;
            // Device memory, or host memory pinned / registered with the driver (usable by
            // kernels through unified addressing).
            if kind != sys::CUmemorytype::CU_MEMORYTYPE_DEVICE as u32
                && kind != sys::CUmemorytype::CU_MEMORYTYPE_HOST as u32
            {
                return Err(bad(format!("memory type {kind} is not device memory")));
            }
            let ordinal: i32 =
                self.pointer_attribute(ptr, A::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL)?;
            if ordinal as usize != self.s.info.ordinal {
                return Err(bad(format!(
                    "memory of cuda:{ordinal}, the engine runs on cuda:{}",
                    self.s.info.ordinal
                )));
            }
            let start: u64 =
                self.pointer_attribute(ptr, A::CU_POINTER_ATTRIBUTE_RANGE_START_ADDR)?;
            let size: u64 = self.pointer_attribute(ptr, A::CU_POINTER_ATTRIBUTE_RANGE_SIZE)?;
            if ptr - start + bytes as u64 > size {
                return Err(bad(format!(
                    "runs past the end of its {size}-byte allocation at {start:#x}"
                )));
            }
            Ok(())
        })
    }
}
