//! Pixel formats ↔ planar f32 `[3, H, W]` in [0, 1] (the pipeline's input and output), on
//! checked, caller-owned planes. 8- and 16-bit RGB use exactly the CLI's conversions
//! (`x / max` in, [`quantize`] out), so the C interface and `f2idiff upscale` agree bit for bit.

use super::types::f2i_pixel_format::*;
use crate::pipeline::image::quantize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb8,
    Rgba8,
    Bgr8,
    Bgra8,
    Rgb16,
    Nv12(YCbCr),
}

/// The Y'CbCr matrix and range of an NV12 image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YCbCr {
    Bt709Limited,
    Bt601Full,
}

impl PixelFormat {
    pub fn from_raw(v: u32) -> Option<PixelFormat> {
        Some(match v {
            x if x == F2I_PIXEL_RGB8 as u32 => PixelFormat::Rgb8,
            x if x == F2I_PIXEL_RGBA8 as u32 => PixelFormat::Rgba8,
            x if x == F2I_PIXEL_BGR8 as u32 => PixelFormat::Bgr8,
            x if x == F2I_PIXEL_BGRA8 as u32 => PixelFormat::Bgra8,
            x if x == F2I_PIXEL_RGB16 as u32 => PixelFormat::Rgb16,
            x if x == F2I_PIXEL_NV12 as u32 => PixelFormat::Nv12(YCbCr::Bt709Limited),
            x if x == F2I_PIXEL_NV12_BT601_FULL as u32 => PixelFormat::Nv12(YCbCr::Bt601Full),
            _ => return None,
        })
    }

    /// The C enum value (`f2i_pixel_format`).
    #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
    pub fn code(self) -> u32 {
        (match self {
            PixelFormat::Rgb8 => F2I_PIXEL_RGB8,
            PixelFormat::Rgba8 => F2I_PIXEL_RGBA8,
            PixelFormat::Bgr8 => F2I_PIXEL_BGR8,
            PixelFormat::Bgra8 => F2I_PIXEL_BGRA8,
            PixelFormat::Rgb16 => F2I_PIXEL_RGB16,
            PixelFormat::Nv12(YCbCr::Bt709Limited) => F2I_PIXEL_NV12,
            PixelFormat::Nv12(YCbCr::Bt601Full) => F2I_PIXEL_NV12_BT601_FULL,
        }) as u32
    }

    /// Bytes per pixel of a row (NV12: of the Y plane).
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => 3,
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => 4,
            PixelFormat::Rgb16 => 6,
            PixelFormat::Nv12(_) => 1,
        }
    }

    pub fn has_alpha(self) -> bool {
        matches!(self, PixelFormat::Rgba8 | PixelFormat::Bgra8)
    }

    /// Byte offsets of R, G, B (and alpha) in an 8-bit pixel.
    fn order8(self) -> ([usize; 3], Option<usize>) {
        match self {
            PixelFormat::Bgr8 => ([2, 1, 0], None),
            PixelFormat::Bgra8 => ([2, 1, 0], Some(3)),
            PixelFormat::Rgba8 => ([0, 1, 2], Some(3)),
            _ => ([0, 1, 2], None),
        }
    }
}

/// Rows of one image plane: `rows` rows of `row_bytes` bytes, `stride` apart.
pub struct Plane<T> {
    pub data: T,
    pub stride: usize,
    pub row_bytes: usize,
}

impl<T: AsRef<[u8]>> Plane<T> {
    fn row(&self, y: usize) -> &[u8] {
        &self.data.as_ref()[y * self.stride..][..self.row_bytes]
    }
}

impl<T: AsMut<[u8]>> Plane<T> {
    fn row_mut(&mut self, y: usize) -> &mut [u8] {
        &mut self.data.as_mut()[y * self.stride..][..self.row_bytes]
    }
}

/// An image's planes (`uv` for NV12 only).
pub struct Pixels<T> {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub main: Plane<T>,
    pub uv: Option<Plane<T>>,
}

/// Kr, Kb and the (offset, range) of luma and chroma codes.
struct Matrix {
    kr: f32,
    kb: f32,
    y_off: f32,
    y_range: f32,
    c_range: f32,
}

impl YCbCr {
    fn matrix(self) -> Matrix {
        match self {
            YCbCr::Bt709Limited => Matrix {
                kr: 0.2126,
                kb: 0.0722,
                y_off: 16.0,
                y_range: 219.0,
                c_range: 224.0,
            },
            YCbCr::Bt601Full => Matrix {
                kr: 0.299,
                kb: 0.114,
                y_off: 0.0,
                y_range: 255.0,
                c_range: 255.0,
            },
        }
    }
}

impl Matrix {
    fn to_rgb(&self, y: u8, cb: u8, cr: u8) -> [f32; 3] {
        let kg = 1.0 - self.kr - self.kb;
        let y = (y as f32 - self.y_off) / self.y_range;
        let pb = (cb as f32 - 128.0) / self.c_range;
        let pr = (cr as f32 - 128.0) / self.c_range;
        let r = y + 2.0 * (1.0 - self.kr) * pr;
        let b = y + 2.0 * (1.0 - self.kb) * pb;
        let g = (y - self.kr * r - self.kb * b) / kg;
        [r, g, b].map(|v| v.clamp(0.0, 1.0))
    }

    fn luma(&self, rgb: [f32; 3]) -> f32 {
        let kg = 1.0 - self.kr - self.kb;
        self.kr * rgb[0] + kg * rgb[1] + self.kb * rgb[2]
    }

    fn y_code(&self, rgb: [f32; 3]) -> u8 {
        code(self.y_off + self.y_range * self.luma(rgb))
    }

    fn cbcr_codes(&self, rgb: [f32; 3]) -> [u8; 2] {
        let y = self.luma(rgb);
        let pb = (rgb[2] - y) / (2.0 * (1.0 - self.kb));
        let pr = (rgb[0] - y) / (2.0 * (1.0 - self.kr));
        [
            code(128.0 + self.c_range * pb),
            code(128.0 + self.c_range * pr),
        ]
    }
}

fn code(v: f32) -> u8 {
    v.round_ties_even().clamp(0.0, 255.0) as u8
}

/// Reads an image into planar RGB `[3, h, w]` and, when it has one, its alpha `[h, w]`, all in
/// [0, 1]. `rgb` and `alpha` must hold `3·w·h` and `w·h` values.
pub fn read<T: AsRef<[u8]>>(img: &Pixels<T>, rgb: &mut [f32], alpha: Option<&mut [f32]>) {
    let (w, h) = (img.width, img.height);
    let hw = w * h;
    let mut alpha = alpha;
    match img.format {
        PixelFormat::Rgb16 => {
            for y in 0..h {
                let row = img.main.row(y);
                for x in 0..w {
                    for c in 0..3 {
                        let b = &row[6 * x + 2 * c..][..2];
                        let v = u16::from_ne_bytes([b[0], b[1]]);
                        rgb[c * hw + y * w + x] = v as f32 / 65535.0;
                    }
                }
            }
        }
        PixelFormat::Nv12(space) => {
            let m = space.matrix();
            let uv = img.uv.as_ref().expect("NV12 images have a UV plane");
            for y in 0..h {
                let (row, crow) = (img.main.row(y), uv.row(y / 2));
                for x in 0..w {
                    let px = m.to_rgb(row[x], crow[2 * (x / 2)], crow[2 * (x / 2) + 1]);
                    for (c, v) in px.into_iter().enumerate() {
                        rgb[c * hw + y * w + x] = v;
                    }
                }
            }
        }
        f => {
            let (order, a) = f.order8();
            let bpp = f.bytes_per_pixel();
            for y in 0..h {
                let row = img.main.row(y);
                for x in 0..w {
                    let px = &row[bpp * x..][..bpp];
                    for (c, &o) in order.iter().enumerate() {
                        rgb[c * hw + y * w + x] = px[o] as f32 / 255.0;
                    }
                    if let (Some(a), Some(dst)) = (a, alpha.as_deref_mut()) {
                        dst[y * w + x] = px[a] as f32 / 255.0;
                    }
                }
            }
        }
    }
}

/// Writes planar RGB `[3, h, w]` (and alpha `[h, w]`; opaque when `None`) in [0, 1] into an
/// image's rows, leaving row padding untouched.
pub fn write<T: AsMut<[u8]>>(img: &mut Pixels<T>, rgb: &[f32], alpha: Option<&[f32]>) {
    let (w, h) = (img.width, img.height);
    let hw = w * h;
    let px = |y: usize, x: usize| [0, 1, 2].map(|c| rgb[c * hw + y * w + x].clamp(0.0, 1.0));
    match img.format {
        PixelFormat::Rgb16 => {
            for y in 0..h {
                let row = img.main.row_mut(y);
                for x in 0..w {
                    for c in 0..3 {
                        let v = quantize(rgb[c * hw + y * w + x], 65535.0) as u16;
                        row[6 * x + 2 * c..][..2].copy_from_slice(&v.to_ne_bytes());
                    }
                }
            }
        }
        PixelFormat::Nv12(space) => {
            let m = space.matrix();
            for y in 0..h {
                let row = img.main.row_mut(y);
                for (x, v) in row[..w].iter_mut().enumerate() {
                    *v = m.y_code(px(y, x));
                }
            }
            let uv = img.uv.as_mut().expect("NV12 images have a UV plane");
            for cy in 0..h.div_ceil(2) {
                let crow = uv.row_mut(cy);
                for cx in 0..w.div_ceil(2) {
                    // The mean colour of the 2×2 block (clipped at the image's edge).
                    let (mut sum, mut n) = ([0.0f32; 3], 0.0f32);
                    for y in 2 * cy..(2 * cy + 2).min(h) {
                        for x in 2 * cx..(2 * cx + 2).min(w) {
                            let p = px(y, x);
                            (0..3).for_each(|c| sum[c] += p[c]);
                            n += 1.0;
                        }
                    }
                    let codes = m.cbcr_codes(sum.map(|s| s / n));
                    crow[2 * cx..][..2].copy_from_slice(&codes);
                }
            }
        }
        f => {
            let (order, a) = f.order8();
            let bpp = f.bytes_per_pixel();
            for y in 0..h {
                let row = img.main.row_mut(y);
                for x in 0..w {
                    let out = &mut row[bpp * x..][..bpp];
                    for (c, &o) in order.iter().enumerate() {
                        out[o] = quantize(rgb[c * hw + y * w + x], 255.0) as u8;
                    }
                    if let Some(a) = a {
                        out[a] = alpha.map_or(255, |al| quantize(al[y * w + x], 255.0) as u8);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(format: PixelFormat, w: usize, h: usize, pad: usize) -> Pixels<Vec<u8>> {
        let row_bytes = w * format.bytes_per_pixel();
        let stride = row_bytes.max(2 * w.div_ceil(2)) + pad;
        let plane = |rows: usize, row_bytes: usize| Plane {
            data: vec![0xEEu8; rows * stride],
            stride,
            row_bytes,
        };
        let uv =
            matches!(format, PixelFormat::Nv12(_)).then(|| plane(h.div_ceil(2), 2 * w.div_ceil(2)));
        Pixels {
            format,
            width: w,
            height: h,
            main: plane(h, row_bytes),
            uv,
        }
    }

    #[test]
    fn rgb_formats_round_trip_and_keep_padding() {
        let (w, h) = (5, 3);
        let rgb: Vec<f32> = (0..3 * w * h)
            .map(|i| ((i * 37) % 256) as f32 / 255.0)
            .collect();
        let alpha: Vec<f32> = (0..w * h)
            .map(|i| ((i * 11) % 256) as f32 / 255.0)
            .collect();
        for f in [
            PixelFormat::Rgb8,
            PixelFormat::Rgba8,
            PixelFormat::Bgr8,
            PixelFormat::Bgra8,
            PixelFormat::Rgb16,
        ] {
            let mut img = image(f, w, h, 3);
            write(&mut img, &rgb, f.has_alpha().then_some(&alpha[..]));
            for y in 0..h {
                let row = &img.main.data[y * img.main.stride..][..img.main.stride];
                assert!(
                    row[img.main.row_bytes..].iter().all(|&b| b == 0xEE),
                    "{f:?} padding"
                );
            }
            let (mut back, mut a) = (vec![0.0; 3 * w * h], vec![0.0; w * h]);
            read(&img, &mut back, Some(&mut a));
            assert_eq!(back, rgb, "{f:?}");
            if f.has_alpha() {
                assert_eq!(a, alpha, "{f:?}");
            }
        }
        // BGR stores blue first.
        let mut img = image(PixelFormat::Bgr8, w, h, 0);
        write(&mut img, &rgb, None);
        assert_eq!(img.main.data[0], quantize(rgb[2 * w * h], 255.0) as u8);
    }

    #[test]
    fn nv12_known_codes_and_round_trip() {
        // BT.709 limited: white = (235, 128, 128), black = (16, 128, 128), pure red = Y 63,
        // Cb 102, Cr 240 (ITU-R BT.709 table values, rounded).
        let m = YCbCr::Bt709Limited.matrix();
        assert_eq!(m.y_code([1.0; 3]), 235);
        assert_eq!(m.y_code([0.0; 3]), 16);
        assert_eq!(m.cbcr_codes([1.0; 3]), [128, 128]);
        assert_eq!(m.y_code([1.0, 0.0, 0.0]), 63);
        assert_eq!(m.cbcr_codes([1.0, 0.0, 0.0]), [102, 240]);
        // BT.601 full (JFIF): red = (76, 85, 255).
        let f = YCbCr::Bt601Full.matrix();
        assert_eq!(f.y_code([1.0, 0.0, 0.0]), 76);
        assert_eq!(f.cbcr_codes([1.0, 0.0, 0.0]), [85, 255]);
        // Odd sizes: a flat-per-block image survives NV12 within quantisation.
        for space in [YCbCr::Bt709Limited, YCbCr::Bt601Full] {
            let (w, h) = (5, 3);
            let mut rgb = vec![0.0f32; 3 * w * h];
            for c in 0..3 {
                for y in 0..h {
                    for x in 0..w {
                        rgb[c * w * h + y * w + x] =
                            0.2 + 0.1 * c as f32 + 0.15 * ((x / 2 + y / 2) % 3) as f32;
                    }
                }
            }
            let mut img = image(PixelFormat::Nv12(space), w, h, 2);
            write(&mut img, &rgb, None);
            let mut back = vec![0.0; 3 * w * h];
            read(&img, &mut back, None);
            let worst = rgb
                .iter()
                .zip(&back)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst < 0.02, "{space:?}: {worst}");
        }
    }
}
