//! Runtime LoRA on tensor cores: `out (+)= W·x + bias + s · B·(A·x)` in two launches of the GEMM
//! of `gemm_tc.rs`, `s` a per-call argument (no weight changes when it does):
//!   1. the down projection `u = s · A·x` into scratch, channels-last `[pixels, r8]` (`s` in the
//!      epilogue's `alpha`; a convolution reuses the input it packed for step 2);
//!   2. the base map with LoRA's up projection as a second K segment of the same GEMM — `B`
//!      `[out, r8]` beside `W`, `u` beside the input — so `W·x + B·u + bias` accumulates in one
//!      f32 register tile and is rounded once.
//!
//! The rank is padded to `r8`, a multiple of 8, by [`upload`] (zero rows of `A`, zero columns
//! of `B`): whole 16-byte chunks, the same product. f32 storage, the simple kernel family and
//! operands the tensor-core GEMM cannot take use the composition of `backend/lora.rs`.

use super::Arena;
use super::conv_tc::{self, aligned};
use super::gemm_tc::{self, Gemm};
use super::{conv, linear, linear_tc};
use crate::backend::cuda::layouts::{self, CHUNK, pad8};
use crate::backend::cuda::{CudaBackend, CudaWeight, Executor, Layout, host_values};
use crate::backend::lora::{self as composed, LoraArgs, down, up};
use crate::backend::{Conv2d, HostData, View};
use crate::error::{Error, Result};

/// Uploads a LoRA pair for tensor cores: a convolution's `A [r, c_in, kh, kw]` and `B [c_out,
/// r, 1, 1]` packed like convolution weights with `r8` rows / channels, a linear map's `A [r,
/// n_in]` and `B [n_out, r]` zero-padded to `[r8, n_in]` and `[n_out, r8]`.
pub fn upload<E: Executor>(
    b: &CudaBackend<E>,
    (a_shape, a): (&[usize], HostData),
    (b_shape, bw): (&[usize], HostData),
) -> Result<(CudaWeight, CudaWeight)> {
    let (av, bv) = (host_values(a_shape, a)?, host_values(b_shape, bw)?);
    let (a, b_) = match (a_shape, b_shape) {
        (&[r, c_in, kh, kw], &[c_out, r_b, 1, 1]) if r == r_b => (
            layouts::conv_tc(&av, [r, c_in, kh, kw], pad8(r)),
            layouts::conv_tc(&bv, [c_out, r, 1, 1], c_out),
        ),
        (&[r, n_in], &[n_out, r_b]) if r == r_b => {
            let (r8, plain) = (pad8(r), |shape: [usize; 2]| Layout::Plain {
                shape: shape.to_vec(),
            });
            (
                (
                    layouts::pad_matrix(&av, [r, n_in], [r8, n_in]),
                    plain([r8, n_in]),
                ),
                (
                    layouts::pad_matrix(&bv, [n_out, r], [n_out, r8]),
                    plain([n_out, r8]),
                ),
            )
        }
        _ => {
            return Err(Error::InvalidArgument(format!(
                "LoRA pair A {a_shape:?}, B {b_shape:?}: not a convolution's or a linear map's"
            )));
        }
    };
    Ok((b.stage(&a.0, a.1)?, b.stage(&b_.0, b_.1)?))
}

/// The rank `A` is stored at (padded to a multiple of 8 for tensor cores).
fn stored_rank(a: &CudaWeight) -> usize {
    match a.layout() {
        Layout::ConvTc { rows, .. } => *rows,
        Layout::Plain { shape } => shape.first().copied().unwrap_or(0),
    }
}

/// `lora` at the rank its weights are stored at.
fn at_stored_rank<'w>(lora: &LoraArgs<'w, CudaWeight>) -> LoraArgs<'w, CudaWeight> {
    LoraArgs {
        a: lora.a,
        b: lora.b,
        rank: stored_rank(lora.a),
        scale: lora.scale,
    }
}

pub fn conv2d_scratch<E: Executor>(
    b: &CudaBackend<E>,
    p: &Conv2d,
    rank: usize,
    h: usize,
    w: usize,
) -> usize {
    if !b.tensor_cores() {
        return composed::conv2d_scratch(b, p, rank, h, w);
    }
    let (ho, wo) = p.out_hw(h, w);
    let r8 = pad8(rank);
    let fused = conv_tc::scratch_len(p, h, w) + CHUNK + ho * wo * r8;
    fused.max(composed::conv2d_scratch(b, p, r8, h, w))
}

/// `out (+)= conv(x, W) + bias + s · conv₁ₓ₁(conv(x, A), B)`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    p: &Conv2d,
    x: View,
    h: usize,
    w: usize,
    weight: &CudaWeight,
    bias: Option<&CudaWeight>,
    lora: &LoraArgs<CudaWeight>,
    out: View,
    scratch: View,
    accumulate: bool,
) -> Result<()> {
    let lora = at_stored_rank(lora);
    let r8 = lora.rank;
    let (ho, wo) = p.out_hw(h, w);
    let fused = b.tensor_cores()
        && r8 % CHUNK == 0
        && conv_tc::supported(p, h, w, weight, scratch)
        && conv_tc::weight_fits(&down(p, r8), lora.a)
        && conv_tc::weight_fits(&up(p, r8), lora.b)
        && scratch.len >= conv2d_scratch(b, p, r8, h, w);
    if !fused {
        return composed::conv2d(
            b, a, p, x, h, w, weight, bias, &lora, out, scratch, accumulate,
        );
    }
    if !conv::check(p, x, h, w, weight, bias, out, scratch)? {
        return Ok(());
    }
    let xt = conv_tc::pack_input(b, a, p, x, h, w, scratch, None)?;
    let u = aligned(
        scratch.slice(xt.end() - scratch.offset, scratch.end() - xt.end()),
        ho * wo * r8,
    )?;
    let (xt, u_ptr) = (b.act(a, xt)?, b.act(a, u)?);
    gemm_tc::launch(
        b,
        &Gemm {
            xt,
            wt: b.weight_any(lora.a)?,
            bias: 0,
            out: u_ptr,
            second: None,
            g: conv_tc::geometry(&down(p, r8), h, w),
            ld_c: 1,
            ld_p: r8,
            alpha: lora.scale,
            beta: 1.0,
            accumulate: false,
        },
    )?;
    gemm_tc::launch(
        b,
        &Gemm {
            xt,
            wt: b.weight_any(weight)?,
            bias: b.weight_or_null(bias)?,
            out: b.act(a, out)?,
            second: Some((u_ptr, b.weight_any(lora.b)?, r8)),
            g: conv_tc::geometry(p, h, w),
            ld_c: ho * wo,
            ld_p: 1,
            alpha: 1.0,
            beta: 1.0,
            accumulate,
        },
    )
}

pub fn linear_scratch<E: Executor>(b: &CudaBackend<E>, rows: usize, rank: usize) -> usize {
    if b.tensor_cores() {
        CHUNK + rows * pad8(rank)
    } else {
        rows * rank
    }
}

/// Whether `w` is stored as the plain matrix `[rows, cols]`.
fn plain(w: &CudaWeight, rows: usize, cols: usize) -> bool {
    matches!(w.layout(), Layout::Plain { shape } if shape[..] == [rows, cols])
}

/// `out (+)= x·Wᵀ + bias + s · (x·Aᵀ)·Bᵀ`.
#[allow(clippy::too_many_arguments)]
pub fn linear<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    rows: usize,
    n_in: usize,
    w: &CudaWeight,
    n_out: usize,
    bias: Option<&CudaWeight>,
    lora: &LoraArgs<CudaWeight>,
    out: View,
    scratch: View,
    accumulate: bool,
) -> Result<()> {
    let lora = at_stored_rank(lora);
    let r8 = lora.rank;
    let fused = b.tensor_cores()
        && r8 % CHUNK == 0
        && linear_tc::supported(x, n_in, w)
        && plain(lora.a, r8, n_in)
        && plain(lora.b, n_out, r8)
        && scratch.len >= CHUNK + rows * r8;
    if !fused {
        return composed::linear(
            b, a, x, rows, n_in, w, n_out, bias, &lora, out, scratch, accumulate,
        );
    }
    if !linear::check(x, rows, n_in, w, n_out, bias, out)? {
        return Ok(());
    }
    crate::backend::cuda::disjoint(&[out, scratch], &[x])?;
    let u = aligned(scratch, rows * r8)?;
    linear_tc::gemm(
        b, a, x, rows, n_in, lora.a, r8, 0, None, u, lora.scale, false,
    )?;
    let second = Some((b.act(a, u)?, b.weight(lora.b)?, r8));
    linear_tc::gemm(
        b,
        a,
        x,
        rows,
        n_in,
        w,
        n_out,
        b.weight_or_null(bias)?,
        second,
        out,
        1.0,
        accumulate,
    )
}
