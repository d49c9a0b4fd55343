//! `attention` on tensor cores → `kernels/attention_tc.cu` (FlashAttention-2 style: Q in
//! registers, K/V tiles through shared memory by cp.async, P·V from registers). Called by
//! [`super::attention::attention`] after its checks, for f16 storage and head_dim ≤ 512.

use super::Arena;
use crate::backend::cuda::{Arg, CudaBackend, DevPtr, Executor, Launch, int};
use crate::backend::{Rows, View};
use crate::error::{Error, Result};

/// A kernel of `kernels/attention_tc.cu`: the widest head it takes, query rows and threads per
/// block, and its dynamic shared memory in bytes.
struct Variant {
    name: &'static str,
    max_head_dim: usize,
    rows: usize,
    threads: usize,
    shared_bytes: usize,
}

/// K and V tiles, two stages each, rows of `hd_max + 8` halves (`ATC_BN` = 64 keys).
const fn narrow(name: &'static str, hd_max: usize) -> Variant {
    Variant {
        name,
        max_head_dim: hd_max,
        rows: 64,
        threads: 128,
        shared_bytes: 4 * 64 * (hd_max + 8) * 2,
    }
}

const VARIANTS: [Variant; 4] = [
    narrow("attention_tc_32", 32),
    narrow("attention_tc_64", 64),
    narrow("attention_tc_128", 128),
    // 8 warps = 2 row groups × 4 column groups of 128 dims; 32-key tiles of 520-half rows and
    // the partial scores (2·4·4·32·4 f32).
    Variant {
        name: "attention_tc_wide",
        max_head_dim: 512,
        rows: 32,
        threads: 256,
        shared_bytes: 4 * 32 * 520 * 2 + 2 * 4 * 4 * 32 * 4 * 4,
    },
];

/// The widest head the tensor-core kernels take.
pub const MAX_HEAD_DIM: usize = 512;

fn variant(head_dim: usize) -> Option<&'static Variant> {
    VARIANTS.iter().find(|v| head_dim <= v.max_head_dim)
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
    let kernel = variant(head_dim).ok_or_else(|| {
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
            u32::try_from(tq.div_ceil(kernel.rows)).unwrap_or(u32::MAX),
            heads as u32,
            1,
        ],
        block: [kernel.threads as u32, 1, 1],
        shared_bytes: kernel.shared_bytes as u32,
    };
    b.run(
        kernel.name,
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
