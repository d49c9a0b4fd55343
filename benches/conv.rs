//! CPU kernel throughput at SD-VAE shapes: 3×3 convolutions (im2col + GEMM in pixel blocks) and
//! the VAE mid-block attention (1 head, head_dim 512). Throughput is reported in elements/s with
//! one element per FLOP, so criterion's "Gelem/s" reads as GFLOP/s (FLOPs = 2·c_out·c_in·k²·ho·wo
//! for a conv, 4·tq·tk·head_dim for attention's two products).
//!
//! Runs on rayon's global pool (all cores). Run: `cargo bench --bench conv`.

mod common;

use common::values;
use criterion::{Criterion, Throughput};
use f2idiff::backend::cpu::kernels::attention::{attention, attention_scratch_len};
use f2idiff::backend::cpu::kernels::conv::{Conv2d, conv2d};
use std::hint::black_box;
use std::time::Duration;

fn main() {
    let mut c = Criterion::default().configure_from_args();

    let mut g = c.benchmark_group("conv3x3");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for (c_in, c_out, hw) in [
        (128, 128, 256),
        (256, 256, 128),
        (512, 512, 64),
        (3, 128, 256),
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
            .map(|v| v * 0.05)
            .collect();
        let bias = values(3, c_out);
        let mut out = vec![0f32; c_out * hw * hw];
        let mut scratch = vec![0f32; p.scratch_len(hw, hw, rayon::current_num_threads())];
        let flops = 2 * c_out * c_in * 9 * hw * hw;
        g.throughput(Throughput::Elements(flops as u64));
        g.bench_function(format!("{c_in}to{c_out}_{hw}x{hw}"), |b| {
            b.iter(|| {
                conv2d(
                    &p,
                    &x,
                    hw,
                    hw,
                    &weight,
                    Some(&bias),
                    &mut out,
                    &mut scratch,
                    false,
                );
                black_box(&out);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("attention");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    let (t, heads, hd) = (1024, 1, 512);
    let q = values(4, t * hd);
    let k = values(5, t * hd);
    let v = values(6, t * hd);
    let mut out = vec![0f32; t * hd];
    let mut scratch = vec![0f32; attention_scratch_len(t, t, rayon::current_num_threads())];
    let scale = 1.0 / (hd as f32).sqrt();
    g.throughput(Throughput::Elements((4 * t * t * hd) as u64));
    g.bench_function("1head_hd512_1024tok", |b| {
        b.iter(|| {
            attention(
                &q,
                hd,
                &k,
                hd,
                &v,
                hd,
                t,
                t,
                heads,
                hd,
                scale,
                &mut out,
                hd,
                &mut scratch,
            );
            black_box(&out);
        })
    });
    g.finish();

    c.final_summary();
}
