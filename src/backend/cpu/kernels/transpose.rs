//! Matrix transpose: `[rows, cols]` → `[cols, rows]` (the U-Net's image ↔ token layouts).

use super::par::for_each_block;

/// Square tiles the copy walks, so that both sides of a tile stay in cache.
const TILE: usize = 32;

/// `out[c, r] = x[r, c]` for an `x` of `rows × cols`, on the current pool (each task owns a
/// band of output rows).
///
/// # Panics
/// When `x` or `out` is shorter than `rows · cols`.
pub fn transpose(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    let (x, out) = (&x[..rows * cols], &mut out[..rows * cols]);
    if rows == 0 {
        return;
    }
    for_each_block(out, rows, |c_first, band| {
        let c_end = c_first + band.len() / rows;
        for r0 in (0..rows).step_by(TILE) {
            for c0 in (c_first..c_end).step_by(TILE) {
                for c in c0..(c0 + TILE).min(c_end) {
                    let dst = &mut band[(c - c_first) * rows..][..rows];
                    for r in r0..(r0 + TILE).min(rows) {
                        dst[r] = x[r * cols + c];
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Rng, in_pool};
    use super::*;

    #[test]
    fn every_element_lands_in_its_place_on_any_pool() {
        let mut rng = Rng::new(5);
        for (rows, cols) in [(1, 1), (3, 70), (70, 3), (4096, 224), (257, 1024), (0, 5)] {
            let x = rng.vec(rows * cols);
            for threads in [1, 2, 3] {
                let mut out = vec![f32::NAN; rows * cols];
                in_pool(threads, || transpose(&x, rows, cols, &mut out));
                for r in 0..rows {
                    for c in 0..cols {
                        assert_eq!(out[c * rows + r], x[r * cols + c], "{rows}×{cols} {r},{c}");
                    }
                }
            }
        }
    }
}
