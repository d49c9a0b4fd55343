//! transformers `Dinov2Model` / `Dinov2WithRegistersModel` (`models/dinov2/modeling_dinov2.py`).

use super::Manifest;
use crate::config::Dinov2Config;

pub fn dinov2(cfg: &Dinov2Config) -> Manifest {
    let mut m = Manifest::default();
    let h = cfg.hidden_size;
    let p = cfg.patch_size;
    let grid = cfg.grid();

    m.push("embeddings.cls_token".into(), vec![1, 1, h]);
    if cfg.has_mask_token() {
        m.push("embeddings.mask_token".into(), vec![1, h]);
    }
    if cfg.register_tokens() > 0 {
        m.push(
            "embeddings.register_tokens".into(),
            vec![1, cfg.register_tokens(), h],
        );
    }
    m.push(
        "embeddings.position_embeddings".into(),
        vec![1, grid * grid + 1, h],
    );
    m.push(
        "embeddings.patch_embeddings.projection.weight".into(),
        vec![h, cfg.num_channels, p, p],
    );
    m.push(
        "embeddings.patch_embeddings.projection.bias".into(),
        vec![h],
    );

    let mlp = cfg.mlp_hidden();
    for i in 0..cfg.num_hidden_layers {
        let l = format!("encoder.layer.{i}");
        m.norm(&format!("{l}.norm1"), h);
        for proj in ["query", "key", "value"] {
            m.linear(
                &format!("{l}.attention.attention.{proj}"),
                h,
                h,
                cfg.qkv_bias,
            );
        }
        m.linear(&format!("{l}.attention.output.dense"), h, h, true);
        m.push(format!("{l}.layer_scale1.lambda1"), vec![h]);
        m.norm(&format!("{l}.norm2"), h);
        if cfg.use_swiglu_ffn {
            m.linear(&format!("{l}.mlp.weights_in"), h, 2 * mlp, true);
            m.linear(&format!("{l}.mlp.weights_out"), mlp, h, true);
        } else {
            m.linear(&format!("{l}.mlp.fc1"), h, mlp, true);
            m.linear(&format!("{l}.mlp.fc2"), mlp, h, true);
        }
        m.push(format!("{l}.layer_scale2.lambda1"), vec![h]);
    }
    m.norm("layernorm", h);
    m
}
