//! The compute backends. Every op the three networks need is declared once, here, on arena
//! views; the CPU backend (`cpu/`) is the oracle, the CUDA backend (a later issue) implements
//! the same trait with device memory and an asynchronous stream.
//!
//! Conventions: activations are row-major, batch 1 — images `[C, H, W]`, token matrices
//! `[T, D]`. A [`View`] is a contiguous run of the arena (`len` elements at `offset`). Ops may
//! run asynchronously (CUDA): results are only guaranteed after [`Backend::synchronize`] or a
//! [`Backend::read`]. Ops that take an `out` view never alias it with an input unless documented
//! as in-place; backends reject overlapping views with an error instead of computing garbage.

pub mod cpu;
pub mod cuda;
pub mod lora;
pub mod norm_conv;
pub mod scaled;

use crate::error::Result;
use crate::pack::Pack;
use crate::tensor::DType;
use std::sync::Arc;

pub use cpu::kernels::conv::Conv2d;
pub use lora::LoraArgs;
pub use norm_conv::GroupNormArgs;

/// The length check every backend's `read`/`write`/`copy` makes.
pub(crate) fn same_len(a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(crate::error::Error::InvalidArgument(format!(
            "length mismatch: {a} vs {b}"
        )))
    }
}

/// A contiguous run of `len` arena elements starting at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub offset: usize,
    pub len: usize,
}

impl View {
    pub fn end(&self) -> usize {
        self.offset + self.len
    }
    pub fn overlaps(&self, other: &View) -> bool {
        self.len > 0 && other.len > 0 && self.offset < other.end() && other.offset < self.end()
    }
    /// The sub-range `[start, start + len)` of this view.
    pub fn slice(&self, start: usize, len: usize) -> View {
        debug_assert!(start + len <= self.len);
        View {
            offset: self.offset + start,
            len,
        }
    }
}

/// A matrix in the arena whose rows are `row_stride` elements apart (for attention's q/k/v,
/// which are column blocks of one fused projection or separate tensors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rows {
    pub view: View,
    pub row_stride: usize,
}

/// Where a parameter's values come from before upload.
pub enum HostData {
    /// In place in a mapped pack (any stored dtype; the backend converts as it needs).
    Packed { pack: Arc<Pack>, name: String },
    /// Computed on the host (merged LoRA, interpolated position embeddings, test weights).
    F32(Vec<f32>),
    /// Made on the host in a stored precision: little-endian values of `dtype`, as a pack holds
    /// them (benchmark weights in f16 / bf16).
    Encoded { dtype: DType, bytes: Vec<u8> },
}

/// Gated linear units: `x[:, :d] ⊙ act(x[:, d:])` (GEGLU) or `act(x[:, :d]) ⊙ x[:, d:]` (SwiGLU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Glu {
    /// diffusers `GEGLU`: value first, exact-GELU gate second.
    GeluGateSecond,
    /// DINOv2 SwiGLU: SiLU gate first, value second.
    SiluGateFirst,
}

/// Everything a network needs from a device. See the module docs for conventions.
pub trait Backend {
    /// Arena memory.
    type Arena;
    /// A parameter resident where the backend computes.
    type Weight;

    fn name(&self) -> String;
    /// Runs `f` in the backend's execution context (the CPU backend's thread pool).
    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R;
    /// Runs `f` (which plans, on this thread) with scratch sizes as a one-thread backend would
    /// ask for them, so that what it plans depends on the problem only, never on the thread
    /// count: the automatic tile is chosen this way, and the output cannot depend on the
    /// pool. The CPU's scratch grows with its pool; other backends plan the same either way.
    fn plan_as_one_thread<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
    fn alloc_arena(&self, elems: usize) -> Result<Self::Arena>;
    fn upload(&self, shape: &[usize], data: HostData) -> Result<Self::Weight>;
    fn write(&self, a: &mut Self::Arena, dst: View, src: &[f32]) -> Result<()>;
    fn read(&self, a: &Self::Arena, src: View, dst: &mut [f32]) -> Result<()>;
    fn synchronize(&self) -> Result<()>;

    /// Floats of scratch `conv2d` needs for this convolution on an `h × w` input.
    fn conv2d_scratch(&self, p: &Conv2d, h: usize, w: usize) -> usize;
    /// `out (+)= conv(x) + bias`; `x` is `[c_in, h, w]`.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;
    /// Whether activations are stored in f16 (then packs' f16 pre-scales apply).
    fn f16_storage(&self) -> bool {
        false
    }
    /// Floats of scratch `conv2d_scaled` needs.
    fn conv2d_scaled_scratch(&self, p: &Conv2d, h: usize, w: usize) -> usize {
        scaled::conv2d_scratch(self, p, h, w)
    }
    /// `out (+)= alpha·conv(x) + beta·bias`, `scales` = (`alpha`, `beta`): a convolution under
    /// f16 pre-scales (see [`scaled`]).
    #[allow(clippy::too_many_arguments)]
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
        scaled::conv2d(
            self, a, p, x, h, w, weight, bias, scales, out, scratch, accumulate,
        )
    }
    /// Whether [`Backend::group_norm_conv2d`] saves work over the two ops (then the model runs
    /// it for every GroupNorm that feeds a convolution).
    fn folds_group_norm_into_conv(&self) -> bool {
        false
    }
    /// Floats of scratch `group_norm_conv2d` needs.
    fn group_norm_conv2d_scratch(&self, p: &Conv2d, h: usize, w: usize) -> usize {
        norm_conv::scratch_len(self, p, h, w)
    }
    /// `out (+)= scales.0 · conv(GroupNorm(x)[+SiLU]) + scales.1 · bias` (see [`norm_conv`]);
    /// `x` is `[p.c_in, h, w]`.
    #[allow(clippy::too_many_arguments)]
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
        norm_conv::group_norm_conv2d(
            self, a, x, h, w, norm, p, weight, bias, scales, out, scratch, accumulate,
        )
    }
    /// GroupNorm over `[c, hw]`, optionally fused with SiLU; `out == x` runs in place.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;
    /// LayerNorm over the last dim of `[rows, d]`.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;
    /// `out[rows, n_out] (+)= x[rows, n_in] · wᵀ + bias` (`w` is `[n_out, n_in]`).
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;
    /// Whether runtime-LoRA packs should keep their LoRA pairs beside the base weights and
    /// apply them per call ([`Backend::conv2d_lora`], [`Backend::linear_lora`]: the scale can
    /// change between calls with no reload) rather than merge them at load (the CPU backend:
    /// a merged weight costs nothing per call).
    fn runtime_lora(&self) -> bool {
        false
    }
    /// Uploads a runtime-LoRA pair, `a` = `lora_A` `[r, in, k…]` and `b` = `lora_B` `[out, r,
    /// 1…]`, in whatever layout the backend's LoRA ops read.
    fn upload_lora(
        &self,
        a: (&[usize], HostData),
        b: (&[usize], HostData),
    ) -> Result<(Self::Weight, Self::Weight)> {
        Ok((self.upload(a.0, a.1)?, self.upload(b.0, b.1)?))
    }
    /// Floats of scratch `conv2d_lora` needs.
    fn conv2d_lora_scratch(&self, p: &Conv2d, rank: usize, h: usize, w: usize) -> usize {
        lora::conv2d_scratch(self, p, rank, h, w)
    }
    /// `out (+)= conv(x) + bias + s · conv₁ₓ₁(conv(x, A), B)` (see [`lora`]).
    #[allow(clippy::too_many_arguments)]
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
        lora::conv2d(
            self, a, p, x, h, w, weight, bias, lora, out, scratch, accumulate,
        )
    }
    /// Floats of scratch `linear_lora` needs.
    fn linear_lora_scratch(&self, rows: usize, rank: usize) -> usize {
        rows * rank
    }
    /// `out (+)= x·wᵀ + bias + s · (x·Aᵀ)·Bᵀ` (see [`lora`]).
    #[allow(clippy::too_many_arguments)]
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
        lora::linear(
            self, a, x, rows, n_in, w, n_out, bias, lora, out, scratch, accumulate,
        )
    }
    /// Floats of scratch `attention` needs.
    fn attention_scratch(&self, tq: usize, tk: usize, heads: usize, head_dim: usize) -> usize;
    /// Multi-head scaled dot-product attention, `softmax(q kᵀ · scale) v` per head; memory
    /// linear in tokens.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;
    fn silu(&self, a: &mut Self::Arena, x: View) -> Result<()>;
    fn gelu(&self, a: &mut Self::Arena, x: View, tanh_approx: bool) -> Result<()>;
    /// `x[rows, 2d] → out[rows, d]`.
    fn glu(
        &self,
        a: &mut Self::Arena,
        kind: Glu,
        x: View,
        rows: usize,
        d: usize,
        out: View,
    ) -> Result<()>;
    /// `x += y`.
    fn add(&self, a: &mut Self::Arena, x: View, y: View) -> Result<()>;
    /// `x += w` (same number of elements).
    fn add_weight(&self, a: &mut Self::Arena, x: View, w: &Self::Weight) -> Result<()>;
    /// `x[ch, :] += v[ch]` for `x` of `[c, hw]` (time-embedding injection).
    fn add_channel_bias(&self, a: &mut Self::Arena, x: View, c: usize, v: View) -> Result<()>;
    /// `x[r, j] += s[j] · y[r, j]` (layer-scaled residual), `d` columns.
    fn scale_add(
        &self,
        a: &mut Self::Arena,
        x: View,
        y: View,
        s: &Self::Weight,
        d: usize,
    ) -> Result<()>;
    /// `x = (x + add_before) · mul + add_after`, elementwise (latent shift and scale, input
    /// centring).
    fn affine(
        &self,
        a: &mut Self::Arena,
        x: View,
        add_before: f32,
        mul: f32,
        add_after: f32,
    ) -> Result<()>;
    /// Nearest-neighbour resize of `[c, h, w]` to `[c, oh, ow]` (PyTorch `mode="nearest"`).
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;
    /// PyTorch bicubic, `align_corners=False`: plain (`scale_factor` as PyTorch's), or with
    /// `antialias` (then `scale_factor` must be `None`; needs [`Self::bicubic_scratch`]).
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;
    fn bicubic_scratch(&self, c: usize, h: usize, ow: usize, antialias: bool) -> usize;
    /// `x = min(max(x, lo), hi)`.
    fn clamp(&self, a: &mut Self::Arena, x: View, lo: f32, hi: f32) -> Result<()>;
    /// `x[ch] = (x[ch] − mean[ch]) / std[ch]` for `x` of `[c, hw]` (ImageNet normalisation).
    fn channel_normalize(
        &self,
        a: &mut Self::Arena,
        x: View,
        mean: &[f32],
        std: &[f32],
    ) -> Result<()>;
    /// Reflect-pads `[c, h, w]` at the bottom and right to `[c, oh, ow]` (PyTorch `"reflect"`:
    /// the edge is not repeated; needs `oh − h < h` and `ow − w < w`).
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;
    /// The top-left `[c, oh, ow]` of `[c, h, w]`.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;
    /// The one-step x0 prediction `out = (z − c1·eps) / c2`, elementwise in f32.
    fn x0_from_eps(
        &self,
        a: &mut Self::Arena,
        z: View,
        eps: View,
        c1: f32,
        c2: f32,
        out: View,
    ) -> Result<()>;
    /// `[rows, cols] → [cols, rows]`.
    fn transpose(
        &self,
        a: &mut Self::Arena,
        x: View,
        rows: usize,
        cols: usize,
        out: View,
    ) -> Result<()>;
    /// Copies `src` into `dst` (same length; used for concatenation and slicing).
    fn copy(&self, a: &mut Self::Arena, src: View, dst: View) -> Result<()>;
    /// Copies a parameter into the arena.
    fn copy_weight(&self, a: &mut Self::Arena, w: &Self::Weight, dst: View) -> Result<()>;
    /// diffusers `get_timestep_embedding` of one timestep into `out[dim]`.
    fn timestep_embedding(
        &self,
        a: &mut Self::Arena,
        t: f32,
        dim: usize,
        flip_sin_to_cos: bool,
        freq_shift: f32,
        out: View,
    ) -> Result<()>;
}
