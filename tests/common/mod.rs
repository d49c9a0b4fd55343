//! Shared helpers for integration tests and benches: synthetic packs written through the real
//! writer from the real manifests, and byte-level surgery on packs.
#![allow(dead_code)]

use f2idiff::config::ModelConfigs;
use f2idiff::manifest;
use f2idiff::pack::format::{self, Preamble, TableEntry};
use f2idiff::pack::{FORMAT_NAME, Header, LoraInfo, LoraMode, Provenance, TensorPlan, write_pack};
use f2idiff::tensor::{DType, encode_f32};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

pub fn tiny_configs() -> (Value, Value, Value, Value) {
    let pipeline = json!({"scale": 4, "timestep": 999, "dino_image_size": 56});
    let vae = json!({"block_out_channels": [8, 16], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "norm_num_groups": 4, "layers_per_block": 1, "latent_channels": 4});
    let unet = json!({"block_out_channels": [16, 32], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "attention_head_dim": [2, 4], "cross_attention_dim": 24,
        "norm_num_groups": 4, "layers_per_block": 1, "use_linear_projection": true});
    let dinov2 = json!({"hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 56, "patch_size": 14});
    (pipeline, vae, unet, dinov2)
}

/// SD-2.1-base U-Net + SD VAE + DINOv2-L shapes: about 1.3 G parameters.
pub fn sd_configs() -> (Value, Value, Value, Value) {
    let pipeline = json!({"scale": 4, "timestep": 999, "dino_image_size": 224});
    let vae = json!({"block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"], "layers_per_block": 2, "latent_channels": 4, "norm_num_groups": 32});
    let unet = json!({"attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "use_linear_projection": true});
    let dinov2 = json!({"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 518, "patch_size": 14});
    (pipeline, vae, unet, dinov2)
}

pub fn header_for(configs: &(Value, Value, Value, Value), dtype: DType) -> Header {
    Header {
        format: FORMAT_NAME.into(),
        pipeline: configs.0.clone(),
        vae: configs.1.clone(),
        unet: configs.2.clone(),
        dinov2: configs.3.clone(),
        cond_proj: Some(f2idiff::pack::CondProj {
            in_features: configs.3["hidden_size"].as_u64().unwrap() as usize,
            out_features: configs.2["cross_attention_dim"].as_u64().unwrap() as usize,
        }),
        dtype: dtype.name().into(),
        lora: LoraInfo {
            mode: LoraMode::None,
            adapters: vec![],
        },
        provenance: Provenance {
            tool: "test".into(),
            files: vec![],
        },
        f16_prescales: Default::default(),
    }
}

/// Copies the folder `from` (recursively) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Every tensor the header's configs require, named with module prefixes.
pub fn required_plans(header: &Header, dtype: DType) -> Vec<TensorPlan> {
    let p = PathBuf::from("test");
    let configs = ModelConfigs::parse(
        (&p, &header.pipeline),
        (&p, &header.vae),
        (&p, &header.unet),
        (&p, &header.dinov2),
    )
    .unwrap();
    let cp = header.cond_proj.map(|c| (c.out_features, c.in_features));
    manifest::required(&configs, cp)
        .into_iter()
        .flat_map(|(prefix, m)| {
            m.tensors.into_iter().map(move |(n, s)| TensorPlan {
                name: format!("{prefix}{n}"),
                dtype,
                shape: s,
            })
        })
        .collect()
}

/// Deterministic pseudo-random values in [-1, 1) for tensor `i`.
pub fn values(i: usize, n: usize) -> Vec<f32> {
    let mut s = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

/// Writes a pack with the given plans filled by [`values`].
pub fn write_synthetic(path: &Path, header: &Header, plans: &[TensorPlan]) -> u64 {
    write_pack(path, header, plans, |i| {
        let n = plans[i].shape.iter().product();
        Ok(encode_f32(plans[i].dtype, &values(i, n)))
    })
    .unwrap()
}

/// A complete tiny pack.
pub fn tiny_pack(path: &Path, dtype: DType) -> Vec<TensorPlan> {
    let header = header_for(&tiny_configs(), dtype);
    let plans = required_plans(&header, dtype);
    write_synthetic(path, &header, &plans);
    plans
}

pub fn read_preamble(bytes: &[u8]) -> Preamble {
    Preamble::decode(
        Path::new("x"),
        &bytes[..format::PREAMBLE_LEN],
        bytes.len() as u64,
    )
    .unwrap()
}

/// Rewrites a pack's table through `edit` with consistent checksums (for crafting lies that
/// only the semantic checks can catch). The table must keep its byte length.
pub fn edit_table(path: &Path, edit: impl FnOnce(&mut Vec<TableEntry>)) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut pre = read_preamble(&bytes);
    let (off, len) = (pre.table_offset as usize, pre.table_len as usize);
    let mut entries = format::decode_table(path, &bytes[off..off + len], pre.data_len).unwrap();
    edit(&mut entries);
    let table = format::encode_table(&entries);
    assert_eq!(table.len(), len, "edit must keep the table's length");
    bytes[off..off + len].copy_from_slice(&table);
    pre.table_crc = crc32fast::hash(&table);
    bytes[..format::PREAMBLE_LEN].copy_from_slice(&pre.encode());
    std::fs::write(path, bytes).unwrap();
}

/// Rewrites a pack's header JSON through `edit`, keeping every checksum and offset consistent.
pub fn edit_header(path: &Path, edit: impl FnOnce(&mut Value)) {
    let bytes = std::fs::read(path).unwrap();
    let pre = read_preamble(&bytes);
    let (ho, hl) = (pre.header_offset as usize, pre.header_len as usize);
    let mut header: Value = serde_json::from_slice(&bytes[ho..ho + hl]).unwrap();
    edit(&mut header);
    let new_header = serde_json::to_vec(&header).unwrap();
    let table =
        bytes[pre.table_offset as usize..(pre.table_offset + pre.table_len) as usize].to_vec();
    let data = &bytes[pre.data_offset as usize..];
    let mut p = pre;
    p.header_len = new_header.len() as u64;
    p.header_crc = crc32fast::hash(&new_header);
    p.table_offset = p.header_offset + p.header_len;
    p.data_offset = format::align_up(p.table_offset + p.table_len, format::DATA_ALIGN);
    let mut out = p.encode().to_vec();
    out.extend_from_slice(&new_header);
    out.extend_from_slice(&table);
    out.resize(p.data_offset as usize, 0);
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

/// FNV-1a (64-bit) of a name: the seed of the formulas below.
fn fnv1a64(name: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Element `i` of the SplitMix64 stream seeded with `seed`, as `r` in [-1, 1) (exact in f64).
fn formula_r(seed: u64, i: u64) -> f64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^= z >> 31;
    2.0 * ((z >> 40) as f64 / (1u64 << 24) as f64) - 1.0
}

/// The weight formula of `calib/reference/weights_formula.py` (real-width goldens store
/// no weights): FNV-1a of the name seeds a SplitMix64 stream; ±1/√fan_in for matrices,
/// 1 + 0.2·r for norm scales, 0.1·r for biases, 0.5·r otherwise.
pub fn formula_weight(name: &str, shape: &[usize]) -> Vec<f32> {
    let seed = fnv1a64(name);
    let n: usize = shape.iter().product();
    let fan_in: usize = shape.iter().skip(1).product();
    (0..n as u64)
        .map(|i| {
            let r = formula_r(seed, i);
            let v = if shape.len() >= 2 {
                r / (fan_in as f64).sqrt()
            } else if shape.len() == 1 && name.ends_with(".weight") {
                1.0 + 0.2 * r
            } else if name.ends_with(".bias") {
                0.1 * r
            } else {
                0.5 * r
            };
            v as f32
        })
        .collect()
}

/// The input formula of `calib/reference/weights_formula.py` (`formula_input`): an
/// activation-like `[c, h, w]` tensor, per channel an offset, a smooth bump and scaled
/// unit-variance noise, computed in f64 in the generator's order of operations (so bit for bit
/// the same), then rounded to f32.
pub fn formula_input(name: &str, c: usize, h: usize, w: usize) -> Vec<f32> {
    let (mean, smooth, scale) = (
        fnv1a64(&format!("{name}#mean")),
        fnv1a64(&format!("{name}#smooth")),
        fnv1a64(&format!("{name}#scale")),
    );
    let seed = fnv1a64(name);
    let bump = |k: usize, n: usize| {
        let u = (k as f64 + 0.5) / n as f64;
        (4.0 * u) * (1.0 - u)
    };
    let (py, px): (Vec<f64>, Vec<f64>) = (
        (0..h).map(|y| bump(y, h)).collect(),
        (0..w).map(|x| bump(x, w)).collect(),
    );
    let sqrt3 = 3.0f64.sqrt();
    let mut out = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        let m = 0.5 * formula_r(mean, ch as u64);
        let g = formula_r(smooth, ch as u64);
        let s = 1.0 + 0.5 * formula_r(scale, ch as u64);
        for (y, py) in py.iter().enumerate() {
            for (x, px) in px.iter().enumerate() {
                let i = ((ch * h + y) * w + x) as u64;
                let v = (m + g * (py * px)) + s * (sqrt3 * formula_r(seed, i));
                out.push(v as f32);
            }
        }
    }
    out
}

/// A weight source generating every parameter with [`formula_weight`].
pub struct FormulaWeights;

impl f2idiff::model::WeightSource for FormulaWeights {
    fn get(&self, name: &str, shape: &[usize]) -> f2idiff::Result<f2idiff::backend::HostData> {
        Ok(f2idiff::backend::HostData::F32(formula_weight(name, shape)))
    }
}

/// name → (shape, f32 values) of a safetensors file.
pub fn load_safetensors(path: &str) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, t)| {
            assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
            (
                name,
                (
                    t.shape().to_vec(),
                    f2idiff::tensor::decode_f32(DType::F32, t.data()),
                ),
            )
        })
        .collect()
}

/// The largest absolute difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// ‖a − b‖₂ / ‖b‖₂.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length");
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}

/// True under qemu-user (`scripts/test-aarch64.sh` sets `F2IDIFF_EMULATED`), where every run
/// costs tens of times its native time: tests that repeat long runs repeat fewer or smaller ones.
pub fn emulated() -> bool {
    std::env::var_os("F2IDIFF_EMULATED").is_some()
}

/// True (after saying so) where spawning the CLI binary is impossible, e.g. under qemu-user.
pub fn skipped() -> bool {
    match std::env::var("F2IDIFF_SKIP_CLI") {
        Ok(why) => {
            eprintln!("skipped: {why}");
            true
        }
        Err(_) => false,
    }
}

/// The sd test model (`tests/data/engine/sd`, seeded random weights) packed into a temporary
/// folder and loaded on the CPU: (the folder, kept alive with the pack; backend; networks).
pub fn sd_model() -> (
    tempfile::TempDir,
    f2idiff::backend::cpu::CpuBackend,
    f2idiff::engine::Networks<f2idiff::backend::cpu::CpuBackend>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sd.f2i");
    f2idiff::convert::pack_folder(
        Path::new("tests/data/engine/sd"),
        &out,
        &f2idiff::convert::PackOptions::default(),
    )
    .unwrap();
    let backend = f2idiff::backend::cpu::CpuBackend::new(0).unwrap();
    let pack = std::sync::Arc::new(f2idiff::pack::Pack::open(&out).unwrap());
    let nets = f2idiff::engine::Networks::load(&backend, pack, 1.0).unwrap();
    (tmp, backend, nets)
}
