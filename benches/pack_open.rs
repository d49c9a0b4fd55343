//! Opening a pack is O(header): map the file and validate preamble, header, table, every
//! tensor's bounds and the configs' required tensors — without touching tensor data.
//! The pack here has SD-2.1-base U-Net + SD VAE + DINOv2-L shapes in f16 (≈2.5 GB, 1.3 G
//! parameters, 1379 tensors), written by the real writer. `verify` (every CRC) reads it all.
//!
//! Run: `cargo bench --bench pack_open` (needs ~2.5 GB free in the temp dir).

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, Throughput};
use f2idiff::pack::{Pack, write_pack};
use f2idiff::tensor::DType;
use std::hint::black_box;
use std::time::Duration;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sd.f2i");
    let header = common::header_for(&common::sd_configs(), DType::F16);
    let plans = common::required_plans(&header, DType::F16);
    // One 64 MiB block of pseudo-random bytes, sliced per tensor: realistic bytes, fast to make.
    let block: Vec<u8> = common::values(1, 16 << 20)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let bytes = write_pack(&path, &header, &plans, |i| {
        let len = plans[i].shape.iter().product::<usize>() * 2;
        Ok((0..len)
            .map(|j| block[(j + i * 4099) % block.len()])
            .collect())
    })
    .unwrap();
    println!(
        "pack: {} bytes ({:.2} GiB), {} tensors",
        bytes,
        bytes as f64 / (1u64 << 30) as f64,
        plans.len()
    );
    assert!(bytes >= 1 << 30);

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("pack");
    g.bench_function("open_validate_2.5GB", |b| {
        b.iter(|| black_box(Pack::open(&path).unwrap()))
    });
    let pack = Pack::open(&path).unwrap();
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("verify_all_checksums_2.5GB", |b| {
        b.iter(|| pack.verify().unwrap())
    });
    g.finish();
    c.final_summary();
}
