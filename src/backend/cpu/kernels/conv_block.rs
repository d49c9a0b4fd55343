//! The per-block engine of [`super::conv::conv2d`]: im2col → GEMM → bias/residual → output.

use super::conv::Conv2d;
use super::gemm::{matmul, matmul_serial};
use super::im2col::{Geometry, im2col};
use super::par::{SharedOut, run_blocks_in_slots};

/// How a convolution is split: blocks of `block` output pixels; `slots` threads each taking
/// whole blocks with their own `per_pixel·block` floats of scratch (1: blocks one after the
/// other, each with a parallel GEMM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub block: usize,
    pub slots: usize,
    /// `K + c_out`: im2col rows plus output-tile rows.
    pub per_pixel: usize,
}

impl Plan {
    pub fn slot_len(&self) -> usize {
        self.per_pixel * self.block
    }

    pub fn scratch_len(&self) -> usize {
        self.slots * self.slot_len()
    }
}

/// Runs every block of the convolution according to `plan`, using as many slots as `scratch`
/// holds (at least one).
#[allow(clippy::too_many_arguments)]
pub(super) fn run_blocks(
    p: &Conv2d,
    x: &[f32],
    h: usize,
    w: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    accumulate: bool,
    plan: Plan,
) {
    let (ho, wo) = p.out_hw(h, w);
    let pixels = ho * wo;
    let slot_len = plan.slot_len();
    assert!(
        scratch.len() >= slot_len,
        "conv2d: scratch has {} floats, needs at least {slot_len}",
        scratch.len()
    );
    let blocks = pixels.div_ceil(plan.block);
    let slots = plan.slots.min(scratch.len() / slot_len).min(blocks).max(1);
    let engine = Engine {
        geometry: Geometry { p, x, h, w, wo },
        weight,
        bias,
        accumulate,
        pixels,
        out: SharedOut::new(out),
    };
    run_blocks_in_slots(scratch, slot_len, slots, blocks, |b, slot, parallel| {
        engine.block(b * plan.block, plan.block, slot, parallel)
    });
}

/// The shared, read-only description of one convolution call.
struct Engine<'a> {
    geometry: Geometry<'a>,
    weight: &'a [f32],
    bias: Option<&'a [f32]>,
    accumulate: bool,
    pixels: usize,
    out: SharedOut<'a>,
}

impl Engine<'_> {
    /// Output pixels `p0..p0 + block` (clipped to the image) of every output channel.
    /// `parallel`: split the im2col and GEMM over the pool (blocks are not run concurrently).
    fn block(&self, p0: usize, block: usize, slot: &mut [f32], parallel: bool) {
        let p = self.geometry.p;
        let (k, c_out) = (p.k(), p.c_out);
        let n = block.min(self.pixels - p0);
        let (cols, tile) = slot.split_at_mut(k * block);
        let (cols, tile) = (&mut cols[..k * n], &mut tile[..c_out * n]);
        im2col(self.geometry, p0, n, cols, parallel);
        // The GEMM writes a contiguous tile: writing straight into `out`, whose rows are
        // `ho·wo` floats apart (often a large power of two), costs ~15% in cache conflicts.
        if parallel {
            matmul(c_out, n, k, self.weight, k, 1, cols, n, 1, tile, n, false);
        } else {
            matmul_serial(c_out, n, k, self.weight, k, 1, cols, n, 1, tile, n, false);
        }
        for (co, src) in tile.chunks_exact(n).enumerate() {
            // SAFETY: this block owns columns p0..p0 + n of every output row; no other block
            // (and no other channel of this block) touches them, and the slice ends inside
            // `out` because p0 + n ≤ pixels.
            let dst = unsafe { self.out.slice(co * self.pixels + p0, n) };
            let b = self.bias.map_or(0.0, |b| b[co]);
            if self.accumulate {
                dst.iter_mut().zip(src).for_each(|(o, &v)| *o += v + b);
            } else {
                dst.iter_mut().zip(src).for_each(|(o, &v)| *o = v + b);
            }
        }
    }
}
