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

pub fn load(path: &Path) -> Result<Picture> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let img = image::load_from_memory(&bytes).map_err(|e| Error::Image {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    if width == 0 || height == 0 {
        return Err(Error::Image {
            path: path.to_path_buf(),
            msg: "image has no pixels".into(),
        });
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
