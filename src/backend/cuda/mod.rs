//! The CUDA backend: every [`Backend`] op as a hand-written kernel from `kernels/*.cu`,
//! generic over where the kernels execute ([`Executor`]): a GPU through cudarc (`device/`,
//! feature `cuda`) or the CPU execution harness (`sim`, feature `cuda-sim`), which runs the very
//! same kernel sources on the host with CUDA's semantics. Launch geometry, the arena, weight
//! upload and carving, f16 conversion and the op → kernel mapping (`ops/`) are this one code in
//! both, so CI exercises all of it without a GPU.
//!
//! Storage is f16 (default) or f32 ([`Precision`]); kernels always compute in f32. GroupNorm
//! statistics and the x0 step are f32 arithmetic; the colour fix runs on the host in f32.

pub mod executor;
mod kernel_names;
mod layouts;
mod memory;
mod ops;
pub mod precision;
pub mod probe;
pub mod sources;

#[cfg(feature = "cuda")]
pub mod device;
#[cfg(feature = "cuda-sim")]
pub mod sim;

pub use executor::{Arg, DevPtr, Executor, Launch};
pub use memory::{CudaArena, CudaWeight, Layout};
pub use ops::frame::{
    DeviceFrame, FrameBuffers, FrameLayout, Placement, has_alpha as frame_has_alpha,
};
pub use precision::Precision;

use super::{Backend, Conv2d, Glu, GroupNormArgs, HostData, LoraArgs, Rows, View, same_len};
use crate::error::{Error, Result};
use crate::tensor::{decode_f32, encode_f32};
use memory::WeightStore;
use std::sync::Mutex;

/// Which kernel family an op uses where both exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// Tensor-core kernels (f16 storage only; ops without one, and f32 storage, use the
    /// simple kernels).
    #[default]
    TensorCore,
    /// The simple part-1 kernels everywhere: the fallback and the second opinion.
    Simple,
}

impl std::str::FromStr for Kernels {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tensor-core" => Ok(Kernels::TensorCore),
            "simple" => Ok(Kernels::Simple),
            _ => Err(format!(
                "unknown kernel family `{s}` (expected tensor-core or simple)"
            )),
        }
    }
}

pub struct CudaBackend<E: Executor> {
    exec: E,
    precision: Precision,
    kernels: Kernels,
    weights: Mutex<WeightStore>,
    /// f32 scratch of multi-launch ops (GroupNorm's partial statistics), allocated on first use
    /// and kept: ops on one stream use it one after the other.
    workspace: std::sync::OnceLock<(E::Buffer, DevPtr)>,
    /// Device allocations made so far (arenas, workspace, frame buffers, weight slabs).
    allocations: std::sync::atomic::AtomicU64,
}

impl<E: Executor> CudaBackend<E> {
    pub fn new(exec: E, precision: Precision) -> CudaBackend<E> {
        CudaBackend {
            exec,
            precision,
            kernels: Kernels::default(),
            weights: Mutex::new(WeightStore::default()),
            workspace: std::sync::OnceLock::new(),
            allocations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn executor(&self) -> &E {
        &self.exec
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Chooses the kernel family (default: tensor cores where a kernel exists).
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Whether ops should take their tensor-core kernel: f16 storage and not forced simple.
    pub(crate) fn tensor_cores(&self) -> bool {
        self.kernels == Kernels::TensorCore && self.precision == Precision::F16
    }

    /// Device allocations this backend has made (arenas, workspace, frame buffers, weight
    /// slabs): what a reserved engine's calls must leave unchanged.
    pub fn device_allocations(&self) -> u64 {
        self.allocations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `bytes` of device memory, counted.
    pub(crate) fn device_alloc(&self, bytes: usize) -> Result<E::Buffer> {
        let buf = self.exec.alloc(bytes)?;
        self.allocations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(buf)
    }

    /// Uploads the weights staged so far now (they otherwise go up at their first use).
    pub fn upload_staged(&self) -> Result<()> {
        let mut store = self.store()?;
        let before = store.device_bytes;
        store.flush(&self.exec)?;
        if store.device_bytes != before {
            self.allocations
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// Bytes of weights uploaded to the device so far.
    pub fn weight_bytes(&self) -> usize {
        self.store().map(|s| s.device_bytes).unwrap_or(0)
    }

    fn store(&self) -> Result<std::sync::MutexGuard<'_, WeightStore>> {
        self.weights
            .lock()
            .map_err(|_| Error::InvalidArgument("CUDA weight store poisoned by a panic".into()))
    }

    /// The device address of the f32 workspace (`ops::norm::WORKSPACE_BYTES`).
    pub(crate) fn workspace(&self) -> Result<DevPtr> {
        if let Some((_, ptr)) = self.workspace.get() {
            return Ok(*ptr);
        }
        let buf = self.device_alloc(ops::norm::WORKSPACE_BYTES)?;
        let ptr = self.exec.ptr(&buf);
        // One thread drives a backend; were there a race, the loser's buffer is freed here.
        let _ = self.workspace.set((buf, ptr));
        self.workspace
            .get()
            .map(|(_, p)| *p)
            .ok_or_else(|| Error::Device("workspace allocation lost".into()))
    }

    /// The device address of an arena view.
    pub(crate) fn act(&self, a: &CudaArena<E::Buffer>, v: View) -> Result<DevPtr> {
        a.ptr(v)
    }

    /// The device address of a weight in its reference layout (uploading staged weights on
    /// first use).
    pub(crate) fn weight(&self, w: &CudaWeight) -> Result<DevPtr> {
        match w.layout() {
            Layout::Plain { .. } => self.weight_any(w),
            other => Err(Error::InvalidArgument(format!(
                "a weight packed as {other:?} used by an op that reads the reference layout"
            ))),
        }
    }

    /// The device address of an optional weight (a bias), 0 when absent: the kernels' "none".
    pub(crate) fn weight_or_null(&self, w: Option<&CudaWeight>) -> Result<DevPtr> {
        w.map_or(Ok(0), |w| self.weight(w))
    }

    /// The device address of a weight in any layout (ops that check [`CudaWeight::layout`]).
    pub(crate) fn weight_any(&self, w: &CudaWeight) -> Result<DevPtr> {
        let mut store = self.store()?;
        let before = store.device_bytes;
        let ptr = store.ptr(&self.exec, w)?;
        if store.device_bytes != before {
            self.allocations
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(ptr)
    }

    pub(crate) fn stage(&self, values: &[f32], layout: Layout) -> Result<CudaWeight> {
        self.store()?.stage(self.precision, values, layout)
    }

    /// Launches `op` compiled for this backend's storage type (`op_f16` / `op_f32`).
    pub(crate) fn run(&self, op: &str, geometry: Launch, args: &[Arg]) -> Result<()> {
        let name = format!("{op}_{}", self.precision.suffix());
        self.exec.launch(&name, &geometry, args)
    }
}

/// `n` as a kernel's `int` argument.
pub(crate) fn int(n: usize) -> Result<Arg> {
    i32::try_from(n).map(Arg::I32).map_err(|_| {
        Error::Unsupported(format!(
            "size {n} exceeds the CUDA kernels' 32-bit index range"
        ))
    })
}

/// A weight's values in f32 on the host, checked against its shape.
pub(crate) fn host_values(shape: &[usize], data: HostData) -> Result<Vec<f32>> {
    let n: usize = shape.iter().product();
    let values = match data {
        HostData::F32(v) => v,
        HostData::Encoded { dtype, bytes } => decode_f32(dtype, &bytes),
        HostData::Packed { pack, name } => {
            let t = pack.require(&name)?;
            decode_f32(t.dtype, t.data)
        }
    };
    if values.len() != n {
        return Err(Error::InvalidArgument(format!(
            "weight has {} values, shape {shape:?} needs {n}",
            values.len()
        )));
    }
    Ok(values)
}

/// Rejects overlapping output/input views, as the CPU backend does.
pub(crate) fn disjoint(outs: &[View], ins: &[View]) -> Result<()> {
    for (i, o) in outs.iter().enumerate() {
        for other in outs[i + 1..].iter().chain(ins) {
            if o.overlaps(other) {
                return Err(Error::InvalidArgument(format!(
                    "output view {o:?} overlaps {other:?}"
                )));
            }
        }
    }
    Ok(())
}

impl<E: Executor> Backend for CudaBackend<E> {
    type Arena = CudaArena<E::Buffer>;
    type Weight = CudaWeight;

    fn name(&self) -> String {
        format!("{} ({})", self.exec.describe(), self.precision.suffix())
    }

    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }

    fn alloc_arena(&self, elems: usize) -> Result<Self::Arena> {
        let elem_bytes = self.precision.bytes();
        let bytes = elems.checked_mul(elem_bytes).ok_or_else(|| {
            Error::OutOfMemory(format!(
                "a {elems}-element arena overflows the address space"
            ))
        })?;
        let buf = if bytes == 0 {
            None
        } else {
            Some(self.device_alloc(bytes)?)
        };
        let base = buf.as_ref().map_or(0, |b| self.exec.ptr(b));
        Ok(CudaArena {
            _buf: buf,
            base,
            elems,
            elem_bytes,
        })
    }

    fn upload(&self, shape: &[usize], data: HostData) -> Result<Self::Weight> {
        let values = host_values(shape, data)?;
        // Convolution weights go up in the tensor-core GEMM's layout, once.
        match *shape {
            [c_out, c_in, kh, kw] if self.tensor_cores() => {
                let (packed, layout) = layouts::conv_tc(&values, [c_out, c_in, kh, kw], c_out);
                self.stage(&packed, layout)
            }
            _ => self.stage(
                &values,
                Layout::Plain {
                    shape: shape.to_vec(),
                },
            ),
        }
    }

    fn runtime_lora(&self) -> bool {
        true
    }

    fn upload_lora(
        &self,
        a: (&[usize], HostData),
        b: (&[usize], HostData),
    ) -> Result<(Self::Weight, Self::Weight)> {
        if !self.tensor_cores() {
            return Ok((self.upload(a.0, a.1)?, self.upload(b.0, b.1)?));
        }
        ops::lora::upload(self, a, b)
    }

    fn write(&self, a: &mut Self::Arena, dst: View, src: &[f32]) -> Result<()> {
        same_len(dst.len, src.len())?;
        let ptr = a.ptr(dst)?;
        self.exec
            .copy_to_device(ptr, &encode_f32(self.precision.dtype(), src))
    }

    fn read(&self, a: &Self::Arena, src: View, dst: &mut [f32]) -> Result<()> {
        same_len(src.len, dst.len())?;
        let ptr = a.ptr(src)?;
        let mut bytes = vec![0u8; src.len * self.precision.bytes()];
        self.exec.copy_to_host(ptr, &mut bytes)?;
        dst.copy_from_slice(&decode_f32(self.precision.dtype(), &bytes));
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        self.exec.synchronize()
    }

    fn conv2d_scratch(&self, p: &Conv2d, h: usize, w: usize) -> usize {
        ops::conv::scratch_len(p, h, w, self.tensor_cores())
    }

    fn conv2d_lora_scratch(&self, p: &Conv2d, rank: usize, h: usize, w: usize) -> usize {
        ops::lora::conv2d_scratch(self, p, rank, h, w)
    }

    fn conv2d_lora(
        &self,
        a: &mut Self::Arena,
        p: &Conv2d,
        x: View,
        h: usize,
        w: usize,
        weight: &Self::Weight,
        bias: Option<&Self::Weight>,
        lora: &LoraArgs<Self::Weight>,
        out: View,
        scratch: View,
        accumulate: bool,
    ) -> Result<()> {
        ops::lora::conv2d(
            self, a, p, x, h, w, weight, bias, lora, out, scratch, accumulate,
        )
    }

    fn linear_lora_scratch(&self, rows: usize, rank: usize) -> usize {
        ops::lora::linear_scratch(self, rows, rank)
    }

    fn linear_lora(
        &self,
        a: &mut Self::Arena,
        x: View,
        rows: usize,
        n_in: usize,
        w: &Self::Weight,
        n_out: usize,
        bias: Option<&Self::Weight>,
        lora: &LoraArgs<Self::Weight>,
        out: View,
        scratch: View,
        accumulate: bool,
    ) -> Result<()> {
        ops::lora::linear(
            self, a, x, rows, n_in, w, n_out, bias, lora, out, scratch, accumulate,
        )
    }

    fn conv2d(
        &self,
        a: &mut Self::Arena,
        p: &Conv2d,
        x: View,
        h: usize,
        w: usize,
        weight: &Self::Weight,
        bias: Option<&Self::Weight>,
        out: View,
        scratch: View,
        accumulate: bool,
    ) -> Result<()> {
        ops::conv::conv2d(
            self,
            a,
            p,
            x,
            h,
            w,
            weight,
            bias,
            out,
            scratch,
            (1.0, 1.0),
            accumulate,
        )
    }

    fn conv2d_scaled_scratch(&self, p: &Conv2d, h: usize, w: usize) -> usize {
        self.conv2d_scratch(p, h, w)
    }

    fn conv2d_scaled(
        &self,
        a: &mut Self::Arena,
        p: &Conv2d,
        x: View,
        h: usize,
        w: usize,
        weight: &Self::Weight,
        bias: Option<&Self::Weight>,
        scales: (f32, f32),
        out: View,
        scratch: View,
        accumulate: bool,
    ) -> Result<()> {
        // Both kernel families scale in their f32 epilogue, before the f16 rounding.
        ops::conv::conv2d(
            self, a, p, x, h, w, weight, bias, out, scratch, scales, accumulate,
        )
    }

    fn folds_group_norm_into_conv(&self) -> bool {
        self.tensor_cores()
    }

    fn group_norm_conv2d_scratch(&self, p: &Conv2d, h: usize, w: usize) -> usize {
        ops::norm_conv::scratch_len(self, p, h, w)
    }

    fn group_norm_conv2d(
        &self,
        a: &mut Self::Arena,
        x: View,
        h: usize,
        w: usize,
        norm: &GroupNormArgs<Self::Weight>,
        p: &Conv2d,
        weight: &Self::Weight,
        bias: Option<&Self::Weight>,
        scales: (f32, f32),
        out: View,
        scratch: View,
        accumulate: bool,
    ) -> Result<()> {
        ops::norm_conv::group_norm_conv2d(
            self, a, x, h, w, norm, p, weight, bias, scales, out, scratch, accumulate,
        )
    }

    fn f16_storage(&self) -> bool {
        self.precision == Precision::F16
    }

    fn group_norm(
        &self,
        a: &mut Self::Arena,
        x: View,
        out: View,
        c: usize,
        hw: usize,
        groups: usize,
        eps: f32,
        gamma: &Self::Weight,
        beta: &Self::Weight,
        silu: bool,
    ) -> Result<()> {
        ops::norm::group_norm(self, a, x, out, c, hw, groups, eps, gamma, beta, silu)
    }

    fn layer_norm(
        &self,
        a: &mut Self::Arena,
        x: View,
        out: View,
        rows: usize,
        d: usize,
        eps: f32,
        gamma: &Self::Weight,
        beta: &Self::Weight,
    ) -> Result<()> {
        ops::norm::layer_norm(self, a, x, out, rows, d, eps, gamma, beta)
    }

    fn linear(
        &self,
        a: &mut Self::Arena,
        x: View,
        rows: usize,
        n_in: usize,
        w: &Self::Weight,
        n_out: usize,
        bias: Option<&Self::Weight>,
        out: View,
        accumulate: bool,
    ) -> Result<()> {
        ops::linear::linear(self, a, x, rows, n_in, w, n_out, bias, out, accumulate)
    }

    fn attention_scratch(&self, tq: usize, tk: usize, heads: usize, head_dim: usize) -> usize {
        ops::attention::scratch_len(tq, tk, heads, head_dim)
    }

    fn attention(
        &self,
        a: &mut Self::Arena,
        q: Rows,
        k: Rows,
        v: Rows,
        tq: usize,
        tk: usize,
        heads: usize,
        head_dim: usize,
        scale: f32,
        out: View,
        scratch: View,
    ) -> Result<()> {
        ops::attention::attention(
            self, a, q, k, v, tq, tk, heads, head_dim, scale, out, scratch,
        )
    }

    fn silu(&self, a: &mut Self::Arena, x: View) -> Result<()> {
        ops::elementwise::silu(self, a, x)
    }

    fn gelu(&self, a: &mut Self::Arena, x: View, tanh_approx: bool) -> Result<()> {
        ops::elementwise::gelu(self, a, x, tanh_approx)
    }

    fn glu(
        &self,
        a: &mut Self::Arena,
        kind: Glu,
        x: View,
        rows: usize,
        d: usize,
        out: View,
    ) -> Result<()> {
        ops::elementwise::glu(self, a, kind, x, rows, d, out)
    }

    fn add(&self, a: &mut Self::Arena, x: View, y: View) -> Result<()> {
        ops::elementwise::add(self, a, x, y)
    }

    fn add_weight(&self, a: &mut Self::Arena, x: View, w: &Self::Weight) -> Result<()> {
        ops::elementwise::add_weight(self, a, x, w)
    }

    fn add_channel_bias(&self, a: &mut Self::Arena, x: View, c: usize, v: View) -> Result<()> {
        ops::elementwise::add_channel_bias(self, a, x, c, v)
    }

    fn scale_add(
        &self,
        a: &mut Self::Arena,
        x: View,
        y: View,
        s: &Self::Weight,
        d: usize,
    ) -> Result<()> {
        ops::elementwise::scale_add(self, a, x, y, s, d)
    }

    fn affine(
        &self,
        a: &mut Self::Arena,
        x: View,
        add_before: f32,
        mul: f32,
        add_after: f32,
    ) -> Result<()> {
        ops::elementwise::affine(self, a, x, add_before, mul, add_after)
    }

    fn upsample_nearest(
        &self,
        a: &mut Self::Arena,
        x: View,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        out: View,
    ) -> Result<()> {
        ops::resize::upsample_nearest(self, a, x, c, h, w, oh, ow, out)
    }

    fn bicubic(
        &self,
        a: &mut Self::Arena,
        x: View,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        scale_factor: Option<(f64, f64)>,
        antialias: bool,
        out: View,
        scratch: View,
    ) -> Result<()> {
        ops::resize::bicubic(
            self,
            a,
            x,
            c,
            h,
            w,
            oh,
            ow,
            scale_factor,
            antialias,
            out,
            scratch,
        )
    }

    fn bicubic_scratch(&self, c: usize, h: usize, ow: usize, antialias: bool) -> usize {
        ops::resize::bicubic_scratch(c, h, ow, antialias)
    }

    fn clamp(&self, a: &mut Self::Arena, x: View, lo: f32, hi: f32) -> Result<()> {
        ops::elementwise::clamp(self, a, x, lo, hi)
    }

    fn channel_normalize(
        &self,
        a: &mut Self::Arena,
        x: View,
        mean: &[f32],
        std: &[f32],
    ) -> Result<()> {
        ops::elementwise::channel_normalize(self, a, x, mean, std)
    }

    fn pad_reflect(
        &self,
        a: &mut Self::Arena,
        x: View,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        out: View,
    ) -> Result<()> {
        ops::resize::pad_reflect(self, a, x, c, h, w, oh, ow, out)
    }

    fn crop(
        &self,
        a: &mut Self::Arena,
        x: View,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        out: View,
    ) -> Result<()> {
        ops::resize::crop(self, a, x, c, h, w, oh, ow, out)
    }

    fn x0_from_eps(
        &self,
        a: &mut Self::Arena,
        z: View,
        eps: View,
        c1: f32,
        c2: f32,
        out: View,
    ) -> Result<()> {
        ops::elementwise::x0_from_eps(self, a, z, eps, c1, c2, out)
    }

    fn transpose(
        &self,
        a: &mut Self::Arena,
        x: View,
        rows: usize,
        cols: usize,
        out: View,
    ) -> Result<()> {
        ops::resize::transpose(self, a, x, rows, cols, out)
    }

    fn copy(&self, a: &mut Self::Arena, src: View, dst: View) -> Result<()> {
        ops::elementwise::copy(self, a, src, dst)
    }

    fn copy_weight(&self, a: &mut Self::Arena, w: &Self::Weight, dst: View) -> Result<()> {
        ops::elementwise::copy_weight(self, a, w, dst)
    }

    fn timestep_embedding(
        &self,
        a: &mut Self::Arena,
        t: f32,
        dim: usize,
        flip_sin_to_cos: bool,
        freq_shift: f32,
        out: View,
    ) -> Result<()> {
        ops::elementwise::timestep_embedding(self, a, t, dim, flip_sin_to_cos, freq_shift, out)
    }
}
