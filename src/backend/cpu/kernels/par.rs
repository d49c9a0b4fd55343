//! Splitting memory-bound loops over the current rayon pool.

use rayon::prelude::*;

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
