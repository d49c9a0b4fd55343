//! Every malformed input gives a typed error naming its culprit, and never a half-written pack.

mod common;

use common::copy_dir;
use f2idiff::convert::{PackOptions, pack_folder};
use f2idiff::pack::{Pack, TensorPlan, format, write_pack};
use f2idiff::tensor::DType;
use f2idiff::{Error, ErrorKind};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::path::{Path, PathBuf};

type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

/// A scratch copy of a golden model folder.
fn model(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_dir(&Path::new("tests/data/pack").join(name), &dir);
    (tmp, dir)
}

fn rewrite_safetensors(path: &Path, edit: impl FnOnce(&mut Tensors)) {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Tensors = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()));
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Packs `dir` into a fresh folder, expecting failure; checks that folder stays empty.
fn pack_err(dir: &Path) -> Error {
    let out_dir = tempfile::tempdir().unwrap();
    let err = pack_folder(dir, &out_dir.path().join("m.f2i"), &PackOptions::default()).unwrap_err();
    let left: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind after `{err}`");
    err
}

fn assert_names(err: &Error, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "`{msg}` does not name `{p}`");
    }
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
}

// ---- the model folder ----

#[test]
fn missing_config() {
    let (_t, dir) = model("tiny");
    std::fs::remove_file(dir.join("vae/config.json")).unwrap();
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_names(&err, &["vae/config.json"]);
}

#[test]
fn unparsable_config() {
    let (_t, dir) = model("tiny");
    std::fs::write(
        dir.join("unet/config.json"),
        "{\"block_out_channels\": [8, 16],",
    )
    .unwrap();
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_names(&err, &["unet/config.json", "unparsable"]);
}

#[test]
fn config_with_a_wrong_field_type_or_impossible_value() {
    let (_t, dir) = model("tiny");
    std::fs::write(dir.join("dinov2/config.json"), r#"{"hidden_size": "wide"}"#).unwrap();
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_names(&err, &["dinov2/config.json", "hidden_size"]);

    let (_t, dir) = model("tiny");
    let cfg = std::fs::read_to_string(dir.join("vae/config.json")).unwrap();
    std::fs::write(
        dir.join("vae/config.json"),
        cfg.replace("\"norm_num_groups\": 4", "\"norm_num_groups\": 3"),
    )
    .unwrap();
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_names(&err, &["vae/config.json", "GroupNorm"]);
}

#[test]
fn unsupported_architecture_option() {
    let (_t, dir) = model("tiny");
    let cfg = std::fs::read_to_string(dir.join("unet/config.json")).unwrap();
    let cfg = cfg.replace(
        "\"class_embed_type\": null",
        "\"class_embed_type\": \"timestep\"",
    );
    std::fs::write(dir.join("unet/config.json"), cfg).unwrap();
    let err = pack_err(&dir);
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err:?}");
    assert_names(&err, &["unet/config.json", "class_embed_type"]);
}

#[test]
fn truncated_safetensors() {
    let (_t, dir) = model("tiny");
    let path = dir.join("vae/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Safetensors { .. }), "{err:?}");
    assert_names(&err, &["vae/diffusion_pytorch_model.safetensors"]);
}

#[test]
fn safetensors_that_lies_about_offsets() {
    let (_t, dir) = model("tiny");
    let header = br#"{"weight":{"dtype":"F32","shape":[24,24],"data_offsets":[0,4096]},"bias":{"dtype":"F32","shape":[24],"data_offsets":[4096,4192]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend(vec![0u8; 4192]);
    std::fs::write(dir.join("cond_proj.safetensors"), bytes).unwrap();
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Safetensors { .. }), "{err:?}");
    assert_names(&err, &["cond_proj.safetensors"]);
}

#[test]
fn tensor_with_the_wrong_shape() {
    let (_t, dir) = model("tiny");
    rewrite_safetensors(&dir.join("vae/diffusion_pytorch_model.safetensors"), |ts| {
        let t = ts
            .iter_mut()
            .find(|t| t.0 == "encoder.conv_in.weight")
            .unwrap();
        t.2 = vec![8, 3, 1, 1];
        t.3 = vec![0u8; 8 * 3 * 4];
    });
    let err = pack_err(&dir);
    match &err {
        Error::Shape {
            expected, found, ..
        } => {
            assert_eq!(expected, &[8, 3, 3, 3]);
            assert_eq!(found, &[8, 3, 1, 1]);
        }
        other => panic!("{other:?}"),
    }
    assert_names(
        &err,
        &[
            "vae/diffusion_pytorch_model.safetensors",
            "vae.encoder.conv_in.weight",
            "[8, 3, 3, 3]",
        ],
    );
}

#[test]
fn missing_tensor_in_a_shard() {
    let (_t, dir) = model("tiny");
    // Drop a tensor from the index: the U-Net lacks it.
    let index = dir.join("unet/diffusion_pytorch_model.safetensors.index.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    json["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove("conv_out.bias")
        .unwrap();
    std::fs::write(&index, json.to_string()).unwrap();
    let err = pack_err(&dir);
    assert!(matches!(err, Error::MissingTensor { .. }), "{err:?}");
    assert_names(
        &err,
        &[
            "unet.conv_out.bias",
            "unet/diffusion_pytorch_model.safetensors.index.json",
        ],
    );
}

#[test]
fn missing_shard_file() {
    let (_t, dir) = model("tiny");
    std::fs::remove_file(dir.join("unet/diffusion_pytorch_model-00002-of-00004.safetensors"))
        .unwrap();
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_names(
        &err,
        &["diffusion_pytorch_model-00002-of-00004.safetensors"],
    );
}

#[test]
fn unsupported_dtype() {
    let (_t, dir) = model("tiny");
    rewrite_safetensors(&dir.join("dinov2/model.safetensors"), |ts| {
        let t = ts.iter_mut().find(|t| t.0 == "layernorm.weight").unwrap();
        t.1 = Dtype::F64;
        t.3 = t.3.iter().flat_map(|&b| [b, b]).collect();
    });
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Dtype { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_names(
        &err,
        &["dinov2/model.safetensors", "layernorm.weight", "F64"],
    );
}

#[test]
fn lora_target_that_does_not_exist() {
    let (_t, dir) = model("tiny");
    rewrite_safetensors(&dir.join("unet_lora/adapter_model.safetensors"), |ts| {
        let a = ts
            .iter()
            .find(|t| t.0.ends_with("conv_in.lora_A.weight"))
            .unwrap()
            .clone();
        let b = ts
            .iter()
            .find(|t| t.0.ends_with("conv_in.lora_B.weight"))
            .unwrap()
            .clone();
        ts.push((
            "base_model.model.down_blocks.0.conv_nope.lora_A.weight".into(),
            a.1,
            a.2,
            a.3,
        ));
        ts.push((
            "base_model.model.down_blocks.0.conv_nope.lora_B.weight".into(),
            b.1,
            b.2,
            b.3,
        ));
    });
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Lora { .. }), "{err:?}");
    assert_names(
        &err,
        &[
            "unet_lora/adapter_model.safetensors",
            "down_blocks.0.conv_nope",
            "does not exist",
        ],
    );
}

#[test]
fn lora_factors_that_do_not_fit_their_target() {
    let (_t, dir) = model("osediff");
    rewrite_safetensors(&dir.join("vae_lora/adapter_model.safetensors"), |ts| {
        let t = ts
            .iter_mut()
            .find(|t| t.0 == "encoder.conv_in.lora_A.default_encoder.weight")
            .unwrap();
        t.2 = vec![4, 3, 1, 1]; // the base conv is 3×3
        t.3.truncate(4 * 3 * 4);
    });
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Lora { .. }), "{err:?}");
    assert_names(
        &err,
        &[
            "vae_lora/adapter_model.safetensors",
            "encoder.conv_in",
            "[4, 3, 1, 1]",
        ],
    );
}

#[test]
fn lora_a_without_b_and_dora() {
    let (_t, dir) = model("tiny");
    rewrite_safetensors(&dir.join("vae_lora/adapter_model.safetensors"), |ts| {
        ts.retain(|t| t.0 != "base_model.model.quant_conv.lora_B.weight");
    });
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Lora { .. }), "{err:?}");
    assert_names(&err, &["quant_conv", "lora_B"]);

    let (_t, dir) = model("tiny");
    rewrite_safetensors(&dir.join("vae_lora/adapter_model.safetensors"), |ts| {
        ts.push((
            "base_model.model.quant_conv.lora_magnitude_vector".into(),
            Dtype::F32,
            vec![8],
            vec![0; 32],
        ));
    });
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Lora { .. }), "{err:?}");
    assert_names(&err, &["DoRA"]);
}

#[test]
fn inconsistent_networks() {
    let (_t, dir) = model("tiny");
    rewrite_safetensors(&dir.join("cond_proj.safetensors"), |ts| {
        for t in ts.iter_mut() {
            if t.0 == "weight" {
                t.2 = vec![24, 12];
                t.3.truncate(24 * 12 * 4);
            }
        }
    });
    let err = pack_err(&dir);
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_names(&err, &["cond_proj maps 12"]);
}

#[test]
fn failed_pack_keeps_an_existing_output_and_leaves_no_temporary() {
    let (_t, dir) = model("tiny");
    std::fs::remove_file(dir.join("dinov2/model.safetensors")).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("m.f2i");
    std::fs::write(&out, b"previous pack").unwrap();
    pack_folder(&dir, &out, &PackOptions::default()).unwrap_err();
    assert_eq!(std::fs::read(&out).unwrap(), b"previous pack");
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 1);
}

#[test]
fn writer_error_midway_removes_the_temporary() {
    let out_dir = tempfile::tempdir().unwrap();
    let header = common::header_for(&common::tiny_configs(), DType::F32);
    let plans: Vec<TensorPlan> = common::required_plans(&header, DType::F32);
    let out = out_dir.path().join("m.f2i");
    let err = write_pack(&out, &header, &plans, |i| {
        if i == 10 {
            Err(Error::InvalidArgument("source went away".into()))
        } else {
            Ok(vec![0u8; plans[i].shape.iter().product::<usize>() * 4])
        }
    })
    .unwrap_err();
    assert!(err.to_string().contains("source went away"));
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0);
}

#[test]
fn unwritable_output_path() {
    let err = pack_folder(
        Path::new("tests/data/pack/tiny"),
        Path::new("/nonexistent-dir/m.f2i"),
        &PackOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_names(&err, &["/nonexistent-dir/"]);
}

// ---- the pack ----

fn tiny_pack() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.f2i");
    common::tiny_pack(&path, DType::F16);
    (tmp, path)
}

fn open_err(path: &Path) -> Error {
    match Pack::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

#[test]
fn truncated_pack() {
    let (_t, path) = tiny_pack();
    let bytes = std::fs::read(&path).unwrap();
    for keep in [0, 5, 100, 2000, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = open_err(&path);
        assert!(
            matches!(err, Error::Truncated { .. }),
            "cut at {keep}: {err:?}"
        );
        assert_names(&err, &["m.f2i", "truncated"]);
    }
}

#[test]
fn wrong_magic() {
    let (_t, path) = tiny_pack();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..4].copy_from_slice(b"GGUF");
    std::fs::write(&path, &bytes).unwrap();
    let err = open_err(&path);
    assert!(matches!(err, Error::BadMagic { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Format);
    assert_names(&err, &["m.f2i", "not an f2idiff pack"]);
}

#[test]
fn unknown_version() {
    let (_t, path) = tiny_pack();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = open_err(&path);
    assert!(
        matches!(
            err,
            Error::Version {
                found: 7,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &["m.f2i", "version 7"]);
}

#[test]
fn corrupted_preamble_header_and_table() {
    let (_t, path) = tiny_pack();
    let clean = std::fs::read(&path).unwrap();
    let pre = common::read_preamble(&clean);
    for (at, what) in [
        (20usize, "preamble"),
        (pre.header_offset as usize + 10, "header"),
        (pre.table_offset as usize + 9, "table"),
    ] {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let err = open_err(&path);
        assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err:?}");
        assert_names(&err, &["m.f2i", what, "checksum"]);
    }
}

#[test]
fn header_with_valid_checksum_but_bad_content() {
    let (_t, path) = tiny_pack();
    common::edit_header(&path, |h| {
        h["vae"]["block_out_channels"] = serde_json::json!([8, 17])
    });
    let err = open_err(&path);
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_names(&err, &["m.f2i:header.vae"]);

    let (_t, path) = tiny_pack();
    common::edit_header(&path, |h| {
        h.as_object_mut().unwrap().remove("unet");
    });
    let err = open_err(&path);
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert_names(&err, &["m.f2i", "unet"]);
}

#[test]
fn checksum_mismatch_in_tensor_data() {
    let (_t, path) = tiny_pack();
    let pack = Pack::open(&path).unwrap();
    let victim = pack.entries()[17].clone();
    let at = (pack.preamble().data_offset + victim.offset + 3) as usize;
    drop(pack);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let pack = Pack::open(&path).expect("opening reads no tensor data");
    let err = pack.verify().unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err:?}");
    assert_names(&err, &["m.f2i", &victim.name, "checksum mismatch"]);
}

#[test]
fn table_lies_are_caught_at_open() {
    type Edit = fn(&mut Vec<format::TableEntry>);
    let cases: [(Edit, &str); 5] = [
        (|t| t[3].shape[0] += 1, "length"),
        (|t| t[5].offset = t[4].offset, "overlap"),
        (|t| t[6].offset += 4, "aligned"),
        (|t| t.last_mut().unwrap().offset += 1 << 20, "outside"),
        (
            |t| {
                t[2].dtype = if t[2].dtype == DType::F16 {
                    DType::BF16
                } else {
                    DType::F16
                }
            },
            "ok",
        ),
    ];
    for (edit, what) in cases {
        let (_t, path) = tiny_pack();
        common::edit_table(&path, edit);
        match Pack::open(&path) {
            Err(err) => {
                assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err:?}");
                assert_names(&err, &["m.f2i", what]);
            }
            // A dtype swap of equal size is consistent: the pack stays usable.
            Ok(_) => assert_eq!(what, "ok"),
        }
    }
}

#[test]
fn pack_missing_a_required_tensor_or_with_a_wrong_shape() {
    let (_t, path) = tiny_pack();
    let victim = "unet.conv_in.weight";
    common::edit_table(&path, |t| {
        let e = t.iter_mut().find(|e| e.name == victim).unwrap();
        e.name = "unet.conv_in.weighX".into();
    });
    let err = open_err(&path);
    assert!(matches!(err, Error::MissingTensor { .. }), "{err:?}");
    assert_names(&err, &["m.f2i", victim]);

    let (_t, path) = tiny_pack();
    common::edit_table(&path, |t| {
        let e = t.iter_mut().find(|e| e.name == victim).unwrap();
        e.shape.swap(0, 1); // [16, 4, 3, 3] → [4, 16, 3, 3]: same bytes, wrong layout
    });
    let err = open_err(&path);
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    assert_names(&err, &["m.f2i", victim, "[16, 4, 3, 3]"]);
}

#[test]
fn not_a_file() {
    let err = open_err(Path::new("tests/data/pack/does-not-exist.f2i"));
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_names(&err, &["does-not-exist.f2i"]);
}

#[test]
fn no_byte_flip_or_cut_in_the_metadata_panics_or_opens() {
    let (_t, path) = tiny_pack();
    let clean = std::fs::read(&path).unwrap();
    let pre = common::read_preamble(&clean);
    let meta_end = (pre.table_offset + pre.table_len) as usize;
    for at in (0..meta_end).step_by(61).chain([meta_end - 1]) {
        let mut bytes = clean.clone();
        bytes[at] ^= 0xA5;
        std::fs::write(&path, &bytes).unwrap();
        let err = open_err(&path);
        let typed = err.kind() == ErrorKind::Format || matches!(err, Error::Version { .. });
        assert!(typed, "flip at {at}: {err}");
    }
    for keep in (0..clean.len()).step_by(clean.len() / 97) {
        std::fs::write(&path, &clean[..keep]).unwrap();
        let err = open_err(&path);
        assert!(
            matches!(err, Error::Truncated { .. }),
            "cut at {keep}: {err}"
        );
    }
}

#[test]
fn thread_count_over_the_limit_is_refused() {
    use f2idiff::backend::cpu::CpuBackend;
    let max = CpuBackend::MAX_THREADS;
    let err = CpuBackend::new(max + 1).err().expect("over the limit");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_names(&err, &[&format!("{}", max + 1), &format!("{max}")]);
    assert!(CpuBackend::new(usize::MAX).is_err());
    assert_eq!(CpuBackend::new(3).unwrap().threads(), 3);
}
