//! Packing the folders that diffusers / transformers / peft `save_pretrained` wrote must give
//! exactly the weights PyTorch has after peft's `merge_and_unload` (tiny_expected/, made by
//! `calib/reference/make_pack_goldens.py`): max relative error ≤ 1e-6 in f32.

use f2idiff::convert::{LoraChoice, PackOptions, pack_folder};
use f2idiff::pack::{LoraMode, Pack};
use f2idiff::tensor::{DType, decode_f32, encode_f32};
use safetensors::SafeTensors;
use std::collections::BTreeMap;
use std::path::Path;

const DATA: &str = "tests/data/pack";

/// name → (shape, f32 values) of a safetensors file.
fn load(path: &str) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, t)| {
            assert_eq!(t.dtype(), safetensors::Dtype::F32);
            (name, (t.shape().to_vec(), decode_f32(DType::F32, t.data())))
        })
        .collect()
}

/// max |a − b| / max |b| (0 when both are all zero).
fn max_rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max);
    if scale == 0.0 { diff } else { diff / scale }
}

fn pack(model: &str, opts: &PackOptions) -> (tempfile::TempDir, Pack) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.f2i");
    pack_folder(&Path::new(DATA).join(model), &out, opts).unwrap();
    let p = Pack::open(&out).unwrap();
    p.verify().unwrap();
    (dir, p)
}

/// Every expected tensor is in the pack, nothing else is, and values agree within `tol`.
fn assert_matches(p: &Pack, expected: &BTreeMap<String, (Vec<usize>, Vec<f32>)>, tol: f64) -> f64 {
    let names: Vec<&str> = p.entries().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.len(), expected.len(), "tensor count");
    let mut worst = 0.0f64;
    for (name, (shape, want)) in expected {
        let t = p
            .tensor(name)
            .unwrap_or_else(|| panic!("{name} missing from pack"));
        assert_eq!(t.shape, shape.as_slice(), "{name}");
        let err = max_rel(&t.to_f32(), want);
        assert!(err <= tol, "{name}: max rel err {err:e} > {tol:e}");
        worst = worst.max(err);
    }
    worst
}

#[test]
fn peft_folder_with_sharded_unet_merges_like_merge_and_unload() {
    let (_d, p) = pack("tiny", &PackOptions::default());
    let expected = load(&format!("{DATA}/tiny_expected/merged.safetensors"));
    let worst = assert_matches(&p, &expected, 1e-6);
    eprintln!("tiny f32 merge: worst max relative error {worst:e}");
    assert_eq!(p.header().lora.mode, LoraMode::Merge);
    let scales: Vec<f64> = p
        .header()
        .lora
        .adapters
        .iter()
        .flat_map(|a| a.scales.clone())
        .collect();
    assert_eq!(scales, [1.5, 1.5]);
    assert_eq!(
        p.header()
            .cond_proj
            .map(|c| (c.in_features, c.out_features)),
        Some((24, 24))
    );
    // Provenance names every source file with its digest, shards and adapters included.
    let files: Vec<&str> = p
        .header()
        .provenance
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    for want in [
        "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet_lora/adapter_model.safetensors",
        "cond_proj.safetensors",
    ] {
        assert!(files.contains(&want), "{want} not in {files:?}");
    }
    assert!(
        p.header()
            .provenance
            .files
            .iter()
            .all(|f| f.sha256.len() == 64)
    );
}

#[test]
fn osediff_named_adapters_and_base_layer_merge_like_peft() {
    // No adapter_config.json: PEFT's default alpha 8 with r = 4 gives scale 2.
    let (_d, p) = pack("osediff", &PackOptions::default());
    let expected = load(&format!("{DATA}/osediff_expected/merged.safetensors"));
    let worst = assert_matches(&p, &expected, 1e-6);
    eprintln!("osediff f32 merge: worst max relative error {worst:e}");
    let mut adapters: Vec<String> = p
        .header()
        .lora
        .adapters
        .iter()
        .map(|a| format!("{}/{}", a.module, a.name))
        .collect();
    adapters.sort();
    assert_eq!(
        adapters,
        [
            "unet/default_decoder",
            "unet/default_encoder",
            "unet/default_others",
            "vae/default_encoder"
        ]
    );
}

#[test]
fn lora_alpha_stands_in_for_a_missing_alpha_only() {
    // OSEDiff (no alpha anywhere): alpha 4 halves every delta relative to the default 8.
    let opts = PackOptions {
        lora_alpha: Some(4.0),
        ..PackOptions::default()
    };
    let (_d, half) = pack("osediff", &opts);
    let (_d2, none) = pack(
        "osediff",
        &PackOptions {
            lora: LoraChoice::Runtime,
            ..PackOptions::default()
        },
    );
    let full = load(&format!("{DATA}/osediff_expected/merged.safetensors"));
    for (name, (_, merged8)) in &full {
        let base = none.tensor(name).unwrap().to_f32();
        let want: Vec<f32> = base
            .iter()
            .zip(merged8)
            .map(|(b, m)| b + (m - b) * 0.5)
            .collect();
        let err = max_rel(&half.tensor(name).unwrap().to_f32(), &want);
        assert!(err <= 1e-6, "{name}: {err:e}");
    }
    // tiny's adapter_config.json sets lora_alpha: the flag must not override it.
    let opts = PackOptions {
        lora_alpha: Some(100.0),
        ..PackOptions::default()
    };
    let (_d3, p) = pack("tiny", &opts);
    assert_matches(
        &p,
        &load(&format!("{DATA}/tiny_expected/merged.safetensors")),
        1e-6,
    );
}

#[test]
fn runtime_lora_keeps_base_and_scaled_factors_that_rebuild_the_merge() {
    for model in ["tiny", "osediff"] {
        let (_d, p) = pack(
            model,
            &PackOptions {
                lora: LoraChoice::Runtime,
                ..PackOptions::default()
            },
        );
        assert_eq!(p.header().lora.mode, LoraMode::Runtime);
        let merged = load(&format!("{DATA}/{model}_expected/merged.safetensors"));
        let mut pairs = 0;
        for (name, (shape, want)) in &merged {
            let w = p.tensor(name).unwrap().to_f32();
            let module = name.strip_suffix(".weight").unwrap_or(name);
            let Some(a) = p.tensor(&format!("{module}.lora_A.weight")) else {
                // Untouched tensors are stored as merged (= base, or base_layer replacement).
                assert!(max_rel(&w, want) <= 1e-6, "{name}");
                continue;
            };
            pairs += 1;
            let b = p.tensor(&format!("{module}.lora_B.weight")).unwrap();
            let (rank, out) = (a.shape[0], shape[0]);
            let delta = f2idiff::convert::lora::delta(&a.to_f32(), &b.to_f32(), out, rank, 1.0);
            let rebuilt: Vec<f32> = w.iter().zip(&delta).map(|(x, d)| x + d).collect();
            assert!(
                max_rel(&rebuilt, want) <= 1e-6,
                "{model} {name}: {:e}",
                max_rel(&rebuilt, want)
            );
            assert!(
                max_rel(&w, want) > 1e-4,
                "{model} {name}: base already merged?"
            );
        }
        assert!(pairs > 50, "{model}: only {pairs} LoRA pairs");
    }
}

#[test]
fn half_precision_packs_round_the_f32_merge() {
    let expected = load(&format!("{DATA}/tiny_expected/merged.safetensors"));
    for dtype in [DType::F16, DType::BF16] {
        let (_d, p) = pack(
            "tiny",
            &PackOptions {
                dtype,
                ..PackOptions::default()
            },
        );
        assert_eq!(p.header().dtype, dtype.name());
        for (name, (_, want)) in &expected {
            let t = p.tensor(name).unwrap();
            assert_eq!(t.dtype, dtype);
            // The stored value is the reference f32 merge rounded once (at most one unit in
            // the last place apart where the f32 merges differ by an ulp at a rounding tie).
            let rounded = decode_f32(dtype, &encode_f32(dtype, want));
            let ulp = if dtype == DType::F16 {
                1.0 / 1024.0
            } else {
                1.0 / 128.0
            };
            for (i, (got, r)) in t.to_f32().iter().zip(&rounded).enumerate() {
                assert!(
                    (got - r).abs() <= r.abs() * ulp + 1e-7,
                    "{dtype} {name}[{i}]: {got} vs {r}"
                );
            }
            assert!(max_rel(&t.to_f32(), want) <= if dtype == DType::F16 { 1e-3 } else { 8e-3 });
        }
    }
}

#[test]
fn packing_is_deterministic() {
    let (_a, p) = pack("tiny", &PackOptions::default());
    let (_b, q) = pack("tiny", &PackOptions::default());
    assert_eq!(
        std::fs::read(p.path()).unwrap(),
        std::fs::read(q.path()).unwrap()
    );
}

#[test]
fn diffusers_lora_file_spelling_merges_the_same() {
    // diffusers' `save_lora_adapter` writes `pytorch_lora_weights.safetensors` with the network
    // name as key prefix instead of PEFT's `base_model.model.`.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    for sub in ["", "vae", "unet", "dinov2", "unet_lora", "vae_lora"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for e in walk(Path::new(DATA).join("tiny").as_path()) {
        let rel = e.strip_prefix(Path::new(DATA).join("tiny")).unwrap();
        std::fs::copy(&e, dir.join(rel)).unwrap();
    }
    let src = dir.join("unet_lora/adapter_model.safetensors");
    let bytes = std::fs::read(&src).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let renamed: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n.replace("base_model.model.", "unet."), t))
        .collect();
    let out = safetensors::serialize(renamed, None).unwrap();
    std::fs::write(dir.join("unet_lora/pytorch_lora_weights.safetensors"), out).unwrap();
    std::fs::remove_file(&src).unwrap();

    let packed = tmp.path().join("m.f2i");
    pack_folder(&dir, &packed, &PackOptions::default()).unwrap();
    let p = Pack::open(&packed).unwrap();
    assert_matches(
        &p,
        &load(&format!("{DATA}/tiny_expected/merged.safetensors")),
        1e-6,
    );
}

#[test]
fn packs_leave_out_the_local_path_configs_record() {
    // diffusers and transformers write the folder a model was loaded from as `_name_or_path`.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let src = Path::new(DATA).join("tiny");
    for e in walk(&src) {
        let dst = dir.join(e.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&e, dst).unwrap();
    }
    for net in ["vae", "unet", "dinov2"] {
        let path = dir.join(net).join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        cfg["_name_or_path"] = format!("/home/someone/models/{net}").into();
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    }
    let packed = tmp.path().join("m.f2i");
    pack_folder(&dir, &packed, &PackOptions::default()).unwrap();
    let bytes = std::fs::read(&packed).unwrap();
    assert!(!bytes.windows(14).any(|w| w == b"/home/someone/"));
    let (_plain, p) = pack("tiny", &PackOptions::default());
    let q = Pack::open(&packed).unwrap();
    assert_eq!(q.header().unet, p.header().unet);
    assert_eq!(q.header().vae, p.header().vae);
    assert_eq!(q.header().dinov2, p.header().dinov2);
    assert_matches(
        &q,
        &load(&format!("{DATA}/tiny_expected/merged.safetensors")),
        1e-6,
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}
