//! GMSD, Gradient Magnitude Similarity Deviation (Xue, Zhang, Mou, Bovik, "Gradient Magnitude
//! Similarity Deviation: A Highly Efficient Perceptual Image Quality Index", IEEE TIP 2014), as
//! the `piq` package computes it (`piq.gmsd` in `piq/gmsd.py`, piq 0.8.0). The definition is on
//! [`gmsd`]; the goldens come from piq itself (`make_eval` in
//! `calib/reference/make_pipeline_goldens.py`).

use super::{Rgb8, check_pair, cropped_dims, view8};
use crate::Result;
use rayon::prelude::*;

/// piq's stability constant for intensities in [0, 1] (the paper's 170 on a 0..255 scale).
const T: f64 = 170.0 / (255.0 * 255.0);
/// YIQ luma weights (piq `rgb2yiq`, first row).
const Y_R: f64 = 0.299;
const Y_G: f64 = 0.587;
const Y_B: f64 = 0.114;

/// A row-major f64 plane.
struct Plane {
    data: Vec<f64>,
    width: usize,
    height: usize,
}

impl Plane {
    /// The value at (row, col), 0 outside the plane (zero padding).
    #[inline]
    fn at(&self, r: isize, c: isize) -> f64 {
        if r < 0 || c < 0 || r as usize >= self.height || c as usize >= self.width {
            return 0.0;
        }
        self.data[r as usize * self.width + c as usize]
    }
}

/// GMSD (Gradient Magnitude Similarity Deviation, Xue et al., IEEE TIP 2014) of `sr` against
/// `hr`, exactly as `piq.gmsd` (piq 0.8.0) computes it, after removing `crop_border` pixels from
/// each side (the pixels [`super::psnr_y`] and [`super::ssim_y`] measure). Lower is better;
/// identical images give exactly 0; symmetric in its arguments. Blur flattens gradients, which
/// GMSD punishes.
///
/// All in f64: RGB `v / 255` → Y of YIQ (`0.299 R + 0.587 G + 0.114 B`, not BasicSR's Y) →
/// zero-pad bottom and right by `d = max(H % 2, W % 2)` (piq pads both sides when either is odd;
/// the floor of the pooling drops the extra row or column of an even side) → 2×2 mean pooling,
/// stride 2 → Prewitt gradients (`[−1 0 1] / 3` over three rows and its transpose, zero padding
/// 1, cross-correlation like `conv2d`) → magnitudes `m = √(gx² + gy²)` →
/// `gms = (2·m1·m2 + t) / (m1² + m2² + t)`, `t = 170 / 255²` → GMSD = population standard
/// deviation of `gms` (divide by n; two passes).
pub fn gmsd(sr: &Rgb8, hr: &Rgb8, crop_border: usize) -> Result<f64> {
    check_pair(&view8(sr, "sr"), &view8(hr, "hr"), crop_border, 1, "gmsd")?;
    let a = gradient_magnitude(&pool2x2(&luma(sr, crop_border)));
    let b = gradient_magnitude(&pool2x2(&luma(hr, crop_border)));
    let gms: Vec<f64> = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| (2.0 * x * y + T) / (x * x + y * y + T))
        .collect();
    Ok(population_std(&gms))
}

/// YIQ luma of the cropped image, in [0, 1].
fn luma(img: &Rgb8, crop: usize) -> Plane {
    let (width, height) = cropped_dims(img.width, img.height, crop);
    let mut data = vec![0.0f64; width * height];
    data.par_chunks_mut(width).enumerate().for_each(|(r, row)| {
        let start = ((r + crop) * img.width + crop) * 3;
        let src = &img.data[start..start + width * 3];
        for (o, px) in row.iter_mut().zip(src.chunks_exact(3)) {
            let (cr, cg, cb) = (
                f64::from(px[0]) / 255.0,
                f64::from(px[1]) / 255.0,
                f64::from(px[2]) / 255.0,
            );
            *o = cr * Y_R + cg * Y_G + cb * Y_B;
        }
    });
    Plane {
        data,
        width,
        height,
    }
}

/// piq's downsampling: zero-pad bottom and right by `max(H % 2, W % 2)`, then 2×2 mean pooling,
/// stride 2, no ceil mode.
fn pool2x2(p: &Plane) -> Plane {
    let d = (p.height % 2).max(p.width % 2);
    let (width, height) = ((p.width + d) / 2, (p.height + d) / 2);
    let mut data = vec![0.0f64; width * height];
    data.par_chunks_mut(width.max(1))
        .enumerate()
        .for_each(|(i, row)| {
            let r = 2 * i as isize;
            for (j, o) in row.iter_mut().enumerate() {
                let c = 2 * j as isize;
                *o = (p.at(r, c) + p.at(r, c + 1) + p.at(r + 1, c) + p.at(r + 1, c + 1)) / 4.0;
            }
        });
    Plane {
        data,
        width,
        height,
    }
}

/// `√(gx² + gy²)` with piq's Prewitt kernels (±1/3) and zero padding, same size as `p`.
fn gradient_magnitude(p: &Plane) -> Plane {
    let k = 1.0 / 3.0;
    let mut data = vec![0.0f64; p.width * p.height];
    data.par_chunks_mut(p.width.max(1))
        .enumerate()
        .for_each(|(i, row)| {
            let r = i as isize;
            for (j, o) in row.iter_mut().enumerate() {
                let c = j as isize;
                let (mut gx, mut gy) = (0.0, 0.0);
                for d in -1..=1 {
                    gx += k * p.at(r + d, c + 1) - k * p.at(r + d, c - 1);
                    gy += k * p.at(r + 1, c + d) - k * p.at(r - 1, c + d);
                }
                *o = (gx * gx + gy * gy).sqrt();
            }
        });
    Plane {
        data,
        width: p.width,
        height: p.height,
    }
}

/// Population standard deviation (divide by n), two-pass.
fn population_std(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(data: Vec<f64>, width: usize, height: usize) -> Plane {
        Plane {
            data,
            width,
            height,
        }
    }

    #[test]
    fn pooling_follows_piqs_odd_size_rule() {
        // 3 rows × 2 columns: one side odd, so both get a zero row / column (4 × 3), and the
        // floor drops the added column: 2 × 1.
        let p = pool2x2(&plane(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3));
        assert_eq!((p.width, p.height), (1, 2));
        assert_eq!(p.data, vec![2.5, (5.0 + 6.0) / 4.0]);
        // Both even: no padding.
        let p = pool2x2(&plane((0..8).map(f64::from).collect(), 4, 2));
        assert_eq!((p.width, p.height), (2, 1));
        assert_eq!(
            p.data,
            vec![(0.0 + 1.0 + 4.0 + 5.0) / 4.0, (2.0 + 3.0 + 6.0 + 7.0) / 4.0]
        );
    }

    #[test]
    fn prewitt_on_a_ramp_and_at_the_zero_padded_border() {
        // Horizontal ramp v = c: inside, gx = 3 · (2/3) = 2 and gy = 0.
        let (w, h) = (5, 4);
        let p = plane((0..w * h).map(|i| (i % w) as f64).collect(), w, h);
        let g = gradient_magnitude(&p);
        assert!((g.data[w + 2] - 2.0).abs() < 1e-15, "{}", g.data[w + 2]);
        // Top-left corner: gx = (1 − 0)·2/3, gy = (0 + 0 + 1)/3 from the zero row above.
        let (gx, gy): (f64, f64) = (2.0 / 3.0, 1.0 / 3.0);
        assert!((g.data[0] - (gx * gx + gy * gy).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn population_std_divides_by_n() {
        assert_eq!(population_std(&[1.0, 3.0]), 1.0);
        assert_eq!(population_std(&[0.5; 7]), 0.0);
    }
}
