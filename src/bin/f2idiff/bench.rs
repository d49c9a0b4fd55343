//! `f2idiff bench`: the networks at full size with seeded random weights (no weights file) on
//! this machine's CPU or GPU — median time of several runs after a warm-up, GFLOP/s from the
//! counted FLOPs (2 × the MACs of every conv, linear and attention product), the planned arena
//! per stage — and `--stage peak`, the tensor-core `mma.sync` peak (`kernels/peak.cu`) each
//! kernel's rate is a share of. Library side: `f2idiff::bench`.

#[cfg(feature = "cuda")]
use f2idiff::backend::Backend;
#[cfg(any(feature = "cuda", feature = "cuda-sim"))]
use f2idiff::backend::cuda::Kernels;
use f2idiff::backend::cuda::Precision;
use f2idiff::bench::{self, HEADER, Preset, Report, RunOptions, Spec, Stage};
use f2idiff::device::{self, Device, DeviceOptions, Opened};
use f2idiff::tensor::DType;
use f2idiff::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// vae-enc, vae-dec, unet, dino, tile or peak (comma separated or repeated); default: the
    /// four networks and the whole tile.
    #[arg(long, value_delimiter = ',')]
    stage: Vec<String>,
    /// sd-vae, eff-unet, sd21-unet, dinov2-s, dinov2-l (comma separated or repeated; one per
    /// network). Default: sd-vae, eff-unet, dinov2-l.
    #[arg(long, value_delimiter = ',')]
    preset: Vec<String>,
    /// Output tile side (vae-enc, vae-dec, unet, tile; default 512) or DINOv2's input side
    /// (dino; default 224).
    #[arg(long)]
    size: Option<usize>,
    /// auto, cpu, cuda[:N] or cuda-sim (builds with the `cuda-sim` feature; slow, tiny sizes).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Storage precision on CUDA (the CPU always computes in f32).
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32"])]
    precision: String,
    /// CUDA kernels: tensor-core (default; f16 only, where one exists) or simple (the part-1
    /// kernels everywhere).
    #[arg(long, default_value = "tensor-core", value_parser = ["tensor-core", "simple"])]
    cuda_kernels: String,
    /// Element type the random weights are stored in, as in a pack of that type: the CPU keeps
    /// f16 / bf16 matrices in half precision and widens them per use; CUDA converts them to
    /// `--precision`.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16", "bf16"])]
    weights: String,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Timed runs per stage (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Untimed runs first (weight upload, kernel loading, caches).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Seed of the random weights and inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Precompiled CUDA kernels (`f2idiff kernels build -o DIR`).
    #[arg(long)]
    kernels: Option<PathBuf>,
    /// One JSON object per line instead of the table.
    #[arg(long)]
    json: bool,
    /// After the timed runs, one more run timed op by op: a table per stage of where the time
    /// goes (convolutions, linear maps and attention by shape; each op between two
    /// synchronisations, so on a GPU the sum exceeds a plain run's time).
    #[arg(long)]
    profile: bool,
}

/// A requested stage: a network stage, or the tensor-core peak.
#[derive(Clone, Copy, PartialEq)]
enum Want {
    Stage(Stage),
    Peak,
}

pub fn run(args: &Args) -> Result<()> {
    let wants: Vec<Want> = if args.stage.is_empty() {
        Stage::ALL.into_iter().map(Want::Stage).collect()
    } else {
        args.stage
            .iter()
            .map(|s| match s.trim() {
                "peak" => Ok(Want::Peak),
                s => s.parse().map(Want::Stage),
            })
            .collect::<Result<_>>()?
    };
    let presets: Vec<Preset> = args
        .preset
        .iter()
        .map(|p| p.trim().parse())
        .collect::<Result<_>>()?;
    // Validate every spec before opening a device or generating weights.
    let specs: Vec<Option<Spec>> = wants
        .iter()
        .map(|w| match *w {
            Want::Stage(s) => Spec::new(s, &presets, args.size).map(Some),
            Want::Peak => Ok(None),
        })
        .collect::<Result<_>>()?;
    let opts = DeviceOptions {
        threads: args.threads,
        precision: args.precision.parse().unwrap_or(Precision::F16),
        kernel_dir: args.kernels.clone(),
        kernels: args.cuda_kernels.parse().unwrap_or_default(),
    };
    let device: Device = args.device.parse()?;
    if device == Device::Cpu && wants.contains(&Want::Peak) {
        return Err(Error::Unsupported(PEAK_ON_CPU.into()));
    }
    let (opened, why_not_gpu) = device::open(device, &opts)?;
    if let Some(why) = why_not_gpu {
        eprintln!("bench: no usable GPU ({why}); on the CPU");
    }
    let o = RunOptions {
        runs: args.runs,
        warmup: args.warmup,
        seed: args.seed,
        weights: match args.weights.as_str() {
            "f16" => DType::F16,
            "bf16" => DType::BF16,
            _ => DType::F32,
        },
        profile: args.profile,
    };
    if !args.json {
        match kernels_used(&opened) {
            None => println!("device: {}", opened.describe()),
            Some(k) => println!("device: {}, {k} kernels", opened.describe()),
        }
        println!(
            "FLOPs = 2 × MACs of every conv, linear and attention product (counted from the \
             presets' op shapes); median of {} runs after {} warm-up; random weights, seed {}, \
             stored {}",
            o.runs.max(1),
            o.warmup.max(1),
            o.seed,
            o.weights.name()
        );
    }
    let mut printed_header = false;
    let mut reports = Vec::new();
    let mut peak_tflops = None;
    for spec in specs {
        match spec {
            None => {
                let (line, tflops) = peak(&opened, o.runs)?;
                peak_tflops = tflops;
                println!("{line}");
            }
            Some(spec) => {
                let r = match &opened {
                    Opened::Cpu(b) => bench::run(b, 4, &spec, &o)?,
                    #[cfg(feature = "cuda")]
                    Opened::Cuda(b) => bench::run(b, b.precision().bytes(), &spec, &o)?,
                    #[cfg(feature = "cuda-sim")]
                    Opened::CudaSim(b) => bench::run(b, b.precision().bytes(), &spec, &o)?,
                };
                if args.json {
                    let mut j = r.json();
                    if let Some(k) = kernels_used(&opened) {
                        j["cuda_kernels"] = k.into();
                    }
                    println!("{j}");
                } else {
                    if !printed_header {
                        println!("{HEADER}");
                        printed_header = true;
                    }
                    println!("{}", r.row());
                    if args.profile {
                        print_ops(&r);
                        printed_header = false;
                    }
                }
                reports.push(r);
            }
        }
    }
    if let (Some(peak), false) = (peak_tflops, args.json) {
        for r in &reports {
            println!(
                "{:<8} {:.1} TFLOP/s = {:.1}% of the measured mma.sync peak",
                r.spec.stage.name(),
                r.gflops_per_s() / 1e3,
                100.0 * r.gflops_per_s() / 1e3 / peak
            );
        }
    }
    if reports.iter().any(|r: &Report| !r.finite) {
        eprintln!("bench: some outputs were not finite (see the rows marked)");
    }
    Ok(())
}

/// The op-by-op table of a profiled run.
fn print_ops(r: &Report) {
    let total: f64 = r.ops.iter().map(|(_, t)| t.seconds).sum();
    println!(
        "  {} op time, one profiled run: {:.1} ms",
        r.spec.stage.name(),
        total * 1e3
    );
    println!("  {:>9} {:>6} {:>6}  op", "ms", "%", "calls");
    for (label, t) in &r.ops {
        println!(
            "  {:>9.2} {:>6.1} {:>6}  {label}",
            t.seconds * 1e3,
            100.0 * t.seconds / total.max(f64::MIN_POSITIVE),
            t.calls
        );
    }
}

/// The CUDA kernel family the opened backend uses (what ran, not what was asked for).
fn kernels_used(opened: &Opened) -> Option<&'static str> {
    #[cfg(any(feature = "cuda", feature = "cuda-sim"))]
    let name = |k: Kernels| match k {
        Kernels::TensorCore => "tensor-core",
        Kernels::Simple => "simple",
    };
    match opened {
        Opened::Cpu(_) => None,
        #[cfg(feature = "cuda")]
        Opened::Cuda(b) => Some(name(b.kernels())),
        #[cfg(feature = "cuda-sim")]
        Opened::CudaSim(b) => Some(name(b.kernels())),
    }
}

const PEAK_ON_CPU: &str = "--stage peak measures the GPU's tensor cores: use --device cuda (or \
                           cuda-sim to check the kernel)";

/// Runs the peak probe; returns the line to print and the TFLOP/s (none on the harness, whose
/// time means nothing).
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
fn peak(opened: &Opened, runs: usize) -> Result<(String, Option<f64>)> {
    match opened {
        Opened::Cpu(_) => Err(Error::Unsupported(PEAK_ON_CPU.into())),
        #[cfg(feature = "cuda")]
        Opened::Cuda(b) => {
            let sms = b.executor().info().multiprocessors.max(1) as u32;
            let l = bench::peak::PeakLaunch {
                blocks: 8 * sms,
                threads: 128,
                iters: 32768,
            };
            let r = bench::peak::measure(b.executor(), &l, runs)?;
            let line = serde_json::json!({
                "engine": "f2idiff", "stage": "peak", "device": b.name(),
                "median_ms": r.median_ms, "tflop_per_s": r.tflops, "gflop": l.flops() as f64 / 1e9,
                "blocks": l.blocks, "threads": l.threads, "iters": l.iters,
            });
            Ok((
                format!(
                    "peak     mma.sync m16n8k16 f16→f32, {} blocks × {} threads × {} iters × {} \
                     chains: {:.2} ms, {:.1} TFLOP/s (sum checked)\n{line}",
                    l.blocks,
                    l.threads,
                    l.iters,
                    bench::peak::CHAINS,
                    r.median_ms,
                    r.tflops
                ),
                Some(r.tflops),
            ))
        }
        #[cfg(feature = "cuda-sim")]
        Opened::CudaSim(b) => {
            let l = bench::peak::PeakLaunch {
                blocks: 2,
                threads: 64,
                iters: 3,
            };
            let r = bench::peak::measure(b.executor(), &l, 1)?;
            Ok((
                format!(
                    "peak     on the CPU harness: {} threads wrote the expected sum {} \
                     (checks the kernel; its time, {:.1} ms, means nothing)",
                    l.blocks * l.threads,
                    l.expected(),
                    r.median_ms
                ),
                None,
            ))
        }
    }
}
