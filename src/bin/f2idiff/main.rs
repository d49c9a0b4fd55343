//! The `f2idiff` command line: `upscale` images, `eval` them against ground truth, `pack` a
//! model folder into one `.f2i` file, `info` about a pack. Failures print one line per failure on stderr and exit non-zero.

mod bench;
mod calibrate;
mod eval;
mod kernels;
mod openblas;
mod pack;
mod upscale;

use clap::{Parser, Subcommand, ValueEnum};
use f2idiff::convert::{LoraChoice, PackOptions};
use f2idiff::tensor::DType;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "f2idiff",
    version,
    about = "F2IDiff-SR one-step diffusion super-resolution"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a diffusers / transformers / PEFT model folder into one memory-mapped `.f2i` pack.
    Pack {
        /// Folder with vae/, unet/, dinov2/ (and optionally cond_proj.safetensors, unet_lora/,
        /// vae_lora/, f2idiff.json).
        model_dir: PathBuf,
        /// Output pack file.
        #[arg(short, long)]
        output: PathBuf,
        /// Storage type of the packed weights.
        #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
        dtype: DTypeArg,
        /// Fold adapters into the base weights, or keep them for a runtime LoRA scale.
        #[arg(long, value_enum, default_value_t = LoraArg::Merge)]
        lora: LoraArg,
        /// lora_alpha for adapters whose config gives none (PEFT's default: 8).
        #[arg(long)]
        lora_alpha: Option<f64>,
    },
    /// Super-resolve an image (or every image in a folder).
    Upscale(Box<upscale::Args>),
    /// PSNR and SSIM on the Y channel of SR images against HR images (BasicSR's conventions).
    Eval(eval::Args),
    /// Precompile the CUDA kernels (`kernels build`), or show the CUDA driver, NVRTC and
    /// devices found (`kernels info`).
    Kernels(kernels::Args),
    /// f16 pre-scales for a pack from f32 activation ranges over calibration photos (CPU).
    Calibrate(calibrate::Args),
    /// Time the networks at full size with random weights (median ms, GFLOP/s, arena), or the
    /// GPU's tensor-core peak (`--stage peak`).
    Bench(bench::Args),
    /// Describe a pack: configs, tensors, bytes per module and dtype, LoRA, provenance.
    Info {
        pack: PathBuf,
        /// Also check every tensor's checksum (reads the whole file).
        #[arg(long)]
        verify: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DTypeArg {
    F32,
    F16,
    Bf16,
}

#[derive(Clone, Copy, ValueEnum)]
enum LoraArg {
    Merge,
    Runtime,
}

/// A closed pipe (`f2idiff info x.f2i | head`) ends the process quietly, as it does for other
/// command-line tools, instead of panicking in `println!`: Rust ignores SIGPIPE by default.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE and `signal` has no other preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    restore_sigpipe();
    openblas::name_kernels_from_cpu_features();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pack {
            model_dir,
            output,
            dtype,
            lora,
            lora_alpha,
        } => {
            let opts = PackOptions {
                dtype: match dtype {
                    DTypeArg::F32 => DType::F32,
                    DTypeArg::F16 => DType::F16,
                    DTypeArg::Bf16 => DType::BF16,
                },
                lora: match lora {
                    LoraArg::Merge => LoraChoice::Merge,
                    LoraArg::Runtime => LoraChoice::Runtime,
                },
                lora_alpha,
            };
            pack::pack(&model_dir, &output, &opts)
        }
        Command::Info { pack, verify } => pack::info(&pack, verify),
        Command::Upscale(args) => return upscale::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Kernels(args) => kernels::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Calibrate(args) => calibrate::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
