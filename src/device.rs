//! Choosing where an engine computes: `auto` (a CUDA GPU when a usable one exists, else the
//! CPU), `cpu`, `cuda[:N]`, or `cuda-sim` (the CUDA backend with its kernels executed on the
//! CPU execution harness; builds with the `cuda-sim` feature only — slow, for checking).

use crate::backend::cpu::CpuBackend;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
use crate::backend::cuda::CudaBackend;
#[cfg(feature = "cuda")]
use crate::backend::cuda::device::DeviceExecutor;
#[cfg(feature = "cuda-sim")]
use crate::backend::cuda::sim::SimExecutor;
use crate::backend::cuda::{Kernels, Precision};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// A device as the CLI (`--device`) and the C API name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Auto,
    Cpu,
    Cuda(usize),
    CudaSim,
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Device> {
        let bad = || {
            Error::InvalidArgument(format!(
                "device `{s}`: expected auto, cpu, cuda, cuda:N or cuda-sim"
            ))
        };
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            "cuda-sim" => Ok(Device::CudaSim),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => n.parse().map(Device::Cuda).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

/// How to open a device.
#[derive(Debug, Clone, Default)]
pub struct DeviceOptions {
    /// CPU threads (0 = all cores).
    pub threads: usize,
    /// CUDA storage precision (the CPU is always f32).
    pub precision: Precision,
    /// Precompiled cubins (`f2idiff kernels build`); `None`: NVRTC at first use, cached.
    pub kernel_dir: Option<PathBuf>,
    /// CUDA kernel family: tensor cores where they exist (default), or the simple kernels.
    pub kernels: Kernels,
}

/// An opened backend.
pub enum Opened {
    Cpu(CpuBackend),
    #[cfg(feature = "cuda")]
    Cuda(CudaBackend<DeviceExecutor>),
    #[cfg(feature = "cuda-sim")]
    CudaSim(CudaBackend<SimExecutor>),
}

impl Opened {
    /// The f16 safety net's rerun backend: for a CUDA backend storing f16, an f32 one on the
    /// same device with the same kernels (see [`crate::pipeline::F32Fallback`]); `None` for
    /// backends that already compute in f32.
    pub fn f32_twin(&self, opts: &DeviceOptions) -> Result<Option<Opened>> {
        #[cfg_attr(
            not(any(feature = "cuda", feature = "cuda-sim")),
            allow(unused_variables)
        )]
        let f32_opts = DeviceOptions {
            precision: Precision::F32,
            ..opts.clone()
        };
        match self {
            Opened::Cpu(_) => Ok(None),
            #[cfg(feature = "cuda")]
            Opened::Cuda(b) if b.precision() == Precision::F16 => {
                open_cuda(b.executor().info().ordinal, &f32_opts).map(Some)
            }
            #[cfg(feature = "cuda-sim")]
            Opened::CudaSim(b) if b.precision() == Precision::F16 => {
                open_sim(&f32_opts).map(|(o, _)| Some(o))
            }
            #[allow(unreachable_patterns)]
            _ => Ok(None),
        }
    }

    /// What was opened, for messages ("cpu (2 threads, BLAS: …)", "cuda:0 NVIDIA H200 (sm_90) (f16)").
    pub fn describe(&self) -> String {
        use crate::backend::Backend;
        match self {
            Opened::Cpu(b) => b.name(),
            #[cfg(feature = "cuda")]
            Opened::Cuda(b) => b.name(),
            #[cfg(feature = "cuda-sim")]
            Opened::CudaSim(b) => b.name(),
        }
    }
}

/// Opens `device`. `auto` tries CUDA device 0 and falls back to the CPU; the second value
/// then says why the GPU was not used.
pub fn open(device: Device, opts: &DeviceOptions) -> Result<(Opened, Option<String>)> {
    match device {
        Device::Cpu => Ok((Opened::Cpu(CpuBackend::new(opts.threads)?), None)),
        Device::Cuda(ordinal) => Ok((open_cuda(ordinal, opts)?, None)),
        Device::Auto => match open_cuda(0, opts) {
            Ok(b) => Ok((b, None)),
            Err(e) => Ok((
                Opened::Cpu(CpuBackend::new(opts.threads)?),
                Some(e.to_string()),
            )),
        },
        Device::CudaSim => open_sim(opts),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize, opts: &DeviceOptions) -> Result<Opened> {
    let exec = DeviceExecutor::new(ordinal, opts.kernel_dir.clone())?;
    Ok(Opened::Cuda(
        CudaBackend::new(exec, opts.precision).with_kernels(opts.kernels),
    ))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize, _opts: &DeviceOptions) -> Result<Opened> {
    Err(Error::Unsupported(format!(
        "cuda:{ordinal}: this build of f2idiff has no CUDA backend (built without the `cuda` \
         feature)"
    )))
}

#[cfg(feature = "cuda-sim")]
fn open_sim(opts: &DeviceOptions) -> Result<(Opened, Option<String>)> {
    let exec = SimExecutor::from_env();
    Ok((
        Opened::CudaSim(CudaBackend::new(exec, opts.precision).with_kernels(opts.kernels)),
        None,
    ))
}

#[cfg(not(feature = "cuda-sim"))]
fn open_sim(_opts: &DeviceOptions) -> Result<(Opened, Option<String>)> {
    Err(Error::Unsupported(
        "cuda-sim: this build has no CPU execution harness (build with --features cuda-sim)".into(),
    ))
}
