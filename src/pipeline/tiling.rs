//! Tile geometry and blending.
//!
//! Tiles are laid out in LR pixels: `t` wide with `o` overlap, starting at 0 and stepping by
//! `t − o`; the last tile is shifted inward to end exactly at the image edge (never padded), so
//! every tile has the same size and one arena plan serves them all.
//!
//! Blending: each tile's output is weighted by a smootherstep ramp (6u⁵ − 15u⁴ + 10u³) over the
//! first and last `O` output pixels of every edge it shares with a neighbour (weight 1 elsewhere
//! and at image borders), the 2-D weight being the product of the two axes; overlapping tiles
//! are averaged by their weights. Why: each tile normalises (GroupNorm) with its own statistics,
//! so neighbouring tiles disagree slightly in overlaps; a ramp with zero slope at both ends
//! spreads that disagreement over the whole overlap with no visible step (a hard cut or a linear
//! ramp leaves a line where the derivative jumps).

/// Start offsets of tiles of `t` covering `0..n` with overlap `o` (`o < t`).
pub fn starts(n: usize, t: usize, o: usize) -> Vec<usize> {
    if t >= n {
        return vec![0];
    }
    let stride = t - o;
    let mut out = Vec::new();
    let mut x = 0;
    while x + t < n {
        out.push(x);
        x += stride;
    }
    out.push(n - t);
    out
}

fn smootherstep(u: f32) -> f32 {
    let u = u.clamp(0.0, 1.0);
    u * u * u * (u * (u * 6.0 - 15.0) + 10.0)
}

/// Per-pixel weights along one axis of a tile of `len` output pixels: ramps of `ramp` pixels at
/// the edges flagged as shared with a neighbour.
pub fn axis_weights(len: usize, ramp: usize, ramp_start: bool, ramp_end: bool) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let mut w = 1.0f32;
            if ramp > 0 && ramp_start && i < ramp {
                w *= smootherstep((i as f32 + 0.5) / ramp as f32);
            }
            if ramp > 0 && ramp_end && len - 1 - i < ramp {
                w *= smootherstep(((len - 1 - i) as f32 + 0.5) / ramp as f32);
            }
            w
        })
        .collect()
}

/// The part of `0..n` (output pixels) a tile "owns" for statistics: from the middle of its
/// overlap with the previous tile to the middle of its overlap with the next.
pub fn owned(starts: &[usize], i: usize, t: usize, n: usize) -> (usize, usize) {
    let lo = if i == 0 {
        0
    } else {
        (starts[i] + starts[i - 1] + t) / 2
    };
    let hi = if i + 1 == starts.len() {
        n
    } else {
        (starts[i + 1] + starts[i] + t) / 2
    };
    (lo, hi.min(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_exactly_and_shift_inward() {
        for (n, t, o) in [
            (100, 32, 8),
            (32, 32, 8),
            (20, 32, 8),
            (33, 32, 8),
            (257, 64, 16),
            (65, 16, 0),
        ] {
            let s = starts(n, t, o);
            let t_eff = t.min(n);
            assert_eq!(s[0], 0);
            assert_eq!(s.last().unwrap() + t_eff, n, "{n} {t} {o}: {s:?}");
            for pair in s.windows(2) {
                assert!(
                    pair[1] > pair[0] && pair[1] <= pair[0] + t - o,
                    "{n} {t} {o}: {s:?}"
                );
            }
            // Owned parts partition 0..n.
            let mut at = 0;
            for i in 0..s.len() {
                let (lo, hi) = owned(&s, i, t_eff, n);
                assert_eq!(lo, at);
                assert!(
                    lo >= s[i] && hi <= s[i] + t_eff && hi > lo,
                    "{n} {t} {o}: {i}"
                );
                at = hi;
            }
            assert_eq!(at, n);
        }
    }

    #[test]
    fn ramps_are_smooth_and_only_on_shared_edges() {
        let w = axis_weights(16, 4, true, false);
        assert!(w[0] > 0.0 && w[0] < 0.05 && w[3] > 0.9 && w[3] < 1.0);
        assert!(w[4..].iter().all(|&v| v == 1.0));
        assert!(w.windows(2).all(|p| p[1] >= p[0]));
        assert!(axis_weights(8, 4, false, false).iter().all(|&v| v == 1.0));
        // Two tiles ramping over the same pixels sum to ~1 there (symmetric smootherstep).
        let a = axis_weights(8, 4, false, true);
        let b = axis_weights(8, 4, true, false);
        for k in 0..4 {
            assert!((a[4 + k] + b[k] - 1.0).abs() < 1e-6);
        }
    }
}
