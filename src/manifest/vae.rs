//! diffusers `AutoencoderKL`: `Encoder` / `Decoder` in `autoencoders/vae.py`, blocks in
//! `unets/unet_2d_blocks.py` (`DownEncoderBlock2D`, `UpDecoderBlock2D`, `UNetMidBlock2D`).

use super::Manifest;
use crate::config::VaeConfig;

pub fn vae(cfg: &VaeConfig) -> Manifest {
    let mut m = Manifest::default();
    let ch = &cfg.block_out_channels;
    let last = ch[ch.len() - 1];

    // Encoder: conv_in → down blocks (downsample all but the last) → mid → norm, SiLU, conv_out.
    m.conv("encoder.conv_in", cfg.in_channels, ch[0], 3);
    let mut prev = ch[0];
    for (i, &out) in ch.iter().enumerate() {
        for j in 0..cfg.layers_per_block {
            let inp = if j == 0 { prev } else { out };
            m.resnet(
                &format!("encoder.down_blocks.{i}.resnets.{j}"),
                inp,
                out,
                None,
            );
        }
        if i + 1 < ch.len() {
            m.conv(
                &format!("encoder.down_blocks.{i}.downsamplers.0.conv"),
                out,
                out,
                3,
            );
        }
        prev = out;
    }
    mid_block(
        &mut m,
        "encoder.mid_block",
        last,
        cfg.mid_block_add_attention,
    );
    m.norm("encoder.conv_norm_out", last);
    m.conv("encoder.conv_out", last, 2 * cfg.latent_channels, 3);

    // Decoder: conv_in → mid → up blocks (reversed widths, one extra resnet) → norm, SiLU, conv_out.
    m.conv("decoder.conv_in", cfg.latent_channels, last, 3);
    mid_block(
        &mut m,
        "decoder.mid_block",
        last,
        cfg.mid_block_add_attention,
    );
    let mut prev = last;
    for (i, &out) in ch.iter().rev().enumerate() {
        for j in 0..cfg.layers_per_block + 1 {
            let inp = if j == 0 { prev } else { out };
            m.resnet(
                &format!("decoder.up_blocks.{i}.resnets.{j}"),
                inp,
                out,
                None,
            );
        }
        if i + 1 < ch.len() {
            m.conv(
                &format!("decoder.up_blocks.{i}.upsamplers.0.conv"),
                out,
                out,
                3,
            );
        }
        prev = out;
    }
    m.norm("decoder.conv_norm_out", ch[0]);
    m.conv("decoder.conv_out", ch[0], cfg.out_channels, 3);

    if cfg.use_quant_conv {
        let z = 2 * cfg.latent_channels;
        m.conv("quant_conv", z, z, 1);
    }
    if cfg.use_post_quant_conv {
        m.conv(
            "post_quant_conv",
            cfg.latent_channels,
            cfg.latent_channels,
            1,
        );
    }
    m
}

/// `UNetMidBlock2D` without time embedding: resnet, (single-head attention), resnet.
fn mid_block(m: &mut Manifest, name: &str, c: usize, attention: bool) {
    m.resnet(&format!("{name}.resnets.0"), c, c, None);
    if attention {
        let a = format!("{name}.attentions.0");
        m.norm(&format!("{a}.group_norm"), c);
        for proj in ["to_q", "to_k", "to_v", "to_out.0"] {
            m.linear(&format!("{a}.{proj}"), c, c, true);
        }
    }
    m.resnet(&format!("{name}.resnets.1"), c, c, None);
}
