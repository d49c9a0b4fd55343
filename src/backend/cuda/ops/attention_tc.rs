//! `attention` on tensor cores → `kernels/attention_tc.cu` (FlashAttention-2 style: Q in
//! registers, K/V tiles through shared memory by cp.async, P·V from registers). Called by
//! [`super::attention::attention`] after its checks, for f16 storage and head_dim ≤ 128.

use super::Arena;
use crate::backend::cuda::{Arg, CudaBackend, DevPtr, Executor, Launch, int};
use crate::backend::{Rows, View};
use crate::error::{Error, Result};

/// Warps per block, query rows per block and keys per tile (`ATC_WARPS`, `ATC_BM`, `ATC_BN`).
const WARPS: usize = 4;
const ROWS: usize = 64;
const KEYS: usize = 64;

/// Head-dim classes: kernel `attention_tc_{n}` serves head_dim ≤ n.
const VARIANTS: [(usize, &str); 3] = [
    (32, "attention_tc_32"),
    (64, "attention_tc_64"),
    (128, "attention_tc_128"),
];

/// The widest head the tensor-core kernels take.
pub const MAX_HEAD_DIM: usize = 128;

/// The kernel and its dynamic shared memory (K and V tiles, two stages each, rows of
/// `hd_max + 8` halves) for `head_dim`, or `None` above [`MAX_HEAD_DIM`].
fn variant(head_dim: usize) -> Option<(&'static str, usize)> {
    let &(hd_max, name) = VARIANTS.iter().find(|(n, _)| head_dim <= *n)?;
    Some((name, 4 * KEYS * (hd_max + 8) * 2))
}

/// Whether `head_dim` has a tensor-core kernel.
pub fn supports(head_dim: usize) -> bool {
    head_dim > 0 && variant(head_dim).is_some()
}

/// Launches the kernel; the caller checked the operands (lengths, strides, overlap) and that
/// `tq`, the width and `head_dim` are non-zero. `width` = heads·head_dim is `out`'s row stride.
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    q: Rows,
    k: Rows,
    v: Rows,
    tq: usize,
    tk: usize,
    heads: usize,
    head_dim: usize,
    scale: f32,
    out: View,
) -> Result<()> {
    let (name, shared_bytes) = variant(head_dim).ok_or_else(|| {
        Error::Unsupported(format!(
            "attention_tc: head_dim {head_dim} above {MAX_HEAD_DIM}"
        ))
    })?;
    let (qp, kp, vp, op) = (
        b.act(a, q.view)?,
        b.act(a, k.view)?,
        b.act(a, v.view)?,
        b.act(a, out)?,
    );
    // 16-byte cp.async chunks need every head's row starts 16-byte aligned: f16 elements, head
    // columns and row strides in multiples of 8, base addresses multiples of 16.
    let aligned = |p: DevPtr, rs: usize| p % 16 == 0 && rs % 8 == 0;
    let vec = b.precision().bytes() == 2
        && head_dim % 8 == 0
        && aligned(qp, q.row_stride)
        && aligned(kp, k.row_stride)
        && aligned(vp, v.row_stride);
    let geometry = Launch {
        grid: [
            u32::try_from(tq.div_ceil(ROWS)).unwrap_or(u32::MAX),
            heads as u32,
            1,
        ],
        block: [(32 * WARPS) as u32, 1, 1],
        shared_bytes: shared_bytes as u32,
    };
    b.run(
        name,
        geometry,
        &[
            Arg::Ptr(qp),
            Arg::Ptr(kp),
            Arg::Ptr(vp),
            Arg::Ptr(op),
            int(q.row_stride)?,
            int(k.row_stride)?,
            int(v.row_stride)?,
            int(heads * head_dim)?,
            int(tq)?,
            int(tk)?,
            int(head_dim)?,
            Arg::F32(scale),
            Arg::I32(vec as i32),
        ],
    )
}
