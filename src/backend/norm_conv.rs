//! GroupNorm (+SiLU) followed by a convolution — every ResNet block of the VAE and the U-Net
//! and their output heads — as one backend op, so a backend can fold the normalisation into
//! the convolution's input load and never store the normalised activation (the CUDA backend's
//! tensor-core path does). By default: the two plain ops, the normalised activation in the op's
//! scratch.

use super::{Backend, Conv2d, View};
use crate::error::{Error, Result};

/// The GroupNorm of a fused op.
pub struct GroupNormArgs<'w, W> {
    pub groups: usize,
    pub eps: f32,
    pub gamma: &'w W,
    pub beta: &'w W,
    pub silu: bool,
}

/// Scratch of [`group_norm_conv2d`]: the normalised input, then the convolution's.
pub fn scratch_len<B: Backend + ?Sized>(b: &B, p: &Conv2d, h: usize, w: usize) -> usize {
    p.c_in * h * w
        + b.conv2d_scaled_scratch(p, h, w)
            .max(b.conv2d_scratch(p, h, w))
}

/// `out (+)= scales.0 · conv(GroupNorm(x)) + scales.1 · bias` from the plain ops.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_conv2d<B: Backend + ?Sized>(
    b: &B,
    a: &mut B::Arena,
    x: View,
    h: usize,
    w: usize,
    norm: &GroupNormArgs<B::Weight>,
    p: &Conv2d,
    weight: &B::Weight,
    bias: Option<&B::Weight>,
    scales: (f32, f32),
    out: View,
    scratch: View,
    accumulate: bool,
) -> Result<()> {
    let n = p.c_in * h * w;
    if scratch.len < n {
        return Err(Error::InvalidArgument(format!(
            "group_norm_conv2d scratch of {} elements, needs at least {n}",
            scratch.len
        )));
    }
    let (normed, rest) = (scratch.slice(0, n), scratch.slice(n, scratch.len - n));
    let GroupNormArgs {
        groups,
        eps,
        gamma,
        beta,
        silu,
    } = *norm;
    b.group_norm(a, x, normed, p.c_in, h * w, groups, eps, gamma, beta, silu)?;
    if scales == (1.0, 1.0) {
        b.conv2d(a, p, normed, h, w, weight, bias, out, rest, accumulate)
    } else {
        b.conv2d_scaled(
            a, p, normed, h, w, weight, bias, scales, out, rest, accumulate,
        )
    }
}
