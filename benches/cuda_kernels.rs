//! CUDA kernels on a real GPU, one op at a time through the backend the networks use
//! (`CudaBackend<DeviceExecutor>`, f16 storage), each with both kernel families where they
//! differ: `tc` (tensor cores, the default) and `simple` (the part-1 kernels).
//!
//! Throughput comes from a counted figure, per op:
//!   conv 3×3      FLOPs = 2 · c_out · c_in · 9 · h · w              (SD-VAE shapes)
//!   attention     FLOPs = 4 · tokens² · head_dim                    (VAE mid-block: 4096 × 512)
//!   linear        FLOPs = 2 · rows · n_in · n_out
//!   GroupNorm     bytes = 3 · c · h · w · 2  (statistics pass reads x, output pass reads x and
//!                 writes y, f16)
//!   LoRA          FLOPs = the base op's + 2 · rows · rank · (n_in + n_out) (linear; a
//!                 convolution's down projection has the base geometry, its up projection 1×1)
//!   GN → conv     the convolution's FLOPs, for GroupNorm+SiLU folded into its input packing
//!                 against the two ops (the difference is GroupNorm's output pass)
//! FLOP benches report criterion `Throughput::Elements(flops)`: read "Gelem/s" as GFLOP/s.
//! GroupNorm reports `Throughput::Bytes`. Before the benches the tensor-core peak probe
//! (`kernels/peak.cu`) is measured, and after each FLOP bench one line gives the op's median
//! TFLOP/s as a share of it (its own 20-launch median, synchronised).
//!
//! Run on the GPU machine: `cargo bench --features cuda --bench cuda_kernels` (or the built
//! executable with `--bench`, as scripts/gpu-check.sh does). Without a usable GPU it prints why
//! and exits successfully.

//! Built only with the `cuda` feature (`required-features` in Cargo.toml).

fn main() {
    gpu::main();
}

mod gpu {
    use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
    use f2idiff::backend::cuda::device::{DeviceExecutor, kernel_dir_from_env};
    use f2idiff::backend::cuda::{CudaBackend, CudaWeight, Kernels, Precision};
    use f2idiff::backend::{Backend, Conv2d, GroupNormArgs, HostData, LoraArgs, Rows, View};
    use f2idiff::bench::{median, peak, weights};
    use std::time::{Duration, Instant};

    type Gpu = CudaBackend<DeviceExecutor>;
    type Arena = <Gpu as Backend>::Arena;

    const FAMILIES: [(&str, Kernels); 2] =
        [("tc", Kernels::TensorCore), ("simple", Kernels::Simple)];

    fn open(kernels: Kernels) -> Result<Gpu, String> {
        let exec = DeviceExecutor::new(0, kernel_dir_from_env()).map_err(|e| e.to_string())?;
        Ok(CudaBackend::new(exec, Precision::F16).with_kernels(kernels))
    }

    /// Consecutive views of the given lengths in one arena.
    fn arena(b: &Gpu, lens: &[usize]) -> (Arena, Vec<View>) {
        let mut views = Vec::new();
        let mut at = 0;
        for &len in lens {
            views.push(View { offset: at, len });
            at += len.div_ceil(64) * 64;
        }
        let mut a = b.alloc_arena(at.max(1)).expect("arena");
        for (i, v) in views.iter().enumerate() {
            b.write(
                &mut a,
                *v,
                &weights::uniform(i as u64 + 1, v.len, -1.0, 1.0),
            )
            .expect("write");
        }
        (a, views)
    }

    fn weight(b: &Gpu, seed: u64, shape: &[usize], scale: f32) -> CudaWeight {
        let n = shape.iter().product();
        b.upload(
            shape,
            HostData::F32(weights::uniform(seed, n, -scale, scale)),
        )
        .expect("upload")
    }

    /// Median milliseconds of `op` over 20 launches, synchronised around each.
    fn median_ms(b: &Gpu, op: &mut dyn FnMut()) -> f64 {
        op();
        b.synchronize().expect("sync");
        let mut ms: Vec<f64> = (0..20)
            .map(|_| {
                let t = Instant::now();
                op();
                b.synchronize().expect("sync");
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        median(&mut ms)
    }

    /// Benches `op` under `name` (launches back to back, one synchronize per batch) and prints
    /// its share of the peak.
    fn bench(
        g: &mut BenchmarkGroup<WallTime>,
        b: &Gpu,
        name: &str,
        flops: u64,
        peak_tflops: f64,
        op: &mut dyn FnMut(),
    ) {
        g.throughput(Throughput::Elements(flops));
        g.bench_function(name, |bencher| {
            bencher.iter_custom(|iters| {
                b.synchronize().expect("sync");
                let t = Instant::now();
                for _ in 0..iters {
                    op();
                }
                b.synchronize().expect("sync");
                t.elapsed()
            })
        });
        let ms = median_ms(b, op);
        let tflops = flops as f64 / (ms * 1e-3) / 1e12;
        println!(
            "share: {name}: {ms:.3} ms, {tflops:.1} TFLOP/s = {:.1}% of the mma.sync peak ({peak_tflops:.1})",
            100.0 * tflops / peak_tflops
        );
    }

    fn conv3x3(g: &mut BenchmarkGroup<WallTime>, b: &Gpu, fam: &str, peak_tflops: f64) {
        for (c, hw) in [(128, 256), (256, 128), (512, 64)] {
            let p = Conv2d {
                c_in: c,
                c_out: c,
                kh: 3,
                kw: 3,
                stride: 1,
                pad: [1; 4],
            };
            let (mut a, v) = arena(b, &[c * hw * hw, c * hw * hw, b.conv2d_scratch(&p, hw, hw)]);
            let w = weight(b, 10, &[c, c, 3, 3], 1.0 / (9.0 * c as f32).sqrt());
            let bias = weight(b, 11, &[c], 0.1);
            let flops = 2 * (c * c * 9 * hw * hw) as u64;
            bench(
                g,
                b,
                &format!("conv3x3_{c}to{c}_{hw}x{hw}_{fam}"),
                flops,
                peak_tflops,
                &mut || {
                    b.conv2d(&mut a, &p, v[0], hw, hw, &w, Some(&bias), v[1], v[2], false)
                        .expect("conv2d")
                },
            );
        }
    }

    fn attention(g: &mut BenchmarkGroup<WallTime>, b: &Gpu, fam: &str, peak_tflops: f64) {
        let (t, d) = (4096, 512);
        let scratch = b.attention_scratch(t, t, 1, d);
        let (mut a, v) = arena(b, &[t * d, t * d, t * d, t * d, scratch]);
        let rows = |view| Rows {
            view,
            row_stride: d,
        };
        let flops = 4 * (t * t * d) as u64;
        let scale = 1.0 / (d as f32).sqrt();
        bench(
            g,
            b,
            &format!("attention_1head_{t}tok_hd{d}_{fam}"),
            flops,
            peak_tflops,
            &mut || {
                b.attention(
                    &mut a,
                    rows(v[0]),
                    rows(v[1]),
                    rows(v[2]),
                    t,
                    t,
                    1,
                    d,
                    scale,
                    v[3],
                    v[4],
                )
                .expect("attention")
            },
        );
    }

    fn linear(g: &mut BenchmarkGroup<WallTime>, b: &Gpu, fam: &str, peak_tflops: f64) {
        // VAE attention projection; DINOv2-L fc1; Eff U-Net level-0 GEGLU in.
        for (rows, n_in, n_out) in [(4096, 512, 512), (257, 1024, 4096), (4096, 224, 1792)] {
            let (mut a, v) = arena(b, &[rows * n_in, rows * n_out]);
            let w = weight(b, 20, &[n_out, n_in], 1.0 / (n_in as f32).sqrt());
            let bias = weight(b, 21, &[n_out], 0.1);
            let flops = 2 * (rows * n_in * n_out) as u64;
            bench(
                g,
                b,
                &format!("linear_{rows}x{n_in}to{n_out}_{fam}"),
                flops,
                peak_tflops,
                &mut || {
                    b.linear(
                        &mut a,
                        v[0],
                        rows,
                        n_in,
                        &w,
                        n_out,
                        Some(&bias),
                        v[1],
                        false,
                    )
                    .expect("linear")
                },
            );
        }
    }

    /// Runtime LoRA (rank 16, scale 0.5 per call): a U-Net-sized linear map and an SD-VAE
    /// convolution, fused on tensor cores (`tc`) or composed (`simple`).
    fn lora(g: &mut BenchmarkGroup<WallTime>, b: &Gpu, fam: &str, peak_tflops: f64) {
        let r = 16;
        let (rows, n_in, n_out) = (4096, 448, 448);
        let scratch = b.linear_lora_scratch(rows, r);
        let (mut a, v) = arena(b, &[rows * n_in, rows * n_out, scratch]);
        let w = weight(b, 40, &[n_out, n_in], 1.0 / (n_in as f32).sqrt());
        let (la, lb) = b
            .upload_lora(
                (
                    &[r, n_in],
                    HostData::F32(weights::uniform(41, r * n_in, -0.05, 0.05)),
                ),
                (
                    &[n_out, r],
                    HostData::F32(weights::uniform(42, n_out * r, -0.05, 0.05)),
                ),
            )
            .expect("upload_lora");
        let args = LoraArgs {
            a: &la,
            b: &lb,
            rank: r,
            scale: 0.5,
        };
        let flops = 2 * (rows * n_in * n_out + rows * r * (n_in + n_out)) as u64;
        bench(
            g,
            b,
            &format!("lora_linear_{rows}x{n_in}to{n_out}_r{r}_{fam}"),
            flops,
            peak_tflops,
            &mut || {
                b.linear_lora(
                    &mut a, v[0], rows, n_in, &w, n_out, None, &args, v[1], v[2], false,
                )
                .expect("linear_lora")
            },
        );

        let (c, hw) = (128, 256);
        let p = Conv2d {
            c_in: c,
            c_out: c,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: [1; 4],
        };
        let scratch = b.conv2d_lora_scratch(&p, r, hw, hw);
        let (mut a, v) = arena(b, &[c * hw * hw, c * hw * hw, scratch]);
        let w = weight(b, 43, &[c, c, 3, 3], 1.0 / (9.0 * c as f32).sqrt());
        let (la, lb) = b
            .upload_lora(
                (
                    &[r, c, 3, 3],
                    HostData::F32(weights::uniform(44, r * c * 9, -0.02, 0.02)),
                ),
                (
                    &[c, r, 1, 1],
                    HostData::F32(weights::uniform(45, c * r, -0.05, 0.05)),
                ),
            )
            .expect("upload_lora");
        let args = LoraArgs {
            a: &la,
            b: &lb,
            rank: r,
            scale: 0.5,
        };
        let px = hw * hw;
        let flops = 2 * (c * c * 9 * px + r * c * 9 * px + c * r * px) as u64;
        bench(
            g,
            b,
            &format!("lora_conv3x3_{c}to{c}_{hw}x{hw}_r{r}_{fam}"),
            flops,
            peak_tflops,
            &mut || {
                b.conv2d_lora(&mut a, &p, v[0], hw, hw, &w, None, &args, v[1], v[2], false)
                    .expect("conv2d_lora")
            },
        );
    }

    /// GroupNorm+SiLU → 3×3 convolution (an SD-VAE decoder block at 256²): folded into the
    /// convolution's input packing, against GroupNorm then the convolution.
    fn norm_conv(g: &mut BenchmarkGroup<WallTime>, b: &Gpu, fam: &str, peak_tflops: f64) {
        let (c, hw) = (128, 256);
        let p = Conv2d {
            c_in: c,
            c_out: c,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: [1; 4],
        };
        let n = c * hw * hw;
        let scratch = b.group_norm_conv2d_scratch(&p, hw, hw);
        let (mut a, v) = arena(b, &[n, n, n, scratch]);
        let w = weight(b, 50, &[c, c, 3, 3], 1.0 / (9.0 * c as f32).sqrt());
        let (gamma, beta) = (weight(b, 51, &[c], 1.0), weight(b, 52, &[c], 0.1));
        let gn = GroupNormArgs {
            groups: 32,
            eps: 1e-6,
            gamma: &gamma,
            beta: &beta,
            silu: true,
        };
        let flops = 2 * (c * c * 9 * hw * hw) as u64;
        bench(
            g,
            b,
            &format!("gn_silu_conv3x3_{c}_{hw}x{hw}_folded_{fam}"),
            flops,
            peak_tflops,
            &mut || {
                b.group_norm_conv2d(
                    &mut a,
                    v[0],
                    hw,
                    hw,
                    &gn,
                    &p,
                    &w,
                    None,
                    (1.0, 1.0),
                    v[1],
                    v[3],
                    false,
                )
                .expect("group_norm_conv2d")
            },
        );
        bench(
            g,
            b,
            &format!("gn_silu_conv3x3_{c}_{hw}x{hw}_two_ops_{fam}"),
            flops,
            peak_tflops,
            &mut || {
                b.group_norm(
                    &mut a,
                    v[0],
                    v[2],
                    c,
                    hw * hw,
                    32,
                    1e-6,
                    &gamma,
                    &beta,
                    true,
                )
                .expect("group_norm");
                b.conv2d(&mut a, &p, v[2], hw, hw, &w, None, v[1], v[3], false)
                    .expect("conv2d")
            },
        );
    }

    fn group_norm(c: &mut Criterion, b: &Gpu) {
        let mut g = c.benchmark_group("cuda_group_norm_silu");
        g.sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        for (ch, hw) in [(128, 256), (512, 64)] {
            let n = ch * hw * hw;
            let (mut a, v) = arena(b, &[n, n]);
            let gamma = weight(b, 30, &[ch], 1.0);
            let beta = weight(b, 31, &[ch], 0.1);
            g.throughput(Throughput::Bytes(3 * n as u64 * 2));
            g.bench_function(format!("group_norm_silu_{ch}ch_{hw}x{hw}"), |bencher| {
                bencher.iter_custom(|iters| {
                    b.synchronize().expect("sync");
                    let t = Instant::now();
                    for _ in 0..iters {
                        b.group_norm(
                            &mut a,
                            v[0],
                            v[1],
                            ch,
                            hw * hw,
                            32,
                            1e-6,
                            &gamma,
                            &beta,
                            true,
                        )
                        .expect("group_norm");
                    }
                    b.synchronize().expect("sync");
                    t.elapsed()
                })
            });
        }
        g.finish();
    }

    pub fn main() {
        let probe = match open(Kernels::TensorCore) {
            Ok(b) => b,
            Err(e) => {
                println!("cuda_kernels: skipped: no usable GPU ({e})");
                return;
            }
        };
        let sms = probe.executor().info().multiprocessors.max(1) as u32;
        let l = peak::PeakLaunch {
            blocks: 8 * sms,
            threads: 128,
            iters: 32768,
        };
        let peak_tflops = match peak::measure(probe.executor(), &l, 10) {
            Ok(r) => r.tflops,
            Err(e) => panic!("peak probe failed: {e}"),
        };
        println!(
            "cuda_kernels on {}: mma.sync peak {peak_tflops:.1} TFLOP/s (f16 in, f32 accumulate)",
            probe.name()
        );
        let mut c = Criterion::default().configure_from_args();
        for (fam, kernels) in FAMILIES {
            let b = open(kernels).expect("second executor on the same GPU");
            let mut g = c.benchmark_group(format!("cuda_{fam}"));
            g.sample_size(20)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(1));
            conv3x3(&mut g, &b, fam, peak_tflops);
            attention(&mut g, &b, fam, peak_tflops);
            linear(&mut g, &b, fam, peak_tflops);
            lora(&mut g, &b, fam, peak_tflops);
            norm_conv(&mut g, &b, fam, peak_tflops);
            g.finish();
        }
        group_norm(&mut c, &probe);
        c.final_summary();
    }
}
