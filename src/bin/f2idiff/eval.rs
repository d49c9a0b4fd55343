//! `f2idiff eval --sr DIR --hr DIR`: PSNR and SSIM on the Y channel (BasicSR's conventions) and
//! GMSD (piq's definition; lower is better), all on the same border-cropped pixels, per image pair
//! matched by file name, and their means.
//!
//! Output: a header, one line per image, then the means, columns separated by spaces:
//! name left-aligned in 32, PSNR-Y (dB) right-aligned in 10, SSIM-Y and GMSD right-aligned in 8,
//! all with 4 decimals (`inf` PSNR for identical images).

use f2idiff::pipeline::metrics::{Rgb8, gmsd, psnr_y, ssim_y};
use f2idiff::{Error, Result, imageio};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Folder of super-resolved images.
    #[arg(long)]
    sr: PathBuf,
    /// Folder of ground-truth images with the same file names.
    #[arg(long)]
    hr: PathBuf,
    /// Pixels cropped from each border before measuring (BasicSR: the scale).
    #[arg(long, default_value_t = 4)]
    crop_border: usize,
}

fn view(i: &image::RgbImage) -> Rgb8<'_> {
    Rgb8 {
        data: i.as_raw(),
        width: i.width() as usize,
        height: i.height() as usize,
    }
}

fn load_rgb8(path: &Path) -> Result<image::RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let img = image::load_from_memory(&bytes).map_err(|e| Error::Image {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    Ok(img.to_rgb8())
}

pub fn run(args: &Args) -> Result<()> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(&args.sr)
        .map_err(|e| Error::Io {
            path: args.sr.clone(),
            source: e,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && imageio::is_image_path(p))
        .filter_map(|p| p.file_name().map(PathBuf::from))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no images",
            args.sr.display()
        )));
    }
    let (mut psnr_sum, mut ssim_sum, mut gmsd_sum) = (0.0, 0.0, 0.0);
    println!(
        "{:<32} {:>10} {:>8} {:>8}",
        "image", "PSNR-Y", "SSIM-Y", "GMSD"
    );
    for name in &names {
        let (sr_path, hr_path) = (args.sr.join(name), args.hr.join(name));
        let (sr, hr) = (load_rgb8(&sr_path)?, load_rgb8(&hr_path)?);
        let with_name = |e: Error| match e {
            Error::InvalidArgument(m) => {
                Error::InvalidArgument(format!("{}: {m}", sr_path.display()))
            }
            other => other,
        };
        let p = psnr_y(&view(&sr), &view(&hr), args.crop_border).map_err(with_name)?;
        let s = ssim_y(&view(&sr), &view(&hr), args.crop_border).map_err(with_name)?;
        let g = gmsd(&view(&sr), &view(&hr), args.crop_border).map_err(with_name)?;
        println!("{:<32} {p:>10.4} {s:>8.4} {g:>8.4}", name.display());
        psnr_sum += p;
        ssim_sum += s;
        gmsd_sum += g;
    }
    let n = names.len() as f64;
    println!(
        "{:<32} {:>10.4} {:>8.4} {:>8.4}",
        format!("mean of {}", names.len()),
        psnr_sum / n,
        ssim_sum / n,
        gmsd_sum / n
    );
    Ok(())
}
