//! `f2idiff upscale INPUT -o OUTPUT`: one image, or every image of a folder into a folder.
//! In folder mode a failing image is reported and skipped; the exit code says whether any failed.

use f2idiff::backend::Backend;
use f2idiff::backend::cuda::Precision;
use f2idiff::device::{self, Device, DeviceOptions, Opened};
use f2idiff::engine::Networks;
use f2idiff::pack::{LoraMode, Pack};
use f2idiff::pipeline::{ColorFix, F32Fallback, Rect, UpscaleOptions, upscale_checked};
use f2idiff::{Error, Result, imageio};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The model used when `-m` is not given: the demo model trained by `calib/train/`
/// (`docs/demo-model.md`), looked up in the working directory, then in this source tree.
pub const DEFAULT_MODEL: &str = "models/f2idiff-demo.f2i";

/// Where the default model is: `./models/…`, else the checkout this binary was built from.
fn default_model() -> Result<PathBuf> {
    let candidates = [
        PathBuf::from(DEFAULT_MODEL),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no model given and the demo model {DEFAULT_MODEL} is not here or in the source \
                 tree: pass -m MODEL.f2i"
            ))
        })
}

#[derive(clap::Args)]
pub struct Args {
    /// An image (PNG, JPEG, TIFF, WebP) or a folder of them.
    input: PathBuf,
    /// Output image, or folder when INPUT is a folder.
    #[arg(short, long)]
    output: PathBuf,
    /// Packed model (`f2idiff pack`); default: the demo model, models/f2idiff-demo.f2i.
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Upscaling factor; must be the model's.
    #[arg(short, long)]
    scale: Option<u32>,
    /// Output tile side in pixels (multiple of 8 and of the scale); 0 = whole image; default:
    /// the model's tile (its `f2idiff.json` `tile`), else the largest tile whose activations
    /// fit in 2 GiB.
    #[arg(long)]
    tile: Option<usize>,
    /// Overlap between tiles, output pixels (a multiple of the scale; default 16 × scale).
    #[arg(long)]
    overlap: Option<usize>,
    /// Colour correction against the bicubic upscale.
    #[arg(long, default_value = "wavelet", value_parser = ["wavelet", "adain", "none"])]
    color_fix: String,
    /// Upscale only this rectangle of the input: x,y,width,height (input pixels).
    #[arg(long, value_parser = parse_roi)]
    roi: Option<Rect>,
    /// auto (a CUDA GPU when a usable one exists, else the CPU), cpu, cuda[:N], or cuda-sim
    /// (builds with the `cuda-sim` feature: the CUDA kernels run on the CPU harness, slowly).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Storage precision on CUDA (the CPU always computes in f32).
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32"])]
    precision: String,
    /// CUDA kernels: tensor-core (default; f16 only, where one exists) or simple (the part-1
    /// kernels everywhere: the fallback and second opinion).
    #[arg(long, default_value = "tensor-core", value_parser = ["tensor-core", "simple"])]
    cuda_kernels: String,
    /// Precompiled CUDA kernels (`f2idiff kernels build -o DIR`); default: compiled with NVRTC
    /// at first use and cached.
    #[arg(long)]
    kernels: Option<PathBuf>,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Strength of runtime LoRA (packs made with `f2idiff pack --lora runtime`): 0 = the base
    /// model, 1 = as trained. A pack with merged LoRA accepts only 1.
    #[arg(long, default_value_t = 1.0)]
    lora_scale: f32,
    /// What DINOv2 conditions each tile on: tile (its own LR pixels) or image (the whole
    /// input's, once); default: the model's (`f2idiff.json` `dino_context`, else tile).
    #[arg(long, value_parser = ["tile", "image"])]
    dino_context: Option<String>,
    /// Self-ensemble: upscale this many mirrored copies of the input and average them: 1 (none),
    /// 2 (also the left-right mirror) or 4 (also the up-down mirror and both); each copy costs
    /// one more upscale. Default: the model's (`f2idiff.json` `ensemble`, else 1).
    #[arg(long, value_parser = parse_ensemble)]
    ensemble: Option<usize>,
}

fn parse_ensemble(s: &str) -> std::result::Result<usize, String> {
    let n = s.parse::<usize>().map_err(|e| format!("`{s}`: {e}"))?;
    f2idiff::pipeline::ensemble::check(n).map_err(|e| e.to_string())
}

fn parse_roi(s: &str) -> std::result::Result<Rect, String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|e| format!("`{p}`: {e}")))
        .collect::<std::result::Result<_, _>>()?;
    match v[..] {
        [x, y, width, height] => Ok(Rect {
            x,
            y,
            width,
            height,
        }),
        _ => Err("expected x,y,width,height".into()),
    }
}

pub fn run(args: &Args) -> ExitCode {
    match run_all(args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Returns the number of images that failed (folder mode).
fn run_all(args: &Args) -> Result<usize> {
    let device: Device = args.device.parse()?;
    let opts = DeviceOptions {
        threads: args.threads,
        precision: args.precision.parse().unwrap_or(Precision::F16),
        kernel_dir: args.kernels.clone(),
        kernels: args.cuda_kernels.parse().unwrap_or_default(),
    };
    let model = match &args.model {
        Some(m) => m.clone(),
        None => default_model()?,
    };
    let pack = Arc::new(Pack::open(&model)?);
    let (opened, why_not_gpu) = device::open(device, &opts)?;
    let used = match why_not_gpu {
        Some(why) => format!("{} (auto: no usable GPU: {why})", opened.describe()),
        None => opened.describe(),
    };
    // f16 storage: tiles that overflow run again in f32 on the same device.
    let twin = opened.f32_twin(&opts)?;
    let failed = match (&opened, twin) {
        #[cfg(feature = "cuda")]
        (Opened::Cuda(b), Some(Opened::Cuda(t))) => {
            run_on(b, Some(&F32Fallback::new(t, pack.clone())), pack, args)?
        }
        #[cfg(feature = "cuda-sim")]
        (Opened::CudaSim(b), Some(Opened::CudaSim(t))) => {
            run_on(b, Some(&F32Fallback::new(t, pack.clone())), pack, args)?
        }
        (Opened::Cpu(b), _) => run_on(b, None, pack, args)?,
        #[cfg(feature = "cuda")]
        (Opened::Cuda(b), _) => run_on(b, None, pack, args)?,
        #[cfg(feature = "cuda-sim")]
        (Opened::CudaSim(b), _) => run_on(b, None, pack, args)?,
    };
    eprintln!("device: {used}");
    Ok(failed)
}

/// Upscales every input on `backend`; returns the number of images that failed.
fn run_on<B: Backend>(
    backend: &B,
    fallback: Option<&F32Fallback<B>>,
    pack: Arc<Pack>,
    args: &Args,
) -> Result<usize> {
    let model_scale = pack.configs().pipeline.scale;
    if let Some(s) = args.scale
        && s != model_scale
    {
        return Err(Error::InvalidArgument(format!(
            "scale {s}: this model upscales ×{model_scale}"
        )));
    }
    if !args.lora_scale.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "--lora-scale {}: must be finite",
            args.lora_scale
        )));
    }
    if args.lora_scale != 1.0 && pack.header().lora.mode != LoraMode::Runtime {
        return Err(Error::InvalidArgument(format!(
            "--lora-scale {}: this pack has its LoRA merged (repack with --lora runtime to \
             choose the strength)",
            args.lora_scale
        )));
    }
    let nets = Networks::load(backend, pack, args.lora_scale)?;
    let opts = UpscaleOptions {
        tile: args.tile,
        overlap: args.overlap.unwrap_or(16 * model_scale as usize),
        color_fix: ColorFix::from_name(&args.color_fix).unwrap_or_default(),
        roi: args.roi,
        lora_scale: args.lora_scale,
        dino_context: args.dino_context.as_deref().map(str::parse).transpose()?,
        ensemble: args.ensemble,
        ..UpscaleOptions::default()
    };

    if !args.input.is_dir() {
        let out = if args.output.is_dir() {
            args.output.join(file_name(&args.input)?)
        } else {
            args.output.clone()
        };
        imageio::check_output(&out)?;
        one(&nets, backend, fallback, &opts, &args.input, &out)?;
        return Ok(0);
    }
    if args.output.exists() && !args.output.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{}: INPUT is a folder, so OUTPUT must be one",
            args.output.display()
        )));
    }
    std::fs::create_dir_all(&args.output).map_err(|e| Error::Io {
        path: args.output.clone(),
        source: e,
    })?;
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&args.input)
        .map_err(|e| Error::Io {
            path: args.input.clone(),
            source: e,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && imageio::is_image_path(p))
        .collect();
    inputs.sort();
    let mut failed = 0;
    for input in &inputs {
        let result = file_name(input).and_then(|name| {
            one(
                &nets,
                backend,
                fallback,
                &opts,
                input,
                &args.output.join(name),
            )
        });
        if let Err(e) = result {
            eprintln!("error: {e}");
            failed += 1;
        }
    }
    eprintln!(
        "{} of {} images upscaled into {}",
        inputs.len() - failed,
        inputs.len(),
        args.output.display()
    );
    Ok(failed)
}

fn file_name(path: &Path) -> Result<PathBuf> {
    path.file_name()
        .map(PathBuf::from)
        .ok_or_else(|| Error::InvalidArgument(format!("{} has no file name", path.display())))
}

fn one<B: Backend>(
    nets: &Networks<B>,
    backend: &B,
    fallback: Option<&F32Fallback<B>>,
    opts: &UpscaleOptions,
    input: &Path,
    output: &Path,
) -> Result<()> {
    let picture = imageio::load(input)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tiles, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(input.display().to_string());
    let out = upscale_checked(
        nets,
        backend,
        fallback,
        &picture.data,
        picture.height,
        picture.width,
        opts,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            true
        },
    );
    bar.finish_and_clear();
    let out = out.map_err(|e| match e {
        Error::InvalidArgument(msg) => {
            Error::InvalidArgument(format!("{}: {msg}", input.display()))
        }
        other => other,
    })?;
    if out.f32_reruns > 0 {
        eprintln!(
            "{}: f16 overflow in {} of {} tiles: rerun in f32",
            input.display(),
            out.f32_reruns,
            out.tiles
        );
    }
    imageio::save(
        output,
        &out.data,
        out.width,
        out.height,
        picture.sixteen_bit,
    )
}
