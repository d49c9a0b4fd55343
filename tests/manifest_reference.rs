//! The weight manifests derived from configs must equal, name for name and shape for shape, the
//! checkpoints the reference classes write (diffusers 0.42 / transformers 5.24), for real model
//! configs (SD-2.1-base, the paper's Eff U-Net, SD VAE, DINOv2 S/B/L/g, registers) and configs
//! exercising other options. Goldens: `calib/reference/make_pack_goldens.py`.

use f2idiff::config::{Dinov2Config, UNetConfig, VaeConfig};
use f2idiff::manifest;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn check(file: &str) -> usize {
    let path = Path::new("tests/data/pack/manifests").join(file);
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let config = &golden["config"];
    let ours = match golden["model"].as_str().unwrap() {
        "unet" => manifest::unet(&UNetConfig::from_json(&path, config).unwrap()),
        "vae" => manifest::vae(&VaeConfig::from_json(&path, config).unwrap()),
        "dinov2" => manifest::dinov2(&Dinov2Config::from_json(&path, config).unwrap()),
        other => panic!("unknown model {other}"),
    };
    let expected: BTreeMap<String, Vec<usize>> =
        serde_json::from_value(golden["checkpoint_tensors"].clone()).unwrap();
    let ours_map: BTreeMap<String, Vec<usize>> = ours.tensors.iter().cloned().collect();
    assert_eq!(
        ours_map.len(),
        ours.len(),
        "{file}: duplicate names in manifest"
    );
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !ours_map.contains_key(*k))
        .collect();
    let extra: Vec<_> = ours_map
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{file}: missing {missing:?}, extra {extra:?}"
    );
    for (name, shape) in &expected {
        assert_eq!(&ours_map[name], shape, "{file}: {name}");
    }
    expected.len()
}

#[test]
fn unet_sd21_base() {
    assert_eq!(check("unet_sd21_base.json"), 686);
}

#[test]
fn unet_eff() {
    check("unet_eff.json");
}

#[test]
fn unet_with_conv_projections_list_layers_and_plain_first_block() {
    check("unet_variety.json");
}

#[test]
fn vae_sd() {
    assert_eq!(check("vae_sd.json"), 248);
}

#[test]
fn vae_without_mid_attention_and_8_latents() {
    check("vae_variety.json");
}

#[test]
fn dinov2_all_sizes_and_registers() {
    for f in [
        "dinov2_small.json",
        "dinov2_base.json",
        "dinov2_large.json",
        "dinov2_giant.json",
        "dinov2_registers.json",
    ] {
        check(f);
    }
}

#[test]
fn sd21_unet_parameter_count_matches_the_published_865m() {
    let path = Path::new("tests/data/pack/manifests/unet_sd21_base.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let m = manifest::unet(&UNetConfig::from_json(path, &golden["config"]).unwrap());
    assert_eq!(m.params(), 865_910_724);
}
