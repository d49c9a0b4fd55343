//! CPU kernel throughput at the Eff U-Net's shapes for one 512×512 output tile (64×64 latent;
//! channels 224 / 448 / 896, heads of 56 / 64, DINOv2-L context of 257 tokens of 1024; the
//! convolutions also at the demo model's 64 / 96 channels): the 3×3 convolutions, GroupNorm +
//! SiLU, the linear layers of the transformer blocks, and self- and cross-attention. Throughput
//! is in elements/s with one element per FLOP (GroupNorm: per value normalised), so criterion's
//! "Gelem/s" reads as GFLOP/s. SD-VAE shapes: `benches/conv.rs`.
//!
//! Runs on rayon's global pool (all cores). Run: `cargo bench --bench unet_kernels`.

mod common;

use common::values;
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use f2idiff::backend::cpu::kernels::attention::{attention, attention_scratch_len};
use f2idiff::backend::cpu::kernels::conv::{Conv2d, conv2d};
use f2idiff::backend::cpu::kernels::linear::linear;
use f2idiff::backend::cpu::kernels::norm::group_norm;
use std::hint::black_box;
use std::time::Duration;

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g
}

fn convs(c: &mut Criterion) {
    let mut g = group(c, "unet_conv3x3");
    // The Eff U-Net's widths at each latent size, then the demo model's (64 / 96 channels at
    // 64² / 32²: narrow convolutions, whose path differs).
    for (c_in, c_out, hw) in [
        (224, 224, 64),
        (448, 448, 32),
        (896, 896, 32),
        (1344, 448, 32),
        (896, 896, 16),
        (896, 896, 8),
        (64, 64, 64),
        (96, 96, 32),
    ] {
        let p = Conv2d {
            c_in,
            c_out,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: [1; 4],
        };
        let x = values(1, c_in * hw * hw);
        let weight: Vec<f32> = values(2, c_out * c_in * 9)
            .iter()
            .map(|v| v * 0.02)
            .collect();
        let bias = values(3, c_out);
        let mut out = vec![0f32; c_out * hw * hw];
        let mut scratch = vec![0f32; p.scratch_len(hw, hw, rayon::current_num_threads())];
        g.throughput(Throughput::Elements(
            (2 * c_out * c_in * 9 * hw * hw) as u64,
        ));
        g.bench_function(format!("{c_in}to{c_out}_{hw}x{hw}"), |b| {
            b.iter(|| {
                let (w, bi) = (&weight, Some(bias.as_slice()));
                conv2d(&p, &x, hw, hw, w, bi, &mut out, &mut scratch, false);
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn norms(c: &mut Criterion) {
    let mut g = group(c, "unet_group_norm_silu");
    for (ch, hw) in [(224, 64), (448, 32), (896, 16)] {
        let x = values(4, ch * hw * hw);
        let (gamma, beta) = (values(5, ch), values(6, ch));
        let mut out = vec![0f32; ch * hw * hw];
        g.throughput(Throughput::Elements((ch * hw * hw) as u64));
        g.bench_function(format!("{ch}ch_{hw}x{hw}_32groups"), |b| {
            b.iter(|| {
                group_norm(&x, ch, hw * hw, 32, 1e-5, &gamma, &beta, true, &mut out);
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn linears(c: &mut Criterion) {
    let mut g = group(c, "unet_linear");
    // (tokens, in, out): q/k/v/out projections and the GEGLU feed-forward's two layers per level
    // (d → 8d, 4d → d); k/v of the DINOv2 context (257 tokens of 1024).
    for (rows, n_in, n_out) in [
        (4096, 224, 224),
        (4096, 224, 1792),
        (4096, 896, 224),
        (1024, 448, 448),
        (256, 896, 896),
        (257, 1024, 448),
    ] {
        let x = values(7, rows * n_in);
        let w: Vec<f32> = values(8, n_out * n_in).iter().map(|v| v * 0.05).collect();
        let bias = values(9, n_out);
        let mut out = vec![0f32; rows * n_out];
        g.throughput(Throughput::Elements((2 * rows * n_in * n_out) as u64));
        g.bench_function(format!("{rows}x{n_in}to{n_out}"), |b| {
            b.iter(|| {
                let bi = Some(bias.as_slice());
                linear(&x, n_in, rows, n_in, &w, n_out, bi, &mut out, n_out, false);
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn attentions(c: &mut Criterion) {
    let mut g = group(c, "unet_attention");
    // (queries, keys, heads, head_dim): self-attention at 64² and 32² latents, cross-attention
    // to the 257 DINOv2 tokens at 64².
    for (tq, tk, heads, hd) in [(4096, 4096, 4, 56), (1024, 1024, 7, 64), (4096, 257, 4, 56)] {
        let d = heads * hd;
        let (q, k, v) = (values(10, tq * d), values(11, tk * d), values(12, tk * d));
        let mut out = vec![0f32; tq * d];
        let threads = rayon::current_num_threads();
        let mut scratch = vec![0f32; attention_scratch_len(tq, tk, threads)];
        let scale = 1.0 / (hd as f32).sqrt();
        g.throughput(Throughput::Elements((4 * tq * tk * d) as u64));
        g.bench_function(format!("{tq}q_{tk}k_{heads}x{hd}"), |b| {
            b.iter(|| {
                let (o, s) = (&mut out, &mut scratch);
                attention(&q, d, &k, d, &v, d, tq, tk, heads, hd, scale, o, d, s);
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    convs(&mut c);
    norms(&mut c);
    linears(&mut c);
    attentions(&mut c);
    c.final_summary();
}
