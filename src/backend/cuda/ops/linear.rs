//! `linear` → the tensor-core GEMM (`linear_tc.rs`, f16 storage, [`Kernels::TensorCore`])
//! where its operands allow, else `kernels/linear.cu`: a shared-memory tiled GEMM, 64 × 64
//! tiles of (rows × output features) per block.
//!
//! [`Kernels::TensorCore`]: crate::backend::cuda::Kernels::TensorCore

use super::conv::{GRID_X_MAX, GRID_YZ_MAX, grid_dim};
use super::{Arena, linear_tc};
use crate::backend::View;
use crate::backend::cuda::{Arg, CudaBackend, CudaWeight, Executor, Launch, disjoint, int};
use crate::error::{Error, Result};

/// Rows and output features per block, and threads per block (kernels/linear.cu).
const TILE: usize = 64;
const THREADS: u32 = 256;

/// `out[rows, n_out]` (+)= `x[rows, n_in]` · `wᵀ` + `bias` (`w` is `[n_out, n_in]`).
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
    out: View,
    accumulate: bool,
) -> Result<()> {
    if !check(x, rows, n_in, w, n_out, bias, out)? {
        return Ok(());
    }
    let bias_ptr = b.weight_or_null(bias)?;
    if b.tensor_cores() && linear_tc::supported(x, n_in, w) {
        return linear_tc::gemm(
            b, a, x, rows, n_in, w, n_out, bias_ptr, None, out, 1.0, accumulate,
        );
    }
    let geometry = Launch {
        grid: [
            grid_dim(n_out.div_ceil(TILE), GRID_X_MAX)?,
            grid_dim(rows.div_ceil(TILE), GRID_YZ_MAX)?,
            1,
        ],
        block: [THREADS, 1, 1],
        shared_bytes: 0,
    };
    b.run(
        "linear",
        geometry,
        &[
            Arg::Ptr(b.act(a, x)?),
            Arg::Ptr(b.weight(w)?),
            Arg::Ptr(bias_ptr),
            Arg::Ptr(b.act(a, out)?),
            int(rows)?,
            int(n_in)?,
            int(n_out)?,
            Arg::I32(accumulate as i32),
        ],
    )
}

/// Checks a linear map's views (sizes, disjoint output) and weights, and that every flat
/// index fits the kernels' 32-bit ints. `Ok(false)`: the output is empty, nothing to run.
#[allow(clippy::too_many_arguments)]
pub(super) fn check(
    x: View,
    rows: usize,
    n_in: usize,
    w: &CudaWeight,
    n_out: usize,
    bias: Option<&CudaWeight>,
    out: View,
) -> Result<bool> {
    let need = |what: &str, have: usize, want: usize| {
        if have < want {
            return Err(Error::InvalidArgument(format!(
                "linear [{rows}, {n_in}] → [{rows}, {n_out}]: {what} has {have} elements, \
                 needs {want}"
            )));
        }
        Ok(())
    };
    need("input", x.len, rows * n_in)?;
    need("output", out.len, rows * n_out)?;
    need("weight", w.len(), n_out * n_in)?;
    if let Some(bias) = bias {
        need("bias", bias.len(), n_out)?;
    }
    disjoint(&[out], &[x])?;
    if rows == 0 || n_out == 0 {
        return Ok(false);
    }
    // The kernel indexes with 32-bit ints: every flat index must fit.
    for n in [rows * n_in, rows * n_out, n_out * n_in] {
        int(n)?;
    }
    Ok(true)
}
