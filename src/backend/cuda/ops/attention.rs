//! `attention` → `kernels/attention_tc.cu` on tensor cores (f16 storage, head_dim ≤ 512, unless
//! [`crate::backend::cuda::Kernels::Simple`]), else `kernels/attention.cu`: both flash-style
//! (online softmax over key tiles streamed through shared memory), so no scratch and memory
//! linear in tokens.

use super::{Arena, attention_tc};
use crate::backend::cuda::{Arg, CudaBackend, Executor, Launch, disjoint, int};
use crate::backend::{Rows, View};
use crate::error::{Error, Result};

/// Warps per block, keys per tile and head_dim per chunk (`ATTN_WARPS`, `ATTN_TILE`,
/// `ATTN_CHUNK` in the kernel); the staged K/V chunk has an odd row stride.
const WARPS: usize = 4;
const TILE: usize = 32;
const CHUNK: usize = 128;
const KV_STRIDE: usize = CHUNK + 1;

/// A kernel of `kernels/attention.cu`: its name, query rows per warp and widest head.
struct Variant {
    name: &'static str,
    rows_per_warp: usize,
    max_head_dim: usize,
}

const VARIANTS: [Variant; 2] = [
    Variant {
        name: "attention",
        rows_per_warp: 4,
        max_head_dim: CHUNK,
    },
    Variant {
        name: "attention_wide",
        rows_per_warp: 2,
        max_head_dim: 4 * CHUNK,
    },
];

/// The kernel never materialises scores: no scratch at all.
pub fn scratch_len(_tq: usize, _tk: usize, _heads: usize, _head_dim: usize) -> usize {
    0
}

/// `out[tq, heads·hd]` = softmax(q kᵀ · scale) v per head; `q`, `k`, `v` are row-strided
/// matrices whose head `h` is columns `h·hd..(h+1)·hd`.
#[allow(clippy::too_many_arguments)]
pub fn attention<E: Executor>(
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
    _scratch: View,
) -> Result<()> {
    let width = heads * head_dim;
    let op = format!("attention q [{tq}, {width}] k/v [{tk}, {width}] ({heads} heads)");
    let check = |what: &str, m: Rows, rows: usize| -> Result<()> {
        let need = if rows == 0 {
            0
        } else {
            (rows - 1) * m.row_stride + width
        };
        if rows > 1 && m.row_stride < width {
            return Err(Error::InvalidArgument(format!(
                "{op}: {what} row stride {} below heads·head_dim",
                m.row_stride
            )));
        }
        if m.view.len < need {
            return Err(Error::InvalidArgument(format!(
                "{op}: {what} has {} elements, needs {need}",
                m.view.len
            )));
        }
        int(need)?; // every flat index of the kernel fits an i32
        Ok(())
    };
    check("q", q, tq)?;
    check("k", k, tk)?;
    check("v", v, tk)?;
    let o = Rows {
        view: out,
        row_stride: width,
    };
    check("out", o, tq)?;
    disjoint(&[out], &[q.view, k.view, v.view])?;
    if tq == 0 || width == 0 {
        return Ok(());
    }
    if heads > 65_535 {
        return Err(Error::Unsupported(format!("{op}: more than 65535 heads")));
    }
    if b.tensor_cores() && attention_tc::supports(head_dim) {
        return attention_tc::launch(b, a, q, k, v, tq, tk, heads, head_dim, scale, out);
    }
    let variant = VARIANTS
        .iter()
        .find(|k| head_dim <= k.max_head_dim)
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "{op}: head_dim {head_dim} above the kernel's {}",
                4 * CHUNK
            ))
        })?;
    let rows = WARPS * variant.rows_per_warp;
    let floats = rows * head_dim + TILE * KV_STRIDE + rows * TILE;
    let geometry = Launch {
        grid: [
            u32::try_from(tq.div_ceil(rows)).unwrap_or(u32::MAX),
            heads as u32,
            1,
        ],
        block: [(32 * WARPS) as u32, 1, 1],
        shared_bytes: (floats * 4) as u32,
    };
    b.run(
        variant.name,
        geometry,
        &[
            Arg::Ptr(b.act(a, q.view)?),
            Arg::Ptr(b.act(a, k.view)?),
            Arg::Ptr(b.act(a, v.view)?),
            Arg::Ptr(b.act(a, out)?),
            int(q.row_stride)?,
            int(k.row_stride)?,
            int(v.row_stride)?,
            int(width)?,
            int(tq)?,
            int(tk)?,
            int(head_dim)?,
            Arg::F32(scale),
        ],
    )
}
