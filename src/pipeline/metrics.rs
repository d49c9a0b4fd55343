//! Full-reference image-quality metrics as super-resolution papers report them: BasicSR's
//! `calculate_psnr` / `calculate_ssim` with `test_y_channel=True` (the numpy reference is
//! `basicsr_y`, `psnr_y` and `ssim_y` in `calib/reference/make_pipeline_goldens.py`).
//!
//! * **Y channel** (BT.601, BasicSR `rgb2ycbcr(y_only=True)` on RGB-ordered data), with BasicSR's
//!   exact precision steps: `x = f32(v) / 255` (f32 division, per channel);
//!   `y = 65.481·x_R + 128.553·x_G + 24.966·x_B + 16` in f64; `y = f32(y / 255)`; `Y = y·255` in
//!   f32, in [16, 235]; everything after that is f64.
//!   16-bit images ([`Rgb16`]) use `x = f32(v) / 65535` and otherwise the same formula, so their
//!   Y is on the same [16, 235] scale and the PSNR peak is still 255. (BasicSR itself divides any
//!   dtype by 255, which is meaningless for 16-bit data; this is the natural extension.)
//! * **Crop**: `crop_border` pixels are removed from each side before anything is computed
//!   (Y is per pixel, so cropping before or after the conversion is the same).
//! * **PSNR** = 10·log10(255² / MSE), MSE over the cropped Y planes in f64; identical images give
//!   `f64::INFINITY`.
//! * **SSIM**: 11×11 Gaussian window (σ = 1.5, outer product of the normalised 1-D kernel
//!   `exp(−x²/(2σ²))`, x = −5..=5, as `cv2.getGaussianKernel`), 'valid' filtering (the map is
//!   (H−10)×(W−10)), C1 = (0.01·255)², C2 = (0.03·255)²,
//!   `map = ((2μ1μ2 + C1)(2σ12 + C2)) / ((μ1² + μ2² + C1)(σ1² + σ2² + C2))` with
//!   `σ1² = filt(Y1²) − μ1²` etc.; the result is the mean of the map. The filter is applied
//!   separably (vertical then horizontal pass), which differs from the direct 2-D sum only in
//!   f64 rounding (~1e-15).
//!
//! Both metrics are computed in parallel over fixed bands of rows whose partial sums are added in
//! band order, so the result does not depend on the number of threads.
//!
//! [`gmsd`] (in `metrics/gmsd.rs`) adds GMSD, Gradient Magnitude Similarity Deviation, as the
//! `piq` package defines it (its own luma, not BasicSR's Y), on the same cropped pixels.

use crate::{Error, Result};
use rayon::prelude::*;

mod gmsd;
pub use gmsd::gmsd;

/// An interleaved RGB image view (8-bit).
#[derive(Debug, Clone, Copy)]
pub struct Rgb8<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
}

/// An interleaved RGB image view (16-bit). Samples are normalised by 65535 (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Rgb16<'a> {
    pub data: &'a [u16],
    pub width: usize,
    pub height: usize,
}

/// BasicSR Y-channel weights (BT.601, for inputs in [0, 1]) and offset.
const W_R: f64 = 65.481;
const W_G: f64 = 128.553;
const W_B: f64 = 24.966;
const Y_OFFSET: f64 = 16.0;

/// SSIM window size and Gaussian σ.
const WIN: usize = 11;
const SIGMA: f64 = 1.5;
const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// Rows of output per parallel work item (fixed so that sums do not depend on the thread count).
const BAND: usize = 32;

/// Internal view over either sample depth; `unit` maps a sample to `f32` in [0, 1].
struct View<'a, T> {
    data: &'a [T],
    width: usize,
    height: usize,
    what: &'static str,
}

/// The BasicSR Y value of one pixel whose channels are already in [0, 1] as f32.
#[inline]
fn y_of(r: f32, g: f32, b: f32) -> f32 {
    let y = f64::from(r) * W_R + f64::from(g) * W_G + f64::from(b) * W_B + Y_OFFSET;
    ((y / 255.0) as f32) * 255.0f32
}

fn lut8() -> [f32; 256] {
    let mut t = [0.0f32; 256];
    for (v, x) in t.iter_mut().enumerate() {
        *x = v as f32 / 255.0f32;
    }
    t
}

fn check_len<T>(v: &View<'_, T>) -> Result<()> {
    let need = v
        .width
        .checked_mul(v.height)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} image size {}x{} overflows",
                v.what, v.width, v.height
            ))
        })?;
    if v.data.len() != need {
        return Err(Error::InvalidArgument(format!(
            "{} image: data has {} samples, expected {} (= {}x{}x3 interleaved RGB)",
            v.what,
            v.data.len(),
            need,
            v.width,
            v.height
        )));
    }
    Ok(())
}

/// Width and height left after removing `crop` pixels from every side (0 where nothing is left).
fn cropped_dims(w: usize, h: usize, crop: usize) -> (usize, usize) {
    let c2 = crop.saturating_mul(2);
    (w.saturating_sub(c2), h.saturating_sub(c2))
}

/// Cropped Y plane (row-major, `cw × ch`) of an already validated view. Values are stored as
/// f32, which is exactly BasicSR's precision before its conversion to f64.
fn y_plane<T: Copy + Sync>(
    v: &View<'_, T>,
    crop: usize,
    unit: impl Fn(T) -> f32 + Sync,
) -> (Vec<f32>, usize, usize) {
    let (cw, ch) = cropped_dims(v.width, v.height, crop);
    let mut out = vec![0.0f32; cw * ch];
    if cw == 0 || ch == 0 {
        return (out, cw, ch);
    }
    out.par_chunks_mut(cw).enumerate().for_each(|(r, row)| {
        let start = ((r + crop) * v.width + crop) * 3;
        let src = &v.data[start..start + cw * 3];
        for (o, px) in row.iter_mut().zip(src.chunks_exact(3)) {
            *o = y_of(unit(px[0]), unit(px[1]), unit(px[2]));
        }
    });
    (out, cw, ch)
}

fn y_plane8(img: &Rgb8, crop: usize) -> (Vec<f32>, usize, usize) {
    let t = lut8();
    y_plane(&view8(img, "image"), crop, |s: u8| t[s as usize])
}

fn y_plane16(img: &Rgb16, crop: usize) -> (Vec<f32>, usize, usize) {
    y_plane(&view16(img, "image"), crop, |s: u16| s as f32 / 65535.0f32)
}

fn view8<'a>(img: &Rgb8<'a>, what: &'static str) -> View<'a, u8> {
    View {
        data: img.data,
        width: img.width,
        height: img.height,
        what,
    }
}

fn view16<'a>(img: &Rgb16<'a>, what: &'static str) -> View<'a, u16> {
    View {
        data: img.data,
        width: img.width,
        height: img.height,
        what,
    }
}

/// Validates a pair (lengths, equal sizes, enough pixels left after the crop).
fn check_pair<T>(
    sr: &View<'_, T>,
    hr: &View<'_, T>,
    crop: usize,
    min_side: usize,
    metric: &str,
) -> Result<()> {
    check_len(sr)?;
    check_len(hr)?;
    if sr.width != hr.width || sr.height != hr.height {
        return Err(Error::InvalidArgument(format!(
            "{metric}: sr is {}x{} but hr is {}x{} (width x height); they must match",
            sr.width, sr.height, hr.width, hr.height
        )));
    }
    let (cw, ch) = cropped_dims(sr.width, sr.height, crop);
    if cw < min_side || ch < min_side {
        return Err(Error::InvalidArgument(format!(
            "{metric}: a {}x{} image cropped by {crop} on each side leaves {cw}x{ch} pixels; \
             at least {min_side}x{min_side} are needed",
            sr.width, sr.height
        )));
    }
    Ok(())
}

/// BasicSR's Y channel (BT.601 luma in [16, 235], see the module docs) of a whole image,
/// row-major `width × height`. An image whose data length is not `width·height·3` gives an empty
/// vector; the metric functions report that case as an error.
pub fn y_channel(img: &Rgb8) -> Vec<f64> {
    if check_len(&view8(img, "image")).is_err() {
        return Vec::new();
    }
    y_plane8(img, 0).0.into_iter().map(f64::from).collect()
}

/// [`y_channel`] for a 16-bit image (samples normalised by 65535).
pub fn y_channel16(img: &Rgb16) -> Vec<f64> {
    if check_len(&view16(img, "image")).is_err() {
        return Vec::new();
    }
    y_plane16(img, 0).0.into_iter().map(f64::from).collect()
}

/// PSNR (dB) on the BasicSR Y channel after removing `crop_border` pixels from each side
/// (BasicSR `calculate_psnr(..., test_y_channel=True)`); identical images give `f64::INFINITY`.
pub fn psnr_y(sr: &Rgb8, hr: &Rgb8, crop_border: usize) -> Result<f64> {
    check_pair(&view8(sr, "sr"), &view8(hr, "hr"), crop_border, 1, "psnr_y")?;
    let (a, w, _) = y_plane8(sr, crop_border);
    let (b, _, _) = y_plane8(hr, crop_border);
    Ok(psnr_planes(&a, &b, w))
}

/// SSIM on the BasicSR Y channel after removing `crop_border` pixels from each side
/// (BasicSR `calculate_ssim(..., test_y_channel=True)`); the cropped image must be at least
/// 11×11.
pub fn ssim_y(sr: &Rgb8, hr: &Rgb8, crop_border: usize) -> Result<f64> {
    check_pair(
        &view8(sr, "sr"),
        &view8(hr, "hr"),
        crop_border,
        WIN,
        "ssim_y",
    )?;
    let (a, w, h) = y_plane8(sr, crop_border);
    let (b, _, _) = y_plane8(hr, crop_border);
    Ok(ssim_planes(&a, &b, w, h))
}

/// [`psnr_y`] for 16-bit images.
pub fn psnr_y16(sr: &Rgb16, hr: &Rgb16, crop_border: usize) -> Result<f64> {
    check_pair(
        &view16(sr, "sr"),
        &view16(hr, "hr"),
        crop_border,
        1,
        "psnr_y",
    )?;
    let (a, w, _) = y_plane16(sr, crop_border);
    let (b, _, _) = y_plane16(hr, crop_border);
    Ok(psnr_planes(&a, &b, w))
}

/// [`ssim_y`] for 16-bit images.
pub fn ssim_y16(sr: &Rgb16, hr: &Rgb16, crop_border: usize) -> Result<f64> {
    check_pair(
        &view16(sr, "sr"),
        &view16(hr, "hr"),
        crop_border,
        WIN,
        "ssim_y",
    )?;
    let (a, w, h) = y_plane16(sr, crop_border);
    let (b, _, _) = y_plane16(hr, crop_border);
    Ok(ssim_planes(&a, &b, w, h))
}

/// PSNR of two equally sized, non-empty planes of row width `w` (peak 255).
fn psnr_planes(a: &[f32], b: &[f32], w: usize) -> f64 {
    let n = a.len();
    let sums: Vec<f64> = a
        .par_chunks(w * BAND)
        .zip(b.par_chunks(w * BAND))
        .map(|(ra, rb)| {
            ra.iter()
                .zip(rb)
                .map(|(&x, &y)| {
                    let d = f64::from(x) - f64::from(y);
                    d * d
                })
                .sum::<f64>()
        })
        .collect();
    let mse = sums.iter().sum::<f64>() / n as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// `cv2.getGaussianKernel(11, 1.5)` in f64.
fn gaussian_1d() -> [f64; WIN] {
    let mut g = [0.0f64; WIN];
    let half = (WIN - 1) as f64 / 2.0;
    for (i, v) in g.iter_mut().enumerate() {
        let x = i as f64 - half;
        *v = ((-0.5 / (SIGMA * SIGMA)) * x * x).exp();
    }
    let s: f64 = g.iter().sum();
    let inv = 1.0 / s;
    for v in g.iter_mut() {
        *v *= inv;
    }
    g
}

/// Output columns per block of the SSIM filter: the block's working rows (5 × (COLS + 10) and
/// 5 × COLS f64) stay in L1 cache.
const COLS: usize = 256;

/// Mean SSIM map of two `w × h` planes (`w, h ≥ 11`), separable 'valid' Gaussian filtering.
fn ssim_planes(a: &[f32], b: &[f32], w: usize, h: usize) -> f64 {
    let g = gaussian_1d();
    let (ow, oh) = (w - (WIN - 1), h - (WIN - 1));
    let bands = oh.div_ceil(BAND);
    let sums: Vec<f64> = (0..bands)
        .into_par_iter()
        .map(|band| {
            let r0 = band * BAND;
            let r1 = (r0 + BAND).min(oh);
            let mut v = [const { Vec::new() }; 5];
            let mut f = [const { Vec::new() }; 5];
            let mut total = 0.0f64;
            for r in r0..r1 {
                let mut row = 0.0f64;
                for j0 in (0..ow).step_by(COLS) {
                    let bw = COLS.min(ow - j0);
                    row += ssim_block(a, b, w, r, j0, bw, &g, &mut v, &mut f);
                }
                total += row;
            }
            total
        })
        .collect();
    sums.iter().sum::<f64>() / (ow * oh) as f64
}

/// Sum of the SSIM map over output row `r`, columns `j0 .. j0 + bw` (input rows `r .. r + 11`,
/// columns `j0 .. j0 + bw + 10`). `v` and `f` are scratch rows for Y1, Y2, Y1², Y2², Y1·Y2 after
/// the vertical and after both passes.
#[allow(clippy::too_many_arguments)]
fn ssim_block(
    a: &[f32],
    b: &[f32],
    w: usize,
    r: usize,
    j0: usize,
    bw: usize,
    g: &[f64; WIN],
    v: &mut [Vec<f64>; 5],
    f: &mut [Vec<f64>; 5],
) -> f64 {
    let iw = bw + WIN - 1;
    for q in v.iter_mut() {
        q.clear();
        q.resize(iw, 0.0);
    }
    let [va, vb, vaa, vbb, vab] = v;
    for (k, &gk) in g.iter().enumerate() {
        let s = (r + k) * w + j0;
        let (ra, rb) = (&a[s..s + iw], &b[s..s + iw]);
        let acc = va
            .iter_mut()
            .zip(vb.iter_mut())
            .zip(vaa.iter_mut())
            .zip(vbb.iter_mut())
            .zip(vab.iter_mut());
        for (((((pa, pb), paa), pbb), pab), (&x, &y)) in acc.zip(ra.iter().zip(rb)) {
            let (x, y) = (f64::from(x), f64::from(y));
            *pa += gk * x;
            *pb += gk * y;
            *paa += gk * (x * x);
            *pbb += gk * (y * y);
            *pab += gk * (x * y);
        }
    }
    for (vq, fq) in v.iter().zip(f.iter_mut()) {
        fq.clear();
        fq.resize(bw, 0.0);
        for (k, &gk) in g.iter().enumerate() {
            for (o, &s) in fq.iter_mut().zip(&vq[k..k + bw]) {
                *o += gk * s;
            }
        }
    }
    let [mu1, mu2, faa, fbb, fab] = &*f;
    let mut sum = 0.0f64;
    for ((((&m1, &m2), &xx), &yy), &xy) in mu1.iter().zip(mu2).zip(faa).zip(fbb).zip(fab) {
        let (m1s, m2s, m12) = (m1 * m1, m2 * m2, m1 * m2);
        let (s1, s2, s12) = (xx - m1s, yy - m2s, xy - m12);
        sum += ((2.0 * m12 + C1) * (2.0 * s12 + C2)) / ((m1s + m2s + C1) * (s1 + s2 + C2));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift).
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 32) as u8
            })
            .collect()
    }

    /// A smooth image with some texture, `w × h`.
    fn pattern(w: usize, h: usize, seed: u64) -> Vec<u8> {
        let n = noise(w * h * 3, seed);
        (0..w * h * 3)
            .map(|i| {
                let (p, c) = (i / 3, i % 3);
                let (x, y) = ((p % w) as f64, (p / w) as f64);
                let v = 128.0
                    + 80.0 * ((x * 0.21 + c as f64).sin() * (y * 0.13).cos())
                    + (n[i] as f64 - 128.0) * 0.15;
                v.round().clamp(0.0, 255.0) as u8
            })
            .collect()
    }

    fn img(data: &[u8], w: usize, h: usize) -> Rgb8<'_> {
        Rgb8 {
            data,
            width: w,
            height: h,
        }
    }

    /// The numpy reference's direct 2-D 'valid' filter and SSIM, for cross-checking.
    fn ssim_direct(a: &[f64], b: &[f64], w: usize, h: usize) -> f64 {
        let g = gaussian_1d();
        let (ow, oh) = (w - 10, h - 10);
        let filt = |p: &dyn Fn(usize) -> f64| -> Vec<f64> {
            let mut out = vec![0.0; ow * oh];
            for dy in 0..WIN {
                for dx in 0..WIN {
                    let wgt = g[dy] * g[dx];
                    for i in 0..oh {
                        for j in 0..ow {
                            out[i * ow + j] += wgt * p((i + dy) * w + j + dx);
                        }
                    }
                }
            }
            out
        };
        let mu1 = filt(&|i| a[i]);
        let mu2 = filt(&|i| b[i]);
        let faa = filt(&|i| a[i] * a[i]);
        let fbb = filt(&|i| b[i] * b[i]);
        let fab = filt(&|i| a[i] * b[i]);
        let mut s = 0.0;
        for i in 0..ow * oh {
            let (m1s, m2s, m12) = (mu1[i] * mu1[i], mu2[i] * mu2[i], mu1[i] * mu2[i]);
            s += ((2.0 * m12 + C1) * (2.0 * (fab[i] - m12) + C2))
                / ((m1s + m2s + C1) * (faa[i] - m1s + fbb[i] - m2s + C2));
        }
        s / (ow * oh) as f64
    }

    #[test]
    fn gaussian_kernel_is_normalised_and_symmetric() {
        let g = gaussian_1d();
        assert!((g.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        for i in 0..WIN {
            assert_eq!(g[i], g[WIN - 1 - i]);
        }
        // cv2.getGaussianKernel(11, 1.5)[5]
        assert!((g[5] - 0.266_011_724_2).abs() < 1e-9, "{}", g[5]);
    }

    #[test]
    fn y_channel_matches_basicsr_values() {
        // Black, white and mid grey: 16, 235 and 16 + 219·128/255 (f32-rounded steps).
        let data = [0u8, 0, 0, 255, 255, 255, 128, 128, 128, 255, 0, 0];
        let y = y_channel(&img(&data, 4, 1));
        assert_eq!(y.len(), 4);
        assert!((y[0] - 16.0).abs() < 1e-5);
        assert!((y[1] - 235.0).abs() < 1e-4);
        assert!((y[2] - (16.0 + 219.0 * 128.0 / 255.0)).abs() < 1e-4);
        assert!((y[3] - (16.0 + 65.481)).abs() < 1e-4);
        // Exactly the f32 pipeline: f32(f64 dot + 16) / 255 → f32, × 255 in f32.
        let x = 128.0f32 / 255.0f32;
        let yd = f64::from(x) * W_R + f64::from(x) * W_G + f64::from(x) * W_B + 16.0;
        assert_eq!(y[2], f64::from(((yd / 255.0) as f32) * 255.0f32));
        // Every value is an f32.
        for v in &y {
            assert_eq!(*v, f64::from(*v as f32));
        }
        // Bad length: empty.
        assert!(y_channel(&img(&data, 3, 1)).is_empty());
    }

    #[test]
    fn y_channel16_extremes() {
        let data = [0u16, 0, 0, 65535, 65535, 65535];
        let y = y_channel16(&Rgb16 {
            data: &data,
            width: 2,
            height: 1,
        });
        assert!((y[0] - 16.0).abs() < 1e-5 && (y[1] - 235.0).abs() < 1e-4);
        // 257·v in 16 bits is the same colour as v in 8 bits.
        let d8: Vec<u8> = pattern(16, 16, 3);
        let d16: Vec<u16> = d8.iter().map(|&v| v as u16 * 257).collect();
        let y8 = y_channel(&img(&d8, 16, 16));
        let y16 = y_channel16(&Rgb16 {
            data: &d16,
            width: 16,
            height: 16,
        });
        for (p, q) in y8.iter().zip(&y16) {
            assert!((p - q).abs() < 1e-4);
        }
    }

    #[test]
    fn identical_images() {
        let d = pattern(40, 30, 1);
        let a = img(&d, 40, 30);
        for crop in [0, 4] {
            assert_eq!(psnr_y(&a, &a, crop).unwrap(), f64::INFINITY);
            assert!((ssim_y(&a, &a, crop).unwrap() - 1.0).abs() <= 1e-12);
        }
        let d16: Vec<u16> = d.iter().map(|&v| v as u16 * 257).collect();
        let a16 = Rgb16 {
            data: &d16,
            width: 40,
            height: 30,
        };
        assert_eq!(psnr_y16(&a16, &a16, 4).unwrap(), f64::INFINITY);
        assert!((ssim_y16(&a16, &a16, 4).unwrap() - 1.0).abs() <= 1e-12);
    }

    #[test]
    fn constant_offset_of_one_y_level() {
        // On Y planes offset by exactly 1.0: MSE = 1, PSNR = 10·log10(255²) = 20·log10(255).
        let w = 17;
        let a: Vec<f32> = (0..w * 13).map(|i| 16.0 + (i % 200) as f32).collect();
        let b: Vec<f32> = a.iter().map(|v| v + 1.0).collect();
        let p = psnr_planes(&a, &b, w);
        assert!((p - 20.0 * 255f64.log10()).abs() < 1e-12, "{p}");
        assert!((p - 48.130_803_608_679_1).abs() < 1e-9);

        // Grey v vs grey v+1 in RGB moves Y by 219/255 of a level (f32 rounding aside):
        // PSNR = 20·log10(255 · 255 / 219) ≈ 49.4543.
        let (w, h) = (24, 20);
        let da = vec![100u8; w * h * 3];
        let db = vec![101u8; w * h * 3];
        let p = psnr_y(&img(&da, w, h), &img(&db, w, h), 4).unwrap();
        let expect = 20.0 * (255.0 * 255.0 / 219.0f64).log10();
        assert!((p - expect).abs() < 1e-4, "{p} vs {expect}");
        // Exactly the value from the Y planes themselves.
        let (ya, yb) = (y_channel(&img(&da, w, h)), y_channel(&img(&db, w, h)));
        let d = ya[0] - yb[0];
        assert!((p - 10.0 * (255.0 * 255.0 / (d * d)).log10()).abs() < 1e-12);
        // Flat images: σ = 0, SSIM = (2μ1μ2 + C1) / (μ1² + μ2² + C1).
        let s = ssim_y(&img(&da, w, h), &img(&db, w, h), 4).unwrap();
        let (m1, m2) = (ya[0], yb[0]);
        let e = (2.0 * m1 * m2 + C1) / (m1 * m1 + m2 * m2 + C1);
        assert!((s - e).abs() < 1e-12, "{s} vs {e}");
    }

    #[test]
    fn separable_ssim_matches_direct_2d_filter() {
        let (w, h) = (37, 29);
        let (da, db) = (pattern(w, h, 7), pattern(w, h, 11));
        let (ya, yb) = (y_channel(&img(&da, w, h)), y_channel(&img(&db, w, h)));
        let direct = ssim_direct(&ya, &yb, w, h);
        let ours = ssim_y(&img(&da, w, h), &img(&db, w, h), 0).unwrap();
        assert!((ours - direct).abs() < 1e-12, "{ours} vs {direct}");
        assert!(ours > 0.0 && ours < 1.0);
        // Cropping then measuring = measuring the cropped Y plane.
        let c = 3;
        let (cw, ch) = (w - 2 * c, h - 2 * c);
        let crop = |y: &[f64]| -> Vec<f64> {
            (c..h - c)
                .flat_map(|r| y[r * w + c..r * w + w - c].to_vec())
                .collect()
        };
        let direct = ssim_direct(&crop(&ya), &crop(&yb), cw, ch);
        let ours = ssim_y(&img(&da, w, h), &img(&db, w, h), c).unwrap();
        assert!((ours - direct).abs() < 1e-12, "{ours} vs {direct}");
        // Multi-band path (more than BAND output rows) against the direct filter too.
        let (w, h) = (23, 2 * BAND + 17);
        let (da, db) = (pattern(w, h, 5), pattern(w, h, 9));
        let (ya, yb) = (y_channel(&img(&da, w, h)), y_channel(&img(&db, w, h)));
        let direct = ssim_direct(&ya, &yb, w, h);
        let ours = ssim_y(&img(&da, w, h), &img(&db, w, h), 0).unwrap();
        assert!((ours - direct).abs() < 1e-12, "{ours} vs {direct}");
    }

    #[test]
    fn psnr_matches_plain_mse() {
        let (w, h) = (31, 3 * BAND + 5);
        let (da, db) = (pattern(w, h, 2), pattern(w, h, 4));
        let (ya, yb) = (y_channel(&img(&da, w, h)), y_channel(&img(&db, w, h)));
        let mse: f64 = ya
            .iter()
            .zip(&yb)
            .map(|(p, q)| (p - q) * (p - q))
            .sum::<f64>()
            / (w * h) as f64;
        let ours = psnr_y(&img(&da, w, h), &img(&db, w, h), 0).unwrap();
        assert!((ours - 10.0 * (65025.0 / mse).log10()).abs() < 1e-10);
    }

    fn is_invalid(r: Result<f64>, needle: &str) {
        match r {
            Err(Error::InvalidArgument(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected InvalidArgument({needle}), got {other:?}"),
        }
    }

    #[test]
    fn errors() {
        let d = pattern(20, 16, 1);
        let e = pattern(16, 20, 1);
        let (a, b) = (img(&d, 20, 16), img(&e, 16, 20));
        is_invalid(psnr_y(&a, &b, 0), "must match");
        is_invalid(ssim_y(&a, &b, 0), "must match");
        // Data length ≠ w·h·3.
        let short = img(&d[..d.len() - 1], 20, 16);
        is_invalid(psnr_y(&short, &a, 0), "expected 960");
        is_invalid(ssim_y(&a, &short, 0), "hr image");
        // Overflowing sizes do not panic.
        let huge = img(&d, usize::MAX, 2);
        is_invalid(psnr_y(&huge, &huge, 0), "overflows");
        // Crop leaving nothing (PSNR) or less than 11×11 (SSIM).
        is_invalid(psnr_y(&a, &a, 8), "leaves 4x0");
        is_invalid(psnr_y(&a, &a, usize::MAX), "leaves 0x0");
        assert!(psnr_y(&a, &a, 7).is_ok());
        is_invalid(ssim_y(&a, &a, 3), "at least 11x11");
        assert!(ssim_y(&a, &a, 2).is_ok());
        let z = img(&[], 0, 0);
        is_invalid(psnr_y(&z, &z, 0), "leaves 0x0");
        is_invalid(ssim_y(&z, &z, 0), "leaves 0x0");
        let d16 = [0u16; 30];
        let t = Rgb16 {
            data: &d16,
            width: 5,
            height: 2,
        };
        is_invalid(ssim_y16(&t, &t, 0), "at least 11x11");
        is_invalid(psnr_y16(&t, &t, 1), "leaves 3x0");
    }
}
