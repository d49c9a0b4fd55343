//! The engine behind `f2i_engine`: a backend (the CPU, or CUDA when asked for or, with
//! `F2I_DEVICE_AUTO`, when a usable GPU exists), the model's networks (CPU engines opened on the
//! same file with the same LoRA scale share them), and the lock that keeps one engine on one
//! thread at a time.

use super::status::{CResult, Failure};
use super::types::{F2I_ENGINE_MAP_PACK, f2i_device::*, f2i_engine_options, f2i_precision::*};
use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::Precision;
use crate::device::{self, Device, DeviceOptions, Opened};
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
use crate::engine::LoraState;
use crate::engine::Networks;
use crate::pack::{LoraMode, Pack, PackLoad};
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
use crate::pipeline::F32Fallback;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};

/// Default activation budget when choosing the tile size (the CLI's).
const DEFAULT_BUDGET: u64 = 2 << 30;

/// What identifies a model file's content for sharing: its canonical path and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileKey {
    path: PathBuf,
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl FileKey {
    fn of(path: &Path) -> Option<FileKey> {
        let path = std::fs::canonicalize(path).ok()?;
        let m = std::fs::metadata(&path).ok()?;
        Some(FileKey {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            inode: {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            },
            path,
        })
    }
}

type Nets = Networks<CpuBackend>;

/// Live networks by file and LoRA scale; entries die with their last engine.
struct Shared {
    key: FileKey,
    /// A private-memory engine never shares a mapped pack (or networks pointing into one).
    load: PackLoad,
    lora_scale: u32,
    pack: Weak<Pack>,
    nets: Weak<Nets>,
}

static SHARED: Mutex<Vec<Shared>> = Mutex::new(Vec::new());

fn shared() -> MutexGuard<'static, Vec<Shared>> {
    // A panic while holding this lock cannot leave the list inconsistent (it only holds Weak
    // pointers), so a poisoned lock is still usable.
    SHARED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The pack of `key`, from a live engine when there is one.
fn shared_pack(key: Option<&FileKey>, path: &Path, load: PackLoad) -> CResult<Arc<Pack>> {
    if let Some(k) = key
        && let Some(p) = shared()
            .iter()
            .find(|s| &s.key == k && s.load == load)
            .and_then(|s| s.pack.upgrade())
    {
        return Ok(p);
    }
    let pack = Pack::open_with(path, load)?;
    // Checks every tensor's CRC once per process and file, so corrupt weights fail here.
    pack.verify()?;
    Ok(Arc::new(pack))
}

/// The networks of `pack` at `lora_scale`, from a live engine when there is one.
fn shared_nets(
    key: Option<&FileKey>,
    pack: &Arc<Pack>,
    backend: &CpuBackend,
    lora_scale: f32,
) -> CResult<Arc<Nets>> {
    let bits = lora_scale.to_bits();
    let load = pack.load_mode();
    if let Some(k) = key {
        let list = shared();
        let live = list
            .iter()
            .find(|s| &s.key == k && s.load == load && s.lora_scale == bits);
        if let Some(n) = live.and_then(|s| s.nets.upgrade()) {
            return Ok(n);
        }
    }
    let nets = Arc::new(Networks::load(backend, pack.clone(), lora_scale)?);
    if let Some(k) = key {
        let mut list = shared();
        list.retain(|s| s.nets.strong_count() > 0);
        list.push(Shared {
            key: k.clone(),
            load,
            lora_scale: bits,
            pack: Arc::downgrade(pack),
            nets: Arc::downgrade(&nets),
        });
    }
    Ok(nets)
}

/// An engine's networks on its backend, shared between the engines on the same file (CUDA:
/// and device).
pub enum EngineNets {
    Cpu(CpuBackend, Arc<Nets>),
    #[cfg(feature = "cuda")]
    Cuda(Box<CudaEngine<crate::backend::cuda::device::DeviceExecutor>>),
    /// The CUDA backend on the CPU execution harness (`cuda-sim` test builds, when
    /// `F2I_CUDA_SIM=1`): "device memory" is harness memory.
    #[cfg(feature = "cuda-sim")]
    CudaSim(Box<CudaEngine<crate::backend::cuda::sim::SimExecutor>>),
}

/// A CUDA engine on executor `E`.
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
pub struct CudaEngine<E: crate::backend::cuda::Executor> {
    pub backend: crate::backend::cuda::CudaBackend<E>,
    /// Shared with the other engines on the same file and device (`shared_cuda`).
    pub nets: Option<Arc<Networks<crate::backend::cuda::CudaBackend<E>>>>,
    /// f16 storage: where tiles that overflow run again (f32 on the same device).
    pub fallback: Option<F32Fallback<crate::backend::cuda::CudaBackend<E>>>,
    /// Tile arena and f32 buffers of device-memory calls, kept between calls.
    pub frames: crate::pipeline::device_frame::FrameState<E>,
}

#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
impl<E: crate::backend::cuda::Executor> CudaEngine<E> {
    fn open(
        backend: crate::backend::cuda::CudaBackend<E>,
        twin: Option<crate::backend::cuda::CudaBackend<E>>,
        key: Option<&FileKey>,
        pack: &Arc<Pack>,
    ) -> CResult<Box<Self>> {
        let nets = super::shared_cuda::networks(key, pack, &backend, 1.0)?;
        Ok(Box::new(CudaEngine {
            backend,
            nets: Some(nets),
            fallback: twin.map(|t| F32Fallback::new(t, pack.clone())),
            frames: Default::default(),
        }))
    }

    /// Enqueues the upscale of `input` into `output` (frames in device memory) on the call's
    /// stream; returns without waiting for it.
    pub fn enqueue(
        &mut self,
        input: &crate::backend::cuda::DeviceFrame,
        output: &crate::backend::cuda::DeviceFrame,
        call: &super::params::Call,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> CResult<()> {
        let Some(nets) = &self.nets else {
            return Err(
                crate::Error::Device("the engine's networks failed to reload".into()).into(),
            );
        };
        self.backend.executor().set_stream(call.stream)?;
        crate::pipeline::device_frame::upscale_frame(
            nets,
            &self.backend,
            &mut self.frames,
            input,
            output,
            &call.opts,
            progress,
        )?;
        Ok(())
    }

    /// Reserves device memory for device-memory calls on regions up to `w × h` (see
    /// `f2i_engine_reserve`); returns the bytes held.
    pub fn reserve(&mut self, call: &super::params::Call, w: usize, h: usize) -> CResult<u64> {
        let Some(nets) = &self.nets else {
            return Err(
                crate::Error::Device("the engine's networks failed to reload".into()).into(),
            );
        };
        let r = self.frames.reserve(nets, &self.backend, w, h, &call.opts)?;
        Ok(r.bytes as u64)
    }

    /// Makes the networks run at `lora_scale`: nothing to do when runtime LoRA is applied per
    /// call (the tensor-core LoRA kernels), else a reload.
    fn set_lora_scale(
        &mut self,
        key: Option<&FileKey>,
        pack: &Arc<Pack>,
        lora_scale: f32,
    ) -> CResult<()> {
        if self
            .nets
            .as_ref()
            .is_some_and(|n| n.lora == LoraState::PerCall)
        {
            return Ok(());
        }
        // The old weights may still be read by work enqueued on callers' streams.
        crate::backend::cuda::Executor::synchronize_device(self.backend.executor())?;
        // Free the device weights of the old scale before uploading the new ones.
        self.nets = None;
        self.nets = Some(super::shared_cuda::networks(
            key,
            pack,
            &self.backend,
            lora_scale,
        )?);
        Ok(())
    }
}

/// The networks an engine currently runs, with the LoRA scale they were loaded at.
pub struct Loaded {
    pub lora_scale: f32,
    pub nets: EngineNets,
}

/// `f2i_engine`: opaque to C.
#[allow(non_camel_case_types)]
pub struct f2i_engine {
    /// What the engine computes on ("cpu (2 threads, BLAS: …)", "cuda:0 … (f16)").
    pub device: String,
    pub memory_budget: usize,
    pub scale: u32,
    key: Option<FileKey>,
    pack: Arc<Pack>,
    /// Held for the whole of an `f2i_upscale`; a second thread finds it taken.
    loaded: Mutex<Loaded>,
    /// Tiles of this engine's calls whose f16 output was not finite and were rerun in f32.
    pub f32_reruns: AtomicU64,
}

impl f2i_engine {
    pub fn create(path: &Path, opts: &f2i_engine_options) -> CResult<f2i_engine> {
        let device = match opts.device {
            d if d == F2I_DEVICE_AUTO as u32 || d == F2I_DEVICE_CPU as u32 => {
                let cpu = d == F2I_DEVICE_CPU as u32;
                if cpu && opts.device_index != 0 && opts.device_index != -1 {
                    return Err(Failure::invalid(format!(
                        "device_index {} for the CPU (expected 0 or -1)",
                        opts.device_index
                    )));
                }
                if cpu { Device::Cpu } else { Device::Auto }
            }
            d if d == F2I_DEVICE_CUDA as u32 => match opts.device_index {
                -1 => Device::Cuda(0),
                i => Device::Cuda(usize::try_from(i).map_err(|_| {
                    Failure::invalid(format!("device_index {i} (expected a GPU ordinal ≥ 0)"))
                })?),
            },
            d => return Err(Failure::invalid(format!("unknown device {d}"))),
        };
        let precision = match opts.precision {
            p if p == F2I_PRECISION_F16 as u32 => Precision::F16,
            p if p == F2I_PRECISION_F32 as u32 => Precision::F32,
            p => return Err(Failure::invalid(format!("unknown precision {p}"))),
        };
        let budget = match opts.memory_budget_bytes {
            0 => DEFAULT_BUDGET,
            b => b,
        };
        let key = FileKey::of(path);
        let load = if opts.flags & F2I_ENGINE_MAP_PACK != 0 {
            PackLoad::Mapped
        } else {
            PackLoad::Private
        };
        let pack = shared_pack(key.as_ref(), path, load)?;
        let dev_opts = DeviceOptions {
            threads: opts.num_threads as usize,
            precision,
            kernel_dir: std::env::var_os("F2I_KERNEL_DIR").map(PathBuf::from),
            kernels: Default::default(),
        };
        // Test builds only: CUDA on the CPU execution harness (its device memory is harness
        // memory), so the device-memory interface runs in CI without a GPU.
        #[cfg(feature = "cuda-sim")]
        let device = match device {
            Device::Cuda(_) if std::env::var("F2I_CUDA_SIM").is_ok_and(|v| v.trim() == "1") => {
                Device::CudaSim
            }
            d => d,
        };
        let (opened, _) = device::open(device, &dev_opts)?;
        let device = opened.describe();
        #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
        let twin = opened.f32_twin(&dev_opts)?;
        let nets = match opened {
            Opened::Cpu(backend) => {
                let nets = shared_nets(key.as_ref(), &pack, &backend, 1.0)?;
                EngineNets::Cpu(backend, nets)
            }
            #[cfg(feature = "cuda")]
            Opened::Cuda(backend) => {
                let twin = match twin {
                    Some(Opened::Cuda(t)) => Some(t),
                    _ => None,
                };
                EngineNets::Cuda(CudaEngine::open(backend, twin, key.as_ref(), &pack)?)
            }
            #[cfg(feature = "cuda-sim")]
            Opened::CudaSim(backend) => {
                let twin = match twin {
                    Some(Opened::CudaSim(t)) => Some(t),
                    _ => None,
                };
                EngineNets::CudaSim(CudaEngine::open(backend, twin, key.as_ref(), &pack)?)
            }
        };
        Ok(f2i_engine {
            device,
            memory_budget: usize::try_from(budget).unwrap_or(usize::MAX),
            scale: pack.configs().pipeline.scale,
            key,
            pack,
            loaded: Mutex::new(Loaded {
                lora_scale: 1.0,
                nets,
            }),
            f32_reruns: AtomicU64::new(0),
        })
    }

    /// Takes the engine for one call, or fails when another thread has it.
    pub fn lock(&self) -> CResult<MutexGuard<'_, Loaded>> {
        match self.loaded.try_lock() {
            Ok(g) => Ok(g),
            // A call that failed with a caught panic leaves `Loaded` intact (it only swaps
            // whole values), so the engine stays usable.
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(Failure::invalid(
                "this engine is in use by another thread (one engine serves one thread at a time)",
            )),
        }
    }

    /// Makes `loaded` run at `lora_scale` (only runtime-LoRA packs change).
    pub fn set_lora_scale(&self, loaded: &mut Loaded, lora_scale: f32) -> CResult<()> {
        if self.pack.header().lora.mode != LoraMode::Runtime || loaded.lora_scale == lora_scale {
            return Ok(());
        }
        match &mut loaded.nets {
            EngineNets::Cpu(backend, nets) => {
                *nets = shared_nets(self.key.as_ref(), &self.pack, backend, lora_scale)?;
            }
            #[cfg(feature = "cuda")]
            EngineNets::Cuda(engine) => {
                engine.set_lora_scale(self.key.as_ref(), &self.pack, lora_scale)?
            }
            #[cfg(feature = "cuda-sim")]
            EngineNets::CudaSim(engine) => {
                engine.set_lora_scale(self.key.as_ref(), &self.pack, lora_scale)?
            }
        }
        loaded.lora_scale = lora_scale;
        Ok(())
    }
}
