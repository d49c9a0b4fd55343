//! Image files in and out (PNG, JPEG, TIFF, WebP through the `image` crate): decoded to planar
//! f32 RGB in [0, 1], remembering whether the source had 16 bits per channel so the output can
//! keep them. Writing goes to a temporary name and is renamed into place, so a failure never
//! leaves a partial file.

use crate::error::{Error, Result};
use crate::pipeline::image::{planar_to_rgb8, planar_to_rgb16, rgb8_to_planar, rgb16_to_planar};
use image::{DynamicImage, ImageFormat};
use std::path::{Path, PathBuf};

/// A decoded image: planar `[3, height, width]` in [0, 1].
pub struct Picture {
    pub data: Vec<f32>,
    pub width: usize,
    pub height: usize,
    /// 16 bits per channel in the source (PNG / TIFF).
    pub sixteen_bit: bool,
}

/// The file extensions [`load`] and [`save`] understand.
pub const EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "tif", "tiff", "webp"];

fn format_of(path: &Path) -> Result<ImageFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => Ok(ImageFormat::Png),
        Some("jpg" | "jpeg") => Ok(ImageFormat::Jpeg),
        Some("tif" | "tiff") => Ok(ImageFormat::Tiff),
        Some("webp") => Ok(ImageFormat::WebP),
        _ => Err(Error::InvalidArgument(format!(
            "{}: unknown image type (use one of {})",
            path.display(),
            EXTENSIONS.join(", ")
        ))),
    }
}

/// True for paths with an image extension (for directory mode).
pub fn is_image_path(path: &Path) -> bool {
    format_of(path).is_ok()
}

/// Largest side, in pixels, of an image [`load`] decodes (the C API's `F2I_MAX_INPUT_SIDE`).
pub const MAX_IMAGE_SIDE: u32 = 65536;
/// Most pixels of an image [`load`] decodes: 2²⁸ (16384 × 16384, 268 MP), 3 GiB as planar f32.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 28;

/// What a decode may cost: checked from the file's header before any pixel is decoded, and
/// given to the decoders as their allocation limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_side: u32,
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    /// The CLI's: [`MAX_IMAGE_SIDE`], [`MAX_IMAGE_PIXELS`].
    fn default() -> Self {
        DecodeLimits {
            max_side: MAX_IMAGE_SIDE,
            max_pixels: MAX_IMAGE_PIXELS,
        }
    }
}

pub fn load(path: &Path) -> Result<Picture> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes, path, &DecodeLimits::default())
}

/// Decodes an image file's bytes (type from the content; `path` only names it in messages)
/// within `limits`. What [`load`] does after reading the file.
///
/// A panic inside a third-party decoder on a malformed file (the fuzzers found one in the TIFF
/// decoder: `tests/fuzz_regressions.rs`) is an `Error::Image` too, not the end of the process.
pub fn decode(bytes: &[u8], path: &Path, limits: &DecodeLimits) -> Result<Picture> {
    std::panic::catch_unwind(|| decode_unguarded(bytes, path, limits)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::Image {
            path: path.to_path_buf(),
            msg: format!("the decoder failed on a malformed file ({what})"),
        })
    })
}

fn decode_unguarded(bytes: &[u8], path: &Path, limits: &DecodeLimits) -> Result<Picture> {
    let bad = |msg: String| Error::Image {
        path: path.to_path_buf(),
        msg,
    };
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| bad(e.to_string()))
    };
    let (w, h) = reader()?
        .into_dimensions()
        .map_err(|e| bad(e.to_string()))?;
    if w == 0 || h == 0 {
        return Err(bad("image has no pixels".into()));
    }
    if w > limits.max_side || h > limits.max_side || w as u64 * h as u64 > limits.max_pixels {
        return Err(bad(format!(
            "{w}x{h} pixels: larger than this program decodes (at most {} per side, {} in all)",
            limits.max_side, limits.max_pixels
        )));
    }
    let mut decode_limits = image::Limits::default();
    decode_limits.max_image_width = Some(limits.max_side);
    decode_limits.max_image_height = Some(limits.max_side);
    // The widest buffer a decoder makes: RGBA, 16 bits per channel (f32 formats are converted
    // by way of it), plus room for a decoder's own scratch.
    decode_limits.max_alloc = Some(limits.max_pixels.saturating_mul(16).max(1 << 20));
    let mut r = reader()?;
    r.limits(decode_limits);
    let img = r.decode().map_err(|e| bad(e.to_string()))?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    if (width, height) != (w as usize, h as usize) {
        return Err(bad(format!(
            "decoded {width}x{height} pixels, the header said {w}x{h}"
        )));
    }
    let sixteen_bit = matches!(
        img,
        DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgba16(_)
    );
    let data = if sixteen_bit {
        rgb16_to_planar(img.to_rgb16().as_raw(), width, height)
    } else {
        rgb8_to_planar(img.to_rgb8().as_raw(), width, height)
    };
    Ok(Picture {
        data,
        width,
        height,
        sixteen_bit,
    })
}

/// Checks, before any work, that `path` can be written as an image (known type, existing
/// directory).
pub fn check_output(path: &Path) -> Result<()> {
    format_of(path)?;
    let dir = parent(path);
    if !dir.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "output directory does not exist",
            ),
        ));
    }
    Ok(())
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes planar `[3, h, w]` in [0, 1] to `path`, 16-bit when asked and the format allows.
pub fn save(
    path: &Path,
    data: &[f32],
    width: usize,
    height: usize,
    sixteen_bit: bool,
) -> Result<()> {
    let format = format_of(path)?;
    let (w, h) = (width as u32, height as u32);
    let wide = sixteen_bit && matches!(format, ImageFormat::Png | ImageFormat::Tiff);
    let img = if wide {
        DynamicImage::ImageRgb16(
            image::ImageBuffer::from_raw(w, h, planar_to_rgb16(data, width, height))
                .ok_or_else(|| size_error(path))?,
        )
    } else {
        DynamicImage::ImageRgb8(
            image::ImageBuffer::from_raw(w, h, planar_to_rgb8(data, width, height))
                .ok_or_else(|| size_error(path))?,
        )
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{} is not a file path", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = img
        .save_with_format(&tmp, format)
        .map_err(|e| Error::Image {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn size_error(path: &Path) -> Error {
    Error::InvalidArgument(format!(
        "{}: pixel buffer does not match the image size",
        path.display()
    ))
}
