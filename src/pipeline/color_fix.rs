//! Colour correction of the SR output against the bicubic upscale (DESIGN.md §1), on planar f32
//! images `[3, H, W]` in [0, 1].
//! - `wavelet` (default): keep the SR image's high frequencies, take the low frequencies from the
//!   bicubic image — 5 levels of a 3×3 binomial blur with dilation 2^i and replicate padding.
//! - `adain`: match each channel's mean and std (unbiased, +1e-5) to the bicubic image's.
//! - `none`.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorFix {
    #[default]
    Wavelet,
    Adain,
    None,
}

impl ColorFix {
    pub fn from_name(name: &str) -> Option<ColorFix> {
        match name {
            "wavelet" => Some(ColorFix::Wavelet),
            "adain" => Some(ColorFix::Adain),
            "none" => Some(ColorFix::None),
            _ => None,
        }
    }

    /// Applies the fix to `sr` in place; `lq` is the bicubic reference, same shape.
    pub fn apply(self, sr: &mut [f32], lq: &[f32], h: usize, w: usize) {
        match self {
            ColorFix::Wavelet => wavelet(sr, lq, h, w),
            ColorFix::Adain => adain(sr, lq, h * w),
            ColorFix::None => {}
        }
    }
}

/// Blur levels of the wavelet decomposition.
pub(crate) const LEVELS: u32 = 5;

/// One plane blurred by [[1,2,1],[2,4,2],[1,2,1]]/16 with dilation `r`, edges replicated.
fn blur(src: &[f32], h: usize, w: usize, r: usize, dst: &mut [f32]) {
    const K: [[f32; 3]; 3] = [
        [0.0625, 0.125, 0.0625],
        [0.125, 0.25, 0.125],
        [0.0625, 0.125, 0.0625],
    ];
    let at = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    for y in 0..h {
        let rows = [at(y as isize - r as isize, h), y, at((y + r) as isize, h)];
        for x in 0..w {
            let cols = [at(x as isize - r as isize, w), x, at((x + r) as isize, w)];
            let mut acc = 0.0f32;
            for (ky, &ry) in rows.iter().enumerate() {
                for (kx, &cx) in cols.iter().enumerate() {
                    acc += K[ky][kx] * src[ry * w + cx];
                }
            }
            dst[y * w + x] = acc;
        }
    }
}

/// `(high, low)` of one plane: `high = Σ (img − blur(img))`, `low` = the last blur.
fn decompose(plane: &[f32], h: usize, w: usize) -> (Vec<f32>, Vec<f32>) {
    let mut img = plane.to_vec();
    let mut low = vec![0.0f32; plane.len()];
    let mut high = vec![0.0f32; plane.len()];
    for i in 0..LEVELS {
        blur(&img, h, w, 1 << i, &mut low);
        for ((hi, &x), &l) in high.iter_mut().zip(&img).zip(&low) {
            *hi += x - l;
        }
        std::mem::swap(&mut img, &mut low);
    }
    (high, img)
}

fn wavelet(sr: &mut [f32], lq: &[f32], h: usize, w: usize) {
    let hw = h * w;
    for (sr_plane, lq_plane) in sr.chunks_exact_mut(hw).zip(lq.chunks_exact(hw)) {
        let (high, _) = decompose(sr_plane, h, w);
        let (_, low) = decompose(lq_plane, h, w);
        for ((o, hi), lo) in sr_plane.iter_mut().zip(&high).zip(&low) {
            *o = hi + lo;
        }
    }
}

/// Per-plane mean and `√(unbiased var + 1e-5)`, accumulated in f64.
fn stats(plane: &[f32]) -> (f64, f64) {
    let n = plane.len() as f64;
    let mean = plane.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = plane
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0);
    (mean, (var + 1e-5).sqrt())
}

fn adain(sr: &mut [f32], lq: &[f32], hw: usize) {
    for (sr_plane, lq_plane) in sr.chunks_exact_mut(hw).zip(lq.chunks_exact(hw)) {
        let target = stats(lq_plane);
        match_moments(sr_plane, target);
    }
}

/// `(x − μ)/σ · σ_target + μ_target` over one plane.
fn match_moments(plane: &mut [f32], (mt, st): (f64, f64)) {
    let (m, s) = stats(plane);
    for v in plane.iter_mut() {
        *v = (((*v as f64 - m) / s) * st + mt) as f32;
    }
}

/// AdaIN against target statistics given as per-channel `[Σx, Σx²]` over `hw` pixels (the tiler
/// gathers them tile by tile, so the bicubic image never exists whole).
pub fn adain_with(sr: &mut [f32], hw: usize, target_sums: &[[f64; 2]; 3]) {
    let n = hw as f64;
    for (plane, [s1, s2]) in sr.chunks_exact_mut(hw).zip(target_sums) {
        let mean = s1 / n;
        let var = ((s2 - n * mean * mean) / (n - 1.0).max(1.0)).max(0.0);
        match_moments(plane, (mean, (var + 1e-5).sqrt()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wavelet_keeps_high_of_sr_and_low_of_lq() {
        let (h, w) = (20, 24);
        let sr: Vec<f32> = (0..3 * h * w)
            .map(|i| ((i * 37 % 101) as f32) / 101.0)
            .collect();
        // A flat bicubic image: the result's low band is that constant, so the mean moves to it.
        let lq = vec![0.25f32; 3 * h * w];
        let mut out = sr.clone();
        ColorFix::Wavelet.apply(&mut out, &lq, h, w);
        let (high, _) = decompose(&sr[..h * w], h, w);
        for (o, hi) in out[..h * w].iter().zip(&high) {
            assert!((o - (hi + 0.25)).abs() < 1e-6);
        }
        // A constant image has no high band: wavelet(c, lq) = low(lq).
        let mut flat = vec![0.7f32; 3 * h * w];
        ColorFix::Wavelet.apply(&mut flat, &lq, h, w);
        assert!(flat.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn adain_matches_moments() {
        let hw = 100;
        let mut sr: Vec<f32> = (0..3 * hw).map(|i| (i % 17) as f32 * 0.03).collect();
        let lq: Vec<f32> = (0..3 * hw)
            .map(|i| 0.5 + ((i % 5) as f32 - 2.0) * 0.1)
            .collect();
        ColorFix::Adain.apply(&mut sr, &lq, 10, 10);
        for c in 0..3 {
            let (m1, s1) = stats(&sr[c * hw..(c + 1) * hw]);
            let (m2, s2) = stats(&lq[c * hw..(c + 1) * hw]);
            assert!(
                (m1 - m2).abs() < 1e-5 && (s1 - s2).abs() < 1e-3,
                "{m1} {m2} {s1} {s2}"
            );
        }
        assert_eq!(ColorFix::from_name("adain"), Some(ColorFix::Adain));
        assert_eq!(ColorFix::from_name("nope"), None);
    }
}
