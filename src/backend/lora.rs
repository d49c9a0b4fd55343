//! Runtime LoRA on a convolution or linear map, `y = W·x + b + s·B·(A·x)` with the scale `s`
//! chosen per call (packs made with `--lora runtime`), composed from a backend's plain ops:
//! the base map, the rank-`r` down projection `u = A·x` into scratch, `u *= s`, and the up
//! projection accumulated onto the output. Backends with a fused kernel (CUDA's tensor-core
//! GEMM) override [`Backend::conv2d_lora`] / [`Backend::linear_lora`] and fall back to this.

use super::{Backend, Conv2d, View};
use crate::error::{Error, Result};

/// One runtime-LoRA pair and its scale: `A` is PEFT's `lora_A` (`[r, in]`, or `[r, c_in, kh,
/// kw]` with the base convolution's geometry), `B` is `lora_B` (`[out, r]` or `[out, r, 1,
/// 1]`) with `alpha / r` already multiplied in.
pub struct LoraArgs<'w, W> {
    pub a: &'w W,
    pub b: &'w W,
    pub rank: usize,
    pub scale: f32,
}

/// The down projection of a LoRA convolution: the base geometry with `rank` outputs.
pub fn down(p: &Conv2d, rank: usize) -> Conv2d {
    Conv2d { c_out: rank, ..*p }
}

/// The up projection: a 1 × 1 convolution from `rank` channels to the base's outputs.
pub fn up(p: &Conv2d, rank: usize) -> Conv2d {
    Conv2d {
        c_in: rank,
        c_out: p.c_out,
        kh: 1,
        kw: 1,
        stride: 1,
        pad: [0; 4],
    }
}

/// Scratch of [`conv2d`]: the down projection's output, then the largest scratch of the three
/// convolutions.
pub fn conv2d_scratch<B: Backend + ?Sized>(
    b: &B,
    p: &Conv2d,
    rank: usize,
    h: usize,
    w: usize,
) -> usize {
    let (ho, wo) = p.out_hw(h, w);
    let convs = b
        .conv2d_scratch(p, h, w)
        .max(b.conv2d_scratch(&down(p, rank), h, w))
        .max(b.conv2d_scratch(&up(p, rank), ho, wo));
    rank * ho * wo + convs
}

/// Splits `scratch` into the LoRA intermediate (`len` elements) and the rest.
fn split(scratch: View, len: usize) -> Result<(View, View)> {
    if scratch.len < len {
        return Err(Error::InvalidArgument(format!(
            "LoRA scratch of {} elements, needs at least {len}",
            scratch.len
        )));
    }
    Ok((scratch.slice(0, len), scratch.slice(len, scratch.len - len)))
}

/// `out (+)= conv(x, W) + bias + s · conv₁ₓ₁(conv(x, A), B)` from three plain convolutions.
#[allow(clippy::too_many_arguments)]
pub fn conv2d<B: Backend + ?Sized>(
    b: &B,
    a: &mut B::Arena,
    p: &Conv2d,
    x: View,
    h: usize,
    w: usize,
    weight: &B::Weight,
    bias: Option<&B::Weight>,
    lora: &LoraArgs<B::Weight>,
    out: View,
    scratch: View,
    accumulate: bool,
) -> Result<()> {
    let (ho, wo) = p.out_hw(h, w);
    let (u, rest) = split(scratch, lora.rank * ho * wo)?;
    b.conv2d(a, p, x, h, w, weight, bias, out, rest, accumulate)?;
    b.conv2d(
        a,
        &down(p, lora.rank),
        x,
        h,
        w,
        lora.a,
        None,
        u,
        rest,
        false,
    )?;
    b.affine(a, u, 0.0, lora.scale, 0.0)?;
    b.conv2d(
        a,
        &up(p, lora.rank),
        u,
        ho,
        wo,
        lora.b,
        None,
        out,
        rest,
        true,
    )
}

/// `out (+)= x·Wᵀ + bias + s · (x·Aᵀ)·Bᵀ` from three plain linear maps; `scratch` holds
/// `rows · rank` elements.
#[allow(clippy::too_many_arguments)]
pub fn linear<B: Backend + ?Sized>(
    b: &B,
    a: &mut B::Arena,
    x: View,
    rows: usize,
    n_in: usize,
    w: &B::Weight,
    n_out: usize,
    bias: Option<&B::Weight>,
    lora: &LoraArgs<B::Weight>,
    out: View,
    scratch: View,
    accumulate: bool,
) -> Result<()> {
    let (u, _) = split(scratch, rows * lora.rank)?;
    b.linear(a, x, rows, n_in, w, n_out, bias, out, accumulate)?;
    b.linear(a, x, rows, n_in, lora.a, lora.rank, None, u, false)?;
    b.affine(a, u, 0.0, lora.scale, 0.0)?;
    b.linear(a, u, rows, lora.rank, lora.b, n_out, None, out, true)
}
