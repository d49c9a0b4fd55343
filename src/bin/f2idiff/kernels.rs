//! `f2idiff kernels build`: precompile every kernel module × precision × architecture to CUBIN
//! (and PTX with `--ptx`) with NVRTC alone — no GPU, no driver — so a firmware image loads them
//! with no NVRTC installed (`--kernels DIR` / `F2I_KERNEL_DIR`). `f2idiff kernels info`: which
//! CUDA driver and NVRTC libraries the loader finds, their versions, and the devices.

use clap::Subcommand;
use f2idiff::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KernelsCommand,
}

#[derive(Subcommand)]
enum KernelsCommand {
    /// Compile every kernel module, f16 and f32, for each architecture, into DIR as
    /// `{module}.{f16|f32}.sm_XY.cubin` (NVRTC only; no GPU or driver needed).
    Build {
        /// Real architectures, comma separated (sm_87 = Jetson Orin, sm_90 = H100/H200).
        #[arg(long, value_delimiter = ',', required = true)]
        arch: Vec<String>,
        /// Output folder (created).
        #[arg(short, long)]
        output: PathBuf,
        /// Also write `{module}.{f16|f32}.sm_XY.ptx` (compiled for compute_XY), for ptxas.
        #[arg(long)]
        ptx: bool,
    },
    /// Which libcuda / libnvrtc were found, their versions, and the CUDA devices.
    Info {
        /// Also check a kernel folder (as `upscale --kernels DIR` would use it).
        #[arg(long)]
        kernels: Option<PathBuf>,
    },
}

#[cfg(not(feature = "cuda"))]
pub fn run(_args: &Args) -> Result<()> {
    Err(f2idiff::Error::Unsupported(
        "this f2idiff was built without the `cuda` feature".into(),
    ))
}

#[cfg(feature = "cuda")]
pub fn run(args: &Args) -> Result<()> {
    match &args.command {
        KernelsCommand::Build { arch, output, ptx } => imp::build(arch, output, *ptx),
        KernelsCommand::Info { kernels } => imp::info(kernels.as_deref()),
    }
}

#[cfg(feature = "cuda")]
mod imp {
    use f2idiff::backend::cuda::Precision;
    use f2idiff::backend::cuda::device::{
        self, SOURCE_HASH_FILE, cache, cubin_file_name, nvrtc, ptx_file_name,
    };
    use f2idiff::backend::cuda::sources::{MODULES, source_hash};
    use f2idiff::{Error, Result};
    use std::path::Path;

    const PRECISIONS: [Precision; 2] = [Precision::F16, Precision::F32];

    /// An error's message without its class prefix.
    fn msg(e: &Error) -> String {
        e.to_string()
            .trim_start_matches("unsupported: ")
            .to_string()
    }

    fn parse_arch(a: &str) -> Result<String> {
        let a = a.trim();
        let digits = a.strip_prefix("sm_").unwrap_or(a);
        if digits.len() >= 2 && digits.chars().all(|c| c.is_ascii_digit()) {
            Ok(format!("sm_{digits}"))
        } else {
            Err(Error::InvalidArgument(format!(
                "bad architecture `{a}` (expected sm_XY, e.g. sm_87 or sm_90)"
            )))
        }
    }

    fn write(path: &Path, bytes: &[u8]) -> Result<()> {
        std::fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn build(archs: &[String], out: &Path, ptx: bool) -> Result<()> {
        let archs = archs
            .iter()
            .map(|a| parse_arch(a))
            .collect::<Result<Vec<_>>>()?;
        let compiler = nvrtc::Nvrtc::load()?;
        println!(
            "NVRTC {} ({}); kernel sources {}",
            compiler.version_string(),
            compiler.path,
            &source_hash()[..16]
        );
        if let Some(supported) = compiler.supported_archs() {
            for a in &archs {
                let n: i32 = a[3..].parse().unwrap_or(0);
                if !supported.contains(&n) {
                    return Err(Error::Unsupported(format!(
                        "NVRTC {} cannot compile for {a} (it supports sm_{})",
                        compiler.version_string(),
                        supported
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(", sm_")
                    )));
                }
            }
        }
        std::fs::create_dir_all(out).map_err(|source| Error::Io {
            path: out.to_path_buf(),
            source,
        })?;
        // A folder being rewritten must not pass for the new sources until it is complete.
        let hash_file = out.join(SOURCE_HASH_FILE);
        let _ = std::fs::remove_file(&hash_file);
        let mut failures = Vec::new();
        let mut written = 0;
        for arch in &archs {
            for m in MODULES {
                for p in PRECISIONS {
                    let kernels = m.kernels(p);
                    let mut line = format!(
                        "{arch}  {:<24} {:>2} kernel{}",
                        format!("{}.{}", m.name, p.suffix()),
                        kernels.len(),
                        if kernels.len() == 1 { " " } else { "s" }
                    );
                    let mut outputs =
                        vec![(nvrtc::Output::Cubin, cubin_file_name(m.name, p, arch))];
                    if ptx {
                        outputs.push((nvrtc::Output::Ptx, ptx_file_name(m.name, p, arch)));
                    }
                    for (kind, file) in outputs {
                        match compiler.compile(m, p, arch, kind) {
                            Ok(bytes) => {
                                write(&out.join(&file), &bytes)?;
                                written += 1;
                                line += &format!("  {file} ({} B)", bytes.len());
                            }
                            Err(e) => {
                                line += &format!("  {file} FAILED");
                                failures.push(e.to_string());
                            }
                        }
                    }
                    println!("{line}");
                }
            }
        }
        if !failures.is_empty() {
            for f in &failures {
                eprintln!("{f}");
            }
            return Err(Error::Device(format!(
                "{} of {} kernel compilations failed (see above)",
                failures.len(),
                failures.len() + written
            )));
        }
        write(&hash_file, format!("{}\n", source_hash()).as_bytes())?;
        println!("wrote {written} files to {}", out.display());
        Ok(())
    }

    pub fn info(kernels: Option<&Path>) -> Result<()> {
        println!(
            "f2idiff {}: {} kernel modules ({} kernels per precision), sources {}",
            env!("CARGO_PKG_VERSION"),
            MODULES.len(),
            MODULES.iter().map(|m| m.ops().len()).sum::<usize>(),
            &source_hash()[..16]
        );
        // The driver.
        if device::driver_present() {
            let lib = device::driver_library().unwrap_or_else(|| "(path unknown)".into());
            match device::driver_version() {
                Ok(v) => println!(
                    "libcuda: {lib} (driver supports CUDA {}.{})",
                    v / 1000,
                    (v % 1000) / 10
                ),
                Err(e) => println!("libcuda: {lib}: {}", msg(&e)),
            }
            match device::device_count() {
                Ok(n) => {
                    println!("devices: {n}");
                    for i in 0..n {
                        match device::device_info(i) {
                            Ok((_, d)) => println!(
                                "  cuda:{i} {} ({}, {} SMs, {:.1} GiB)",
                                d.name,
                                d.arch(),
                                d.multiprocessors,
                                d.total_memory as f64 / (1u64 << 30) as f64
                            ),
                            Err(e) => println!("  cuda:{i}: {}", msg(&e)),
                        }
                    }
                }
                Err(e) => println!("devices: none ({})", msg(&e)),
            }
        } else {
            println!("libcuda: not found (no NVIDIA driver on this machine's library path)");
        }
        // NVRTC.
        match nvrtc::Nvrtc::load() {
            Ok(n) => {
                let archs = n
                    .supported_archs()
                    .map(|v| {
                        v.iter()
                            .map(|a| format!("sm_{a}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_else(|| "?".into());
                println!(
                    "libnvrtc: {} (NVRTC {}; archs {archs})",
                    n.path,
                    n.version_string()
                );
            }
            Err(e) => println!("libnvrtc: {}", msg(&e)),
        }
        if let Ok(p) = std::env::var("F2I_NVRTC_PATH") {
            println!("F2I_NVRTC_PATH={p}");
        }
        match cache::dir() {
            Some(d) => println!("kernel cache: {}", d.display()),
            None => println!("kernel cache: none (set F2I_KERNEL_CACHE or HOME)"),
        }
        let dir = kernels
            .map(Path::to_path_buf)
            .or_else(device::kernel_dir_from_env);
        if let Some(dir) = dir {
            match device::check_kernel_dir(&dir) {
                Ok(()) => {
                    let mut archs: Vec<String> = std::fs::read_dir(&dir)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter_map(|e| {
                            let name = e.file_name().to_string_lossy().into_owned();
                            let stem = name.strip_suffix(".cubin")?;
                            Some(stem.rsplit('.').next()?.to_string())
                        })
                        .collect();
                    archs.sort();
                    archs.dedup();
                    println!(
                        "kernel folder: {} (cubins for {})",
                        dir.display(),
                        if archs.is_empty() {
                            "nothing".into()
                        } else {
                            archs.join(", ")
                        }
                    );
                }
                Err(e) => println!("kernel folder: {}", msg(&e)),
            }
        }
        Ok(())
    }
}
