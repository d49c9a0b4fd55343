//! Splitting memory-bound loops over the current rayon pool, and the output buffer a kernel's
//! threads share.

use rayon::prelude::*;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Floats per parallel task: a rayon task costs about a microsecond, which this much streaming
/// work (tens of microseconds) amortises, while still giving every thread several tasks.
const GRAIN: usize = 1 << 14;

/// Calls `f(first_unit, block)` on consecutive blocks of `out`, each a whole number of `unit`-long
/// units (rows, channels, ...), in parallel on the current pool when there is enough work.
/// A block handed to `f` starts at element `first_unit · unit` of `out`.
pub(super) fn for_each_block(
    out: &mut [f32],
    unit: usize,
    f: impl Fn(usize, &mut [f32]) + Send + Sync,
) {
    let unit = unit.max(1);
    let units_per_task = (GRAIN / unit).max(1);
    if out.len() <= units_per_task * unit || rayon::current_num_threads() <= 1 {
        f(0, out);
        return;
    }
    out.par_chunks_mut(units_per_task * unit)
        .enumerate()
        .for_each(|(i, block)| f(i * units_per_task, block));
}

/// Block counts the split prefers, largest first: each is a multiple of the common pool sizes
/// (48 = 1, 2, 3, 4, 6, 8, 12, 16, 24 and 48 threads), so whole blocks shared out over such a pool
/// leave no thread idle at the end.
const BALANCED_COUNTS: [usize; 8] = [48, 24, 16, 12, 8, 6, 4, 2];

/// Splits `len` units (pixels, query rows) into blocks of the returned width for a kernel that
/// runs best with blocks of at most `widest` and at least `narrowest` units: the fewest blocks of
/// at most `widest`, their count rounded up to a multiple of the largest entry of
/// [`BALANCED_COUNTS`] that keeps blocks at least `narrowest` wide (and not rounded when none
/// does).
///
/// The width depends only on the problem, never on the thread count: every block then has the
/// same shape (and its GEMM the same reduction order) on any pool, which is what makes CPU
/// results bit-identical across `--threads`. Threads take whole blocks.
pub(super) fn balanced_block(len: usize, widest: usize, narrowest: usize) -> usize {
    let widest = widest.max(1);
    let blocks = len.div_ceil(widest).max(1);
    for q in BALANCED_COUNTS {
        let width = len.div_ceil(blocks.div_ceil(q) * q);
        if width >= narrowest.max(1) {
            return width;
        }
    }
    len.div_ceil(blocks).max(1)
}

/// Runs `blocks` blocks, each with a `slot_len`-float slot of `scratch`: with `slots` > 1, that
/// many threads take whole blocks (each index claimed once) with their own slot; with one slot,
/// the blocks run in turn and `block` is told to split its own work over the pool (`true`).
/// `block(b, slot, parallel)` must write only block `b`'s part of the output.
pub(super) fn run_blocks_in_slots(
    scratch: &mut [f32],
    slot_len: usize,
    slots: usize,
    blocks: usize,
    block: impl Fn(usize, &mut [f32], bool) + Sync,
) {
    if slots <= 1 {
        let parallel = rayon::current_num_threads() > 1;
        for b in 0..blocks {
            block(b, &mut scratch[..slot_len], parallel);
        }
        return;
    }
    let next = AtomicUsize::new(0);
    scratch[..slots * slot_len]
        .par_chunks_mut(slot_len)
        .for_each(|slot| {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= blocks {
                    break;
                }
                block(b, slot, false);
            }
        });
}

/// An output buffer shared by the threads of one kernel call, each writing only its own
/// disjoint ranges (whole blocks of output pixels, rows of tiles). Holding it keeps the buffer
/// mutably borrowed for the call.
pub(super) struct SharedOut<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: `SharedOut` is only a raw view of a `&mut [f32]` it holds the borrow of; access goes
// through `slice`, whose contract requires disjoint ranges across threads.
unsafe impl Sync for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    pub(super) fn new(out: &'a mut [f32]) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _borrow: PhantomData,
        }
    }

    /// `out[start..start + len]`.
    ///
    /// # Safety
    /// No other live slice from this `SharedOut`, on any thread, may overlap the range.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.len, "kernel output range out of bounds");
        // SAFETY: in bounds (checked above) of a slice we hold the unique borrow of; the caller
        // guarantees no overlapping slice is live.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::balanced_block;

    #[test]
    fn balanced_blocks_are_bounded_and_shared_evenly() {
        // 64×64 pixels, blocks of 128..=256: 24 blocks of 171 (the last shorter).
        assert_eq!(balanced_block(4096, 256, 128), 171);
        // Many blocks: 1024 → 1056 (a multiple of 48) of 249 or fewer pixels.
        assert_eq!(balanced_block(512 * 512, 256, 128), 249);
        // Too small to split at the narrowest width: one block.
        assert_eq!(balanced_block(100, 256, 128), 100);
        assert_eq!(balanced_block(0, 256, 128), 1);
        for len in [1, 7, 64, 255, 256, 257, 1000, 4096, 65_536, 262_144] {
            for (widest, narrowest) in [(256, 128), (81, 64), (256, 32)] {
                let b = balanced_block(len, widest, narrowest);
                assert!(b >= 1 && b <= widest.max(1), "{len} {widest}: {b}");
                assert!(b >= narrowest.min(len.div_ceil(len.div_ceil(widest).max(1))));
            }
        }
    }
}
