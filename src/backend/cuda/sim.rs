//! The CPU execution harness as an [`Executor`]: kernels from `kernels/*.cu` compiled as host
//! C++ (build.rs, feature `cuda-sim`) and run by the C++ runtime in `kernels/harness/`, every
//! thread of a block a fiber, `__syncthreads` a barrier, shared memory poisoned, device memory
//! behind guard pages. Device pointers are host addresses. Slow: for checking, not for use.

use super::executor::{Arg, DevPtr, Executor, Launch};
use crate::error::{Error, Result};
use std::ffi::{CString, c_char, c_int, c_uint, c_void};

unsafe extern "C" {
    fn f2i_sim_alloc(bytes: usize) -> *mut c_void;
    fn f2i_sim_free(p: *mut c_void);
    fn f2i_sim_protect(p: *mut c_void, readonly: c_int) -> c_int;
    fn f2i_sim_owns(p: *const c_void, bytes: usize, writable: c_int) -> c_int;
    fn f2i_sim_launch(
        kernel: *const c_char,
        grid: *const c_uint,
        block: *const c_uint,
        dynamic_shared_bytes: usize,
        params: *mut *mut c_void,
        flags: c_uint,
        seed: u64,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

const CHECK_SCHEDULES: c_uint = 1;

/// A harness allocation (guard pages on both sides), freed on drop.
pub struct SimBuffer {
    ptr: *mut c_void,
    bytes: usize,
}

// SAFETY: the buffer is plain memory owned by this value; the harness serialises launches, and
// the backend orders every access (copies and launches run synchronously on the caller).
unsafe impl Send for SimBuffer {}
// SAFETY: as above; shared references only read the address.
unsafe impl Sync for SimBuffer {}

impl Drop for SimBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from f2i_sim_alloc and is freed exactly once, here.
        unsafe { f2i_sim_free(self.ptr) }
    }
}

/// Runs kernels on the harness. With `check_schedules` (the default) every launch runs under
/// two thread schedules (forward; then blocks in reverse order and every barrier phase's threads
/// in a permutation drawn from `seed`, or reversed when `seed` is 0) and fails unless both write
/// identical bytes into the buffers its pointer arguments point into.
pub struct SimExecutor {
    pub check_schedules: bool,
    pub seed: u64,
    /// Behave as an integrated GPU: harness allocations passed as host memory are used in
    /// place ([`Executor::host_alias`]), as pinned memory is on a Jetson.
    pub integrated: bool,
}

impl Default for SimExecutor {
    fn default() -> Self {
        SimExecutor {
            check_schedules: true,
            seed: 0x5eed,
            integrated: false,
        }
    }
}

impl SimExecutor {
    /// The default executor, with schedule checking off when `F2I_SIM_SCHEDULES=1`, and an
    /// integrated GPU when `F2I_SIM_INTEGRATED=1`.
    pub fn from_env() -> SimExecutor {
        let on = |var: &str| std::env::var(var).is_ok_and(|v| v.trim() == "1");
        SimExecutor {
            check_schedules: !on("F2I_SIM_SCHEDULES"),
            integrated: on("F2I_SIM_INTEGRATED"),
            ..SimExecutor::default()
        }
    }
}

/// Checks that `[ptr, ptr + len)` lies inside one live harness allocation is the harness's
/// job (guard pages); here only null and overflow are refused.
fn host_range(ptr: DevPtr, len: usize) -> Result<usize> {
    if len == 0 {
        return Ok(ptr as usize);
    }
    if ptr == 0 || (ptr as usize).checked_add(len).is_none() {
        return Err(Error::InvalidArgument(format!(
            "bad harness address {ptr:#x} (+{len})"
        )));
    }
    Ok(ptr as usize)
}

impl Executor for SimExecutor {
    type Buffer = SimBuffer;

    fn describe(&self) -> String {
        "cuda-sim (CPU execution harness)".into()
    }

    fn alloc(&self, bytes: usize) -> Result<SimBuffer> {
        // SAFETY: FFI call with a plain size; a null result is handled below.
        let ptr = unsafe { f2i_sim_alloc(bytes.max(1)) };
        if ptr.is_null() {
            return Err(Error::OutOfMemory(format!(
                "harness cannot allocate {bytes} bytes"
            )));
        }
        Ok(SimBuffer { ptr, bytes })
    }

    fn ptr(&self, buf: &SimBuffer) -> DevPtr {
        buf.ptr as DevPtr
    }

    fn freeze(&self, buf: &SimBuffer) -> Result<()> {
        // SAFETY: `buf.ptr` is a live harness allocation.
        if unsafe { f2i_sim_protect(buf.ptr, 1) } != 0 {
            return Err(Error::InvalidArgument(format!(
                "cannot write-protect a {}-byte harness buffer",
                buf.bytes
            )));
        }
        Ok(())
    }

    fn copy_to_device(&self, dst: DevPtr, src: &[u8]) -> Result<()> {
        let d = host_range(dst, src.len())?;
        // SAFETY: `dst` is an address inside a live harness allocation handed out by this
        // executor (the backend computes it from a checked view or weight), `src.len()` bytes
        // long; the guard pages turn any overrun into a fault rather than silent corruption.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), d as *mut u8, src.len()) };
        Ok(())
    }

    fn copy_to_host(&self, src: DevPtr, dst: &mut [u8]) -> Result<()> {
        let s = host_range(src, dst.len())?;
        // SAFETY: as in copy_to_device, reading `dst.len()` bytes of a live allocation.
        unsafe { std::ptr::copy_nonoverlapping(s as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn launch(&self, kernel: &str, g: &Launch, args: &[Arg]) -> Result<()> {
        let name = CString::new(kernel)
            .map_err(|_| Error::InvalidArgument(format!("bad kernel name {kernel:?}")))?;
        // Argument values live in `slots`; `params` points at each, like kernelParams.
        let mut slots: Vec<u64> = args.iter().map(Arg::slot).collect();
        let mut params: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| s as *mut u64 as *mut c_void)
            .collect();
        let mut err = vec![0u8; 1024];
        let flags = if self.check_schedules {
            CHECK_SCHEDULES
        } else {
            0
        };
        // SAFETY: every pointer is valid for the call: `name` is NUL-terminated, grid/block
        // are 3 elements, `params` has one entry per kernel argument, each pointing at an
        // 8-byte slot whose low bytes hold the value (little-endian x86-64/aarch64 hosts), and
        // `err` is writable for its length.
        let rc = unsafe {
            f2i_sim_launch(
                name.as_ptr(),
                g.grid.as_ptr(),
                g.block.as_ptr(),
                g.shared_bytes as usize,
                params.as_mut_ptr(),
                flags,
                self.seed,
                err.as_mut_ptr() as *mut c_char,
                err.len(),
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let end = err.iter().position(|&b| b == 0).unwrap_or(err.len());
        Err(Error::Device(format!(
            "cuda-sim: {kernel}: {} (harness status {rc})",
            String::from_utf8_lossy(&err[..end])
        )))
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn set_stream(&self, _stream: DevPtr) -> Result<()> {
        Ok(())
    }

    fn synchronize_device(&self) -> Result<()> {
        Ok(())
    }

    fn host_alias(&self, ptr: usize, bytes: usize) -> Option<DevPtr> {
        let alias = ptr as DevPtr;
        (self.integrated && self.check_device_range(alias, bytes, true).is_ok()).then_some(alias)
    }

    fn check_device_range(&self, ptr: DevPtr, bytes: usize, writable: bool) -> Result<()> {
        // SAFETY: the harness only looks the address up in its registry; nothing is accessed.
        let owned = unsafe { f2i_sim_owns(ptr as *const c_void, bytes, c_int::from(writable)) };
        if owned == 0 {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "{bytes} bytes at {ptr:#x} are not {}device memory (a harness allocation)",
            if writable { "writable " } else { "" }
        )))
    }
}
