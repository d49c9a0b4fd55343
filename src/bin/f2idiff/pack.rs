//! `f2idiff pack` and `f2idiff info`.

use f2idiff::config::DinoContext;
use f2idiff::convert::{PackOptions, pack_folder};
use f2idiff::pack::Pack;
use std::collections::BTreeMap;

pub fn pack(
    dir: &std::path::Path,
    out: &std::path::Path,
    opts: &PackOptions,
) -> f2idiff::Result<()> {
    if let Some(a) = opts.lora_alpha
        && !(a.is_finite() && a > 0.0)
    {
        return Err(f2idiff::Error::InvalidArgument(format!(
            "--lora-alpha {a} must be positive"
        )));
    }
    let s = pack_folder(dir, out, opts)?;
    println!(
        "wrote {}: {} tensors, {} bytes, weights {}, LoRA {:?}",
        out.display(),
        s.tensors,
        s.bytes,
        opts.dtype,
        s.lora
    );
    for a in &s.adapters {
        println!(
            "  adapter {}/{} from {}: {} targets, rank {:?}, scale {:?}",
            a.module, a.name, a.source, a.targets, a.ranks, a.scales
        );
    }
    if s.skipped > 0 {
        println!(
            "  {} source tensors not used by the configs were left out",
            s.skipped
        );
    }
    Ok(())
}

pub fn info(path: &std::path::Path, verify: bool) -> f2idiff::Result<()> {
    // Mapped: describing a pack reads its header and table, not gigabytes of weights.
    let pack = Pack::open_with(path, f2idiff::pack::PackLoad::Mapped)?;
    let h = pack.header();
    let c = pack.configs();
    println!(
        "{}: f2idiff pack v{}, {} bytes, created by {}",
        path.display(),
        pack.preamble().version,
        pack.file_len(),
        h.provenance.tool
    );
    println!(
        "pipeline: scale {}, timestep {}, DINOv2 input {}² of each {}, tile {}",
        c.pipeline.scale,
        c.pipeline.timestep,
        c.pipeline.dino_image_size,
        match c.pipeline.dino_context {
            DinoContext::Tile => "tile",
            DinoContext::Image => "image",
        },
        c.pipeline
            .tile
            .map_or("from the memory budget".to_string(), |t| format!("{t}"))
    );
    println!(
        "vae:      block_out_channels {:?}, layers_per_block {}, latent {}, scaling_factor {}",
        c.vae.block_out_channels,
        c.vae.layers_per_block,
        c.vae.latent_channels,
        c.vae.scaling_factor
    );
    let u = &c.unet;
    println!(
        "unet:     block_out_channels {:?}, heads {:?}, cross_attention_dim {}, linear projection {}",
        u.levels.iter().map(|l| l.channels).collect::<Vec<_>>(),
        u.levels.iter().map(|l| l.heads).collect::<Vec<_>>(),
        u.context_dim().unwrap_or(0),
        u.use_linear_projection
    );
    let d = &c.dinov2;
    println!(
        "dinov2:   hidden {}, layers {}, heads {}, patch {}, image {}, registers {}, swiglu {}",
        d.hidden_size,
        d.num_hidden_layers,
        d.num_attention_heads,
        d.patch_size,
        d.image_size,
        d.register_tokens(),
        d.use_swiglu_ffn
    );
    match h.cond_proj {
        Some(cp) => println!("cond_proj: {} → {}", cp.in_features, cp.out_features),
        None => println!("cond_proj: none"),
    }
    println!("lora:     {:?}", h.lora.mode);
    for a in &h.lora.adapters {
        println!(
            "  {}/{} from {}: {} targets, rank {:?}, scale {:?}",
            a.module, a.name, a.source, a.targets, a.ranks, a.scales
        );
    }

    let mut per: BTreeMap<(String, String), (usize, u64)> = BTreeMap::new();
    for e in pack.entries() {
        let module = e.name.split('.').next().unwrap_or("").to_string();
        let slot = per.entry((module, e.dtype.name().to_string())).or_default();
        slot.0 += 1;
        slot.1 += e.len;
    }
    println!("tensors:  {}", pack.entries().len());
    for ((module, dtype), (n, bytes)) in &per {
        println!("  {module:<10} {dtype:<5} {n:>6} tensors {bytes:>14} bytes");
    }
    println!("sources:");
    for f in &h.provenance.files {
        println!("  {} {:>12} bytes  sha256 {}", f.path, f.bytes, f.sha256);
    }
    if verify {
        pack.verify()?;
        println!("verify:   all {} checksums match", pack.entries().len());
    }
    Ok(())
}
