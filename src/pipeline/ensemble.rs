//! The self-ensemble: the same networks run on mirrored copies of the input, each output
//! mirrored back, the copies averaged (EDSR+'s "self-ensemble", here with mirrors only).
//!
//! ```text
//! LR ──────────── upscale ───────────────┐
//! LR ─ mirror ←→ ─ upscale ─ mirror ←→ ──┼─ mean ─ SR
//! LR ─ mirror ↕  ─ upscale ─ mirror ↕  ──┤        (4 copies: also ↕, and both)
//! LR ─ mirror ←→↕ ─ upscale ─ mirror ←→↕ ┘
//! ```
//!
//! Each copy is a whole [`super::upscale`] of the mirrored input (its own tile grid, its own
//! DINOv2 context), clamped to [0, 1] as it would be written (the colour fix can step outside
//! it), so an ensemble of `n` costs `n` upscales. Where the model's errors on the
//! copies differ, their mean is closer to the truth; the demo model was trained on pairs drawn
//! under every flip, so each copy is an input it knows (`docs/demo-model.md`, round 42).

use super::upscale::{Rect, UpscaleOptions, Upscaled, buffer};
use crate::error::{Error, Result};

/// One copy's mirrors: left-right, up-down. Each is its own inverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mirror {
    pub left_right: bool,
    pub up_down: bool,
}

/// The copies, in order; an ensemble of `n` runs the first `n`.
pub const MIRRORS: [Mirror; 4] = [
    Mirror {
        left_right: false,
        up_down: false,
    },
    Mirror {
        left_right: true,
        up_down: false,
    },
    Mirror {
        left_right: false,
        up_down: true,
    },
    Mirror {
        left_right: true,
        up_down: true,
    },
];

/// The ensemble sizes there are: 1 (no ensemble), 2 (←→), 4 (←→, ↕, both).
pub const SIZES: [usize; 3] = [1, 2, 4];

/// `n`, or an error naming the sizes there are.
pub fn check(n: usize) -> Result<usize> {
    if SIZES.contains(&n) {
        Ok(n)
    } else {
        Err(Error::InvalidArgument(format!(
            "ensemble {n}: expected 1 (none), 2 (the input and its left-right mirror) or 4 \
             (also the up-down mirror and both)"
        )))
    }
}

impl Mirror {
    /// Whether this copy is the input itself.
    pub fn is_identity(&self) -> bool {
        !self.left_right && !self.up_down
    }

    /// The source index of `(y, x)` along each axis of an `h × w` plane.
    fn at(&self, y: usize, x: usize, h: usize, w: usize) -> (usize, usize) {
        (
            if self.up_down { h - 1 - y } else { y },
            if self.left_right { w - 1 - x } else { x },
        )
    }

    /// `dst[c, y, x] = src[c, mirrored (y, x)]` for planar `[planes, h, w]` images.
    pub fn copy(&self, src: &[f32], h: usize, w: usize, dst: &mut [f32]) {
        self.each(src, h, w, dst, |d, s| *d = s);
    }

    /// `dst[c, y, x] += src[c, mirrored (y, x)]`: adds a mirrored copy's output, mirrored back.
    pub fn add(&self, src: &[f32], h: usize, w: usize, dst: &mut [f32]) {
        self.each(src, h, w, dst, |d, s| *d += s);
    }

    fn each(&self, src: &[f32], h: usize, w: usize, dst: &mut [f32], f: impl Fn(&mut f32, f32)) {
        debug_assert_eq!(src.len(), dst.len());
        for (c, plane) in dst.chunks_exact_mut(h * w).enumerate() {
            let src = &src[c * h * w..][..h * w];
            for (y, row) in plane.chunks_exact_mut(w).enumerate() {
                for (x, d) in row.iter_mut().enumerate() {
                    let (sy, sx) = self.at(y, x, h, w);
                    f(d, src[sy * w + sx]);
                }
            }
        }
    }

    /// The rectangle `r` of a `w × h` image, in the mirrored image.
    pub fn rect(&self, r: Rect, w: usize, h: usize) -> Rect {
        Rect {
            x: if self.left_right {
                w - r.x - r.width
            } else {
                r.x
            },
            y: if self.up_down {
                h - r.y - r.height
            } else {
                r.y
            },
            ..r
        }
    }
}

/// The mean of `n` copies: copy k is `upscale` of the `h × w` input `lr01 [3, h, w]` mirrored
/// by `MIRRORS[k]` (with `opts`' ROI mirrored with it), mirrored back and clamped to [0, 1] as
/// it would be written. `progress` sees the copies' tiles as one count.
pub(super) fn average(
    n: usize,
    lr01: &[f32],
    h: usize,
    w: usize,
    opts: &UpscaleOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
    mut upscale: impl FnMut(
        &[f32],
        &UpscaleOptions,
        &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Upscaled>,
) -> Result<Upscaled> {
    let clamp = |out: &mut Upscaled| out.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    let mut mirrored = buffer(&[3, h, w])?;
    let mut sum: Option<Upscaled> = None;
    for (k, m) in MIRRORS[..check(n)?].iter().enumerate() {
        let mut copy_progress = |done, total| progress(k * total + done, n * total);
        let Some(sum) = sum.as_mut() else {
            debug_assert!(m.is_identity());
            let mut first = upscale(lr01, opts, &mut copy_progress)?;
            clamp(&mut first);
            sum = Some(first);
            continue;
        };
        m.copy(lr01, h, w, &mut mirrored);
        let copy_opts = UpscaleOptions {
            roi: opts.roi.map(|r| m.rect(r, w, h)),
            ..opts.clone()
        };
        let mut out = upscale(&mirrored, &copy_opts, &mut copy_progress)?;
        clamp(&mut out);
        m.add(&out.data, out.height, out.width, &mut sum.data);
        sum.tiles += out.tiles;
        sum.f32_reruns += out.f32_reruns;
        sum.arena_bytes = sum.arena_bytes.max(out.arena_bytes);
    }
    let mut out = sum.ok_or_else(|| Error::InvalidArgument("an ensemble of no copies".into()))?;
    let inv = 1.0 / n as f32;
    for v in &mut out.data {
        *v *= inv;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        for n in SIZES {
            assert_eq!(check(n).unwrap(), n);
        }
        for n in [0, 3, 5, 8] {
            assert!(matches!(check(n), Err(Error::InvalidArgument(_))), "{n}");
        }
    }

    #[test]
    fn mirrors_move_pixels_and_undo_themselves() {
        // 2 planes of 2 × 3: values name their (plane, y, x).
        let img: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let mut out = vec![0.0; 12];
        MIRRORS[1].copy(&img, 2, 3, &mut out);
        assert_eq!(out, [2., 1., 0., 5., 4., 3., 8., 7., 6., 11., 10., 9.]);
        MIRRORS[2].copy(&img, 2, 3, &mut out);
        assert_eq!(out, [3., 4., 5., 0., 1., 2., 9., 10., 11., 6., 7., 8.]);
        MIRRORS[3].copy(&img, 2, 3, &mut out);
        assert_eq!(out, [5., 4., 3., 2., 1., 0., 11., 10., 9., 8., 7., 6.]);
        for m in MIRRORS {
            let (mut once, mut sum) = (vec![0.0; 12], vec![1.0; 12]);
            m.copy(&img, 2, 3, &mut once);
            m.add(&once, 2, 3, &mut sum);
            assert_eq!(
                sum,
                img.iter().map(|v| v + 1.0).collect::<Vec<_>>(),
                "{m:?}"
            );
        }
        assert!(MIRRORS[0].is_identity() && !MIRRORS[1..].iter().any(Mirror::is_identity));
    }

    #[test]
    fn rectangles_follow_the_mirror() {
        let r = Rect {
            x: 1,
            y: 2,
            width: 3,
            height: 4,
        };
        let at = |m: Mirror| {
            let q = m.rect(r, 10, 9);
            (q.x, q.y, q.width, q.height)
        };
        assert_eq!(at(MIRRORS[0]), (1, 2, 3, 4));
        assert_eq!(at(MIRRORS[1]), (6, 2, 3, 4));
        assert_eq!(at(MIRRORS[2]), (1, 3, 3, 4));
        assert_eq!(at(MIRRORS[3]), (6, 3, 3, 4));
    }
}
