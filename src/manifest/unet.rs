//! diffusers `UNet2DConditionModel` (`unets/unet_2d_condition.py`) with the SD-family blocks of
//! `unets/unet_2d_blocks.py` and `transformers/transformer_2d.py` / `attention.py`.

use super::Manifest;
use crate::config::{DownBlock, UNetConfig, UNetLevel, UpBlock};

pub fn unet(cfg: &UNetConfig) -> Manifest {
    let mut m = Manifest::default();
    let levels = &cfg.levels;
    let n = levels.len();
    let c0 = levels[0].channels;
    let temb = cfg.time_embed_dim;
    // ResnetBlock2D's time projection: `2·out` when the embedding gives scale and shift.
    let temb_proj = |out: usize| Some((temb, if cfg.time_scale_shift { 2 * out } else { out }));

    m.conv("conv_in", cfg.in_channels, c0, cfg.conv_in_kernel);
    m.linear("time_embedding.linear_1", c0, temb, true);
    m.linear("time_embedding.linear_2", temb, temb, true);

    // Down path.
    let mut prev = c0;
    for (i, level) in levels.iter().enumerate() {
        let out = level.channels;
        for j in 0..level.layers {
            let inp = if j == 0 { prev } else { out };
            m.resnet(
                &format!("down_blocks.{i}.resnets.{j}"),
                inp,
                out,
                temb_proj(out),
            );
            if level.down == DownBlock::CrossAttn {
                transformer(
                    &mut m,
                    &format!("down_blocks.{i}.attentions.{j}"),
                    cfg,
                    level,
                );
            }
        }
        if i + 1 < n {
            m.conv(&format!("down_blocks.{i}.downsamplers.0.conv"), out, out, 3);
        }
        prev = out;
    }

    // Middle: resnet, transformer, resnet at the deepest width.
    if cfg.mid_block {
        let deepest = &levels[n - 1];
        let c = deepest.channels;
        m.resnet("mid_block.resnets.0", c, c, temb_proj(c));
        transformer(&mut m, "mid_block.attentions.0", cfg, deepest);
        m.resnet("mid_block.resnets.1", c, c, temb_proj(c));
    }

    // Up path: block i mirrors level n-1-i, has one resnet more, and concatenates skips.
    let mut out = levels[n - 1].channels;
    for (i, &kind) in cfg.up_blocks.iter().enumerate() {
        let level = &levels[n - 1 - i];
        let prev_out = out;
        out = level.channels;
        let skip_in = levels[(n - 1 - i).saturating_sub(1)].channels;
        let layers = level.layers + 1;
        for j in 0..layers {
            let skip = if j + 1 == layers { skip_in } else { out };
            let res_in = if j == 0 { prev_out } else { out };
            let name = format!("up_blocks.{i}.resnets.{j}");
            m.resnet(&name, res_in + skip, out, temb_proj(out));
            if kind == UpBlock::CrossAttn {
                transformer(&mut m, &format!("up_blocks.{i}.attentions.{j}"), cfg, level);
            }
        }
        if i + 1 < n {
            m.conv(&format!("up_blocks.{i}.upsamplers.0.conv"), out, out, 3);
        }
    }

    m.norm("conv_norm_out", c0);
    m.conv("conv_out", c0, cfg.out_channels, cfg.conv_out_kernel);
    m
}

/// `Transformer2DModel`: GroupNorm, proj_in, `BasicTransformerBlock`s, proj_out.
fn transformer(m: &mut Manifest, name: &str, cfg: &UNetConfig, level: &UNetLevel) {
    let c = level.channels;
    m.norm(&format!("{name}.norm"), c);
    project(m, &format!("{name}.proj_in"), c, cfg.use_linear_projection);
    for k in 0..level.transformer_layers {
        let b = format!("{name}.transformer_blocks.{k}");
        let ctx = level.cross_attention_dim;
        let self_kv = if level.only_cross_attention { ctx } else { c };
        m.norm(&format!("{b}.norm1"), c);
        attention(m, &format!("{b}.attn1"), c, self_kv);
        m.norm(&format!("{b}.norm2"), c);
        attention(m, &format!("{b}.attn2"), c, ctx);
        m.norm(&format!("{b}.norm3"), c);
        // GEGLU feed-forward: proj to 2·4c (value and gate), then back from 4c.
        m.linear(&format!("{b}.ff.net.0.proj"), c, 8 * c, true);
        m.linear(&format!("{b}.ff.net.2"), 4 * c, c, true);
    }
    project(m, &format!("{name}.proj_out"), c, cfg.use_linear_projection);
}

/// `Attention` without q/k/v bias; `kv` is the width keys and values are projected from.
fn attention(m: &mut Manifest, name: &str, c: usize, kv: usize) {
    m.linear(&format!("{name}.to_q"), c, c, false);
    m.linear(&format!("{name}.to_k"), kv, c, false);
    m.linear(&format!("{name}.to_v"), kv, c, false);
    m.linear(&format!("{name}.to_out.0"), c, c, true);
}

/// proj_in / proj_out: `Linear(c, c)` or a 1×1 `Conv2d(c, c)`.
fn project(m: &mut Manifest, name: &str, c: usize, linear: bool) {
    if linear {
        m.linear(name, c, c, true);
    } else {
        m.conv(name, c, c, 1);
    }
}
