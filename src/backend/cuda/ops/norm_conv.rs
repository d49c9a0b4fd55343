//! GroupNorm(+SiLU) → convolution on tensor cores with the normalisation folded into the
//! convolution's input packing (`conv_tc_pack_input_gn`): the statistics (two small launches,
//! `norm.rs`), then the pack and the GEMM of `conv_tc.rs`. GroupNorm's output pass — a read and
//! a write of the whole activation — and the normalised activation itself disappear; the
//! packed input is bit-identical to the unfused path's. Other cases use the composition of
//! `backend/norm_conv.rs`.

use super::{Arena, conv, conv_tc, norm};
use crate::backend::cuda::{CudaBackend, CudaWeight, Executor};
use crate::backend::norm_conv as composed;
use crate::backend::{Conv2d, GroupNormArgs, View};
use crate::error::{Error, Result};

pub fn scratch_len<E: Executor>(b: &CudaBackend<E>, p: &Conv2d, h: usize, w: usize) -> usize {
    let plain = composed::scratch_len(b, p, h, w);
    if b.tensor_cores() {
        plain.max(conv_tc::scratch_len(p, h, w))
    } else {
        plain
    }
}

#[allow(clippy::too_many_arguments)]
pub fn group_norm_conv2d<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    h: usize,
    w: usize,
    gn: &GroupNormArgs<CudaWeight>,
    p: &Conv2d,
    weight: &CudaWeight,
    bias: Option<&CudaWeight>,
    scales: (f32, f32),
    out: View,
    scratch: View,
    accumulate: bool,
) -> Result<()> {
    if !(b.tensor_cores() && conv_tc::supported(p, h, w, weight, scratch)) {
        return composed::group_norm_conv2d(
            b, a, x, h, w, gn, p, weight, bias, scales, out, scratch, accumulate,
        );
    }
    if gn.groups == 0
        || p.c_in % gn.groups != 0
        || gn.gamma.len() < p.c_in
        || gn.beta.len() < p.c_in
    {
        return Err(Error::InvalidArgument(format!(
            "group_norm_conv2d: {} groups, γ {} and β {} values for {} channels",
            gn.groups,
            gn.gamma.len(),
            gn.beta.len(),
            p.c_in
        )));
    }
    if !conv::check(p, x, h, w, weight, bias, out, scratch)? {
        return Ok(());
    }
    let stats = norm::group_stats(b, a, x, p.c_in, h * w, gn.groups, gn.eps)?;
    let fold = conv_tc::NormFold {
        stats,
        gamma: gn.gamma,
        beta: gn.beta,
        channels_per_group: p.c_in / gn.groups,
        silu: gn.silu,
    };
    let bias = b.weight_or_null(bias)?;
    conv_tc::conv2d(
        b,
        a,
        p,
        x,
        h,
        w,
        weight,
        bias,
        out,
        scratch,
        scales,
        accumulate,
        Some(&fold),
    )
}
