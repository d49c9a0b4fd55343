//! The seam between the CUDA backend and where its kernels execute: a GPU (cudarc, `device/`)
//! or the CPU execution harness (`sim.rs`). Everything above this trait — launch geometry,
//! arena, weight upload and carving, f16 conversion, op → kernel mapping — is shared.

use crate::error::Result;

/// A device address: a `CUdeviceptr` on a GPU, a host address on the harness.
pub type DevPtr = u64;

/// One kernel argument, passed by value as `cuLaunchKernel`'s `kernelParams` are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg {
    Ptr(DevPtr),
    I32(i32),
    F32(f32),
}

impl Arg {
    /// The value in an 8-byte slot, low bytes first: what a kernel parameter pointer of
    /// `kernelParams` points at (both executors pass arguments this way).
    pub fn slot(&self) -> u64 {
        match *self {
            Arg::Ptr(p) => p,
            Arg::I32(v) => v as u32 as u64,
            Arg::F32(v) => v.to_bits() as u64,
        }
    }
}

/// Launch geometry: blocks, threads per block, dynamic shared memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
}

impl Launch {
    /// A 1-D launch of `threads`-thread blocks covering `n` items, one per thread.
    pub fn linear(n: usize, threads: u32) -> Launch {
        let blocks = n.div_ceil(threads as usize).max(1);
        Launch {
            grid: [blocks.min(u32::MAX as usize) as u32, 1, 1],
            block: [threads, 1, 1],
            shared_bytes: 0,
        }
    }
}

/// Where kernels run. Implementations own a context and an ordered queue of work: copies and
/// launches execute in the order they are issued.
pub trait Executor: Send + Sync + 'static {
    /// An owned device allocation, freed on drop.
    type Buffer: Send + Sync + 'static;

    /// What this executor is, for messages ("cuda:0 NVIDIA H200 (sm_90)", "cuda-sim").
    fn describe(&self) -> String;
    /// `bytes` of device memory (aligned to at least 16 bytes: 256 on a GPU, 16 on the
    /// harness, whose buffers end at a guard page), contents undefined.
    fn alloc(&self, bytes: usize) -> Result<Self::Buffer>;
    fn ptr(&self, buf: &Self::Buffer) -> DevPtr;
    /// Marks `buf` as never written again (weights): the harness write-protects it.
    fn freeze(&self, buf: &Self::Buffer) -> Result<()>;
    /// Host → device, ordered with the launches; `src` may be reused once this returns.
    fn copy_to_device(&self, dst: DevPtr, src: &[u8]) -> Result<()>;
    /// Device → host; waits for the work issued before it.
    fn copy_to_host(&self, src: DevPtr, dst: &mut [u8]) -> Result<()>;
    /// Launches `kernel` (a full name such as `silu_f16`) with `args`.
    fn launch(&self, kernel: &str, geometry: &Launch, args: &[Arg]) -> Result<()>;
    /// Waits until every issued copy and launch has finished.
    fn synchronize(&self) -> Result<()>;
    /// Issues the copies and launches that follow on `stream`, a caller's `CUstream`, or on
    /// the executor's own stream when `stream` is 0. [`Executor::synchronize`] and the copies
    /// to the host then wait on that stream. The harness runs everything at once and ignores
    /// it.
    fn set_stream(&self, stream: DevPtr) -> Result<()>;
    /// Waits for all work on the device issued by anyone in this context (every stream,
    /// including callers' streams used earlier): before freeing memory that such work may read.
    fn synchronize_device(&self) -> Result<()>;
    /// Checks that `bytes` at `ptr` are device memory the kernels may read (and write, with
    /// `writable`): inside one live allocation of this executor's device. A caller's device
    /// frame is checked this way, so a host pointer or a short buffer is a typed error, not a
    /// fault on the device.
    fn check_device_range(&self, ptr: DevPtr, bytes: usize, writable: bool) -> Result<()>;
    /// On an integrated GPU (host and device share DRAM), the device address of `bytes` of
    /// host memory at `ptr` that the caller pinned or registered with the driver, so the engine
    /// uses it in place instead of copying; `None` on a discrete GPU (where such memory would
    /// be read over the bus) or for pageable memory.
    fn host_alias(&self, ptr: usize, bytes: usize) -> Option<DevPtr>;
}
