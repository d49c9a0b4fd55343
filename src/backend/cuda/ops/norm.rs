//! `group_norm`, `layer_norm` → `kernels/norm.cu`: one block per group, one warp per row.

use super::Arena;
use crate::backend::View;
use crate::backend::cuda::{Arg, CudaBackend, CudaWeight, Executor, Launch, disjoint, int};
use crate::error::{Error, Result};

/// Threads of a `group_norm` block (`NORM_THREADS`).
const GROUP_THREADS: u32 = 256;
/// Rows (warps) of a `layer_norm` block (`LN_WARPS`).
const LN_WARPS: usize = 4;

fn need(op: &str, what: &str, have: usize, want: usize) -> Result<()> {
    if have < want {
        return Err(Error::InvalidArgument(format!(
            "{op}: {what} has {have} elements, needs {want}"
        )));
    }
    Ok(())
}

/// `n` as a grid's x dimension (at most 2³¹ − 1 blocks).
fn blocks(n: usize) -> Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|&v| v <= i32::MAX as u32)
        .ok_or_else(|| Error::Unsupported(format!("{n} blocks exceed a CUDA grid")))
}

/// GroupNorm of `x[c, hw]` (optionally fused with SiLU); `out == x` runs in place.
#[allow(clippy::too_many_arguments)]
pub fn group_norm<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    out: View,
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
    gamma: &CudaWeight,
    beta: &CudaWeight,
    silu: bool,
) -> Result<()> {
    let op = format!("group_norm [{c}, {hw}] in {groups} groups");
    if groups == 0 || c % groups != 0 {
        return Err(Error::InvalidArgument(format!(
            "{op}: the groups must divide the channels"
        )));
    }
    let n = c * hw;
    need(&op, "input", x.len, n)?;
    need(&op, "output", out.len, n)?;
    need(&op, "gamma", gamma.len(), c)?;
    need(&op, "beta", beta.len(), c)?;
    if out != x {
        disjoint(&[out], &[x])?;
    }
    if n == 0 {
        return Ok(());
    }
    int(n)?; // every flat index of the kernel fits an i32
    let geometry = Launch {
        grid: [blocks(groups)?, 1, 1],
        block: [GROUP_THREADS, 1, 1],
        shared_bytes: 0,
    };
    b.run(
        "group_norm",
        geometry,
        &[
            Arg::Ptr(b.act(a, x)?),
            Arg::Ptr(b.act(a, out)?),
            Arg::Ptr(b.weight(gamma)?),
            Arg::Ptr(b.weight(beta)?),
            int(hw)?,
            int(c / groups)?,
            Arg::F32(eps),
            Arg::I32(silu as i32),
        ],
    )
}

/// LayerNorm over the last dim of `x[rows, d]` into `out` (not aliasing `x`).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm<E: Executor>(
    b: &CudaBackend<E>,
    a: &mut Arena<E>,
    x: View,
    out: View,
    rows: usize,
    d: usize,
    eps: f32,
    gamma: &CudaWeight,
    beta: &CudaWeight,
) -> Result<()> {
    let op = format!("layer_norm [{rows}, {d}]");
    let n = rows * d;
    need(&op, "input", x.len, n)?;
    need(&op, "output", out.len, n)?;
    need(&op, "gamma", gamma.len(), d)?;
    need(&op, "beta", beta.len(), d)?;
    disjoint(&[out], &[x])?;
    if n == 0 {
        return Ok(());
    }
    int(n)?;
    let geometry = Launch {
        grid: [blocks(rows.div_ceil(LN_WARPS))?, 1, 1],
        block: [32 * LN_WARPS as u32, 1, 1],
        shared_bytes: 0,
    };
    b.run(
        "layer_norm",
        geometry,
        &[
            Arg::Ptr(b.act(a, x)?),
            Arg::Ptr(b.act(a, out)?),
            Arg::Ptr(b.weight(gamma)?),
            Arg::Ptr(b.weight(beta)?),
            int(rows)?,
            int(d)?,
            Arg::F32(eps),
        ],
    )
}
