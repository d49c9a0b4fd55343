//! `linear` on tensor cores → the GEMM of `gemm_tc.rs` (kernels/conv_tc.cu): a token matrix
//! `x [rows, n_in]` is already the channels-last input of a 1 × 1 convolution over a 1 × rows
//! image, and PyTorch's weight `[n_out, n_in]` already the packed weight, so nothing is packed;
//! the epilogue writes `out[rows, n_out]` row-major (`ld_c` = 1, `ld_p` = n_out). Needs
//! `n_in` a multiple of 8 and `x` 16-byte aligned (the `cp.async` chunks); `ops/linear.rs`
//! falls back to the simple kernel otherwise.

use super::Arena;
use super::gemm_tc::{self, Gemm, Geometry};
use crate::backend::View;
use crate::backend::cuda::layouts::CHUNK;
use crate::backend::cuda::{CudaBackend, CudaWeight, DevPtr, Executor, Layout};
use crate::error::Result;

/// Whether `x [rows, n_in] · wᵀ` can run on tensor cores: whole chunks per row, an aligned
/// input, and the weight in its reference layout `[n_out, n_in]`.
pub fn supported(x: View, n_in: usize, w: &CudaWeight) -> bool {
    n_in % CHUNK == 0
        && x.offset % CHUNK == 0
        && matches!(w.layout(), Layout::Plain { shape } if shape.len() == 2 && shape[1] == n_in)
}

/// The GEMM of `out (+)= alpha · (x · wᵀ [+ second]) + bias`, `out` row-major `[rows, n_out]`.
#[allow(clippy::too_many_arguments)]
pub fn gemm<E: Executor>(
    b: &CudaBackend<E>,
    a: &Arena<E>,
    x: View,
    rows: usize,
    n_in: usize,
    w: &CudaWeight,
    n_out: usize,
    bias: DevPtr,
    second: Option<(DevPtr, DevPtr, usize)>,
    out: View,
    alpha: f32,
    accumulate: bool,
) -> Result<()> {
    gemm_tc::launch(
        b,
        &Gemm {
            xt: b.act(a, x)?,
            wt: b.weight(w)?,
            bias,
            out: b.act(a, out)?,
            second,
            g: Geometry::linear(rows, n_in, n_out),
            ld_c: 1,
            ld_p: n_out,
            alpha,
            beta: 1.0,
            accumulate,
        },
    )
}
