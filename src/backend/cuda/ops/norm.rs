//! `group_norm` → `kernels/norm.cu`: statistics in one read over many blocks per group
//! (partials in the backend's f32 workspace), merged per group, then one output pass;
//! `layer_norm`: one warp per row.

use super::Arena;
use crate::backend::View;
use crate::backend::cuda::{Arg, CudaBackend, CudaWeight, DevPtr, Executor, Launch, disjoint, int};
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
    let stats = group_stats(b, a, x, c, hw, groups, eps)?;
    let (cpg, group) = (c / groups, c / groups * hw);
    let per_block = GROUP_THREADS as usize * APPLY_PER_THREAD;
    b.run(
        "group_norm_apply",
        Launch {
            grid: [blocks(group.div_ceil(per_block))?, grid_y(groups)?, 1],
            block: [GROUP_THREADS, 1, 1],
            shared_bytes: 0,
        },
        &[
            Arg::Ptr(b.act(a, x)?),
            Arg::Ptr(b.act(a, out)?),
            Arg::Ptr(stats),
            Arg::Ptr(b.weight(gamma)?),
            Arg::Ptr(b.weight(beta)?),
            int(hw)?,
            int(cpg)?,
            Arg::I32(silu as i32),
        ],
    )
}

/// GroupNorm statistics of `x[c, hw]`: the device address of `[groups][2]` f32 (mean, rstd)
/// in the backend's workspace, valid until the next op that uses the workspace. The caller has
/// checked the sizes (`c · hw` fits an i32, `groups` divides `c`).
pub fn group_stats<E: Executor>(
    b: &CudaBackend<E>,
    a: &Arena<E>,
    x: View,
    c: usize,
    hw: usize,
    groups: usize,
    eps: f32,
) -> Result<DevPtr> {
    int(c * hw)?; // every flat index of the kernels fits an i32
    let group = c / groups * hw;
    let splits = stats_splits(group, groups)?;
    let chunk = group.div_ceil(splits);
    let partials = b.workspace()?;
    let stats = partials + (MAX_PARTIALS * 3 * 4) as u64;
    b.run(
        "group_norm_stats",
        Launch {
            grid: [blocks(splits)?, grid_y(groups)?, 1],
            block: [GROUP_THREADS, 1, 1],
            shared_bytes: 0,
        },
        &[
            Arg::Ptr(b.act(a, x)?),
            Arg::Ptr(partials),
            int(group)?,
            int(chunk)?,
        ],
    )?;
    b.run(
        "group_norm_finish",
        Launch {
            grid: [blocks(groups)?, 1, 1],
            block: [32, 1, 1],
            shared_bytes: 0,
        },
        &[
            Arg::Ptr(b.act(a, x)?),
            Arg::Ptr(partials),
            Arg::Ptr(stats),
            int(group)?,
            int(splits)?,
            Arg::F32(eps),
        ],
    )?;
    Ok(stats)
}

/// Values each statistics block reads at least (256 threads × 16): fewer would spend more
/// time merging partials than reading.
const STATS_CHUNK_MIN: usize = 4096;
/// Partial statistics the workspace holds (`groups · splits` at most), and its size in bytes:
/// the partials (3 floats each) then the per-group (mean, rstd) (2 floats, at most as many
/// groups as partials).
pub const MAX_PARTIALS: usize = 16384;
pub const WORKSPACE_BYTES: usize = MAX_PARTIALS * (3 + 2) * 4;
/// Values each thread of `group_norm_apply` writes (`NORM_PER_THREAD`).
const APPLY_PER_THREAD: usize = 4;

/// Statistics blocks per group: enough to fill the GPU on a few large groups, never more than
/// one per [`STATS_CHUNK_MIN`] values or than the workspace holds.
fn stats_splits(group: usize, groups: usize) -> Result<usize> {
    if groups > MAX_PARTIALS {
        return Err(Error::Unsupported(format!(
            "group_norm: {groups} groups exceed the {MAX_PARTIALS} the workspace holds"
        )));
    }
    Ok(group
        .div_ceil(STATS_CHUNK_MIN)
        .clamp(1, MAX_PARTIALS / groups))
}

/// `n` as a grid's y dimension.
fn grid_y(n: usize) -> Result<u32> {
    super::conv::grid_dim(n, super::conv::GRID_YZ_MAX)
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
