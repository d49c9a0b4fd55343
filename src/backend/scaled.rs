//! A convolution with f16 pre-scales, `out (+)= alpha·conv(x) + beta·bias` (`alpha`, `beta`
//! powers of two; see `exec/prescale.rs`), composed from a backend's plain ops: the convolution
//! without bias (into scratch when accumulating), `× alpha`, the bias copied, `× beta` and
//! added per channel, then the accumulation. Exact in f32 storage, where pre-scales are powers
//! of two applied to values that cannot overflow; backends storing f16 scale in their kernels'
//! f32 epilogue instead (the CUDA backend overrides [`Backend::conv2d_scaled`]).

use super::{Backend, Conv2d, View};
use crate::error::{Error, Result};

/// Scratch of [`conv2d`]: the output (when accumulating), the bias, the convolution's own.
pub fn conv2d_scratch<B: Backend + ?Sized>(b: &B, p: &Conv2d, h: usize, w: usize) -> usize {
    let (ho, wo) = p.out_hw(h, w);
    p.c_out * ho * wo + p.c_out + b.conv2d_scratch(p, h, w)
}

/// `out (+)= alpha·conv(x, W) + beta·bias` from plain ops.
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
    (alpha, beta): (f32, f32),
    out: View,
    scratch: View,
    accumulate: bool,
) -> Result<()> {
    let (ho, wo) = p.out_hw(h, w);
    let n = p.c_out * ho * wo;
    if scratch.len < n + p.c_out {
        return Err(Error::InvalidArgument(format!(
            "scaled conv2d scratch of {} elements, needs at least {}",
            scratch.len,
            n + p.c_out
        )));
    }
    let (tmp, bv) = (scratch.slice(0, n), scratch.slice(n, p.c_out));
    let rest = scratch.slice(n + p.c_out, scratch.len - n - p.c_out);
    let dst = if accumulate { tmp } else { out };
    b.conv2d(a, p, x, h, w, weight, None, dst, rest, false)?;
    b.affine(a, dst, 0.0, alpha, 0.0)?;
    if let Some(bias) = bias {
        b.copy_weight(a, bias, bv)?;
        b.affine(a, bv, 0.0, beta, 0.0)?;
        b.add_channel_bias(a, dst, p.c_out, bv)?;
    }
    if accumulate {
        b.add(a, out, tmp)?;
    }
    Ok(())
}
