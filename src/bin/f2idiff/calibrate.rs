//! `f2idiff calibrate -m MODEL.f2i IMAGES… -o OUT.f2i`: f16 pre-scales from f32 ranges on the
//! CPU (see the library's `calibrate`), written into a copy of the pack.

use f2idiff::backend::cpu::CpuBackend;
use f2idiff::calibrate::{Sample, prescales, ranges, write_prescaled};
use f2idiff::engine::Networks;
use f2idiff::pack::Pack;
use f2idiff::{Error, Result, imageio};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// The pack to calibrate.
    #[arg(short, long)]
    model: PathBuf,
    /// Calibration photos (files or folders of images): bright, high-contrast ones.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// The calibrated pack (a new file; the input pack is left as it is).
    #[arg(short, long)]
    output: PathBuf,
    /// Headroom below f16's maximum, as a power of two: layers whose f32 range exceeds
    /// 65504 / 2^H are pre-scaled.
    #[arg(long, default_value_t = 3)]
    headroom_log2: u32,
    /// Side of the centre crop of each photo that runs through the model (LR pixels).
    #[arg(long, default_value_t = 128)]
    side: usize,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Image files among `paths` (folders expanded one level, sorted).
fn image_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if !p.is_dir() {
            files.push(p.clone());
            continue;
        }
        let entries = std::fs::read_dir(p).map_err(|e| Error::Io {
            path: p.clone(),
            source: e,
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| imageio::is_image_path(f))
            .collect();
        found.sort();
        files.extend(found);
    }
    if files.is_empty() {
        return Err(Error::InvalidArgument("no calibration images found".into()));
    }
    Ok(files)
}

fn sample(path: &Path, side: usize) -> Result<Sample> {
    let p = imageio::load(path)?;
    Ok(Sample::centre(&p.data, p.width, p.height, side))
}

pub fn run(args: &Args) -> Result<()> {
    if args.side < 8 {
        return Err(Error::InvalidArgument(format!(
            "--side {}: at least 8 pixels",
            args.side
        )));
    }
    let pack = Arc::new(Pack::open(&args.model)?);
    let backend = CpuBackend::new(args.threads)?;
    let nets = Networks::load_with(&backend, pack.clone(), 1.0, false)?;
    let files = image_files(&args.images)?;
    let samples = files
        .iter()
        .map(|f| sample(f, args.side))
        .collect::<Result<Vec<_>>>()?;
    let ranges = ranges(&nets, &backend, &samples)?;
    let scales = prescales(&ranges, args.headroom_log2);
    let peak = ranges.values().fold(0.0f32, |m, r| m.max(*r));
    println!(
        "{} convolutions over {} images: largest |output| {peak:.4e}",
        ranges.len(),
        files.len()
    );
    for (name, k) in &scales {
        println!("  {name}: range {:.4e} → × 2^-{k}", ranges[name]);
    }
    let bytes = write_prescaled(&pack, scales.clone(), &args.output)?;
    println!(
        "wrote {}: {} f16 pre-scales, {bytes} bytes",
        args.output.display(),
        scales.len()
    );
    Ok(())
}
