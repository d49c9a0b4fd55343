"""The three networks of the demo model, in the layouts our converter reads (README "The model
folder"): diffusers AutoencoderKL, transformers Dinov2Model, diffusers UNet2DConditionModel.

Sized to train meaningfully in about an hour on 2 CPU cores, and to pack into <= 16 MB in f16:
- VAE "f4c16": 3 levels (16, 32, 64 channels; x4 down), 16 latent channels, one resnet per level, no
  mid-block attention. A lighter compression than SD's f8d4 (48 -> 16 values per 4x4 pixels instead of
  192 -> 4 per 8x8): the VAE's reconstruction bounds the SR's PSNR, and its latent grid is the LR grid.
- DINOv2: ViT with patch 14, hidden 96, 4 layers, 4 heads, layerscale; input 56x56 (a 4x4 token grid +
  CLS), trained from scratch with the FM (no pretrained DINOv2 weights are available here).
- U-Net "Eff"-style: (64, 96, 128) channels, one resnet per level, cross-attention at the two lower
  levels and the mid block (one head of 32 per 32 channels... see UNET), cross_attention_dim = the DINOv2
  hidden size (no cond_proj).
"""

from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import Dinov2Config, Dinov2Model

DINO_IMAGE_SIZE = 56

VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 32, 64),
    layers_per_block=1,
    act_fn="silu",
    latent_channels=16,
    norm_num_groups=8,
    sample_size=64,
    scaling_factor=1.0,  # replaced after stage 0 by 1 / std of the HR latents
    mid_block_add_attention=False,
)

DINO = dict(
    hidden_size=96,
    num_hidden_layers=4,
    num_attention_heads=4,
    mlp_ratio=4,
    hidden_act="gelu",
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    initializer_range=0.02,
    layer_norm_eps=1e-6,
    image_size=DINO_IMAGE_SIZE,
    patch_size=14,
    num_channels=3,
    qkv_bias=True,
    layerscale_value=1.0,
    drop_path_rate=0.0,
    use_swiglu_ffn=False,
)

UNET = dict(
    sample_size=16,
    in_channels=VAE["latent_channels"],
    out_channels=VAE["latent_channels"],
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(64, 96, 128),
    layers_per_block=1,
    attention_head_dim=(2, 3, 4),  # diffusers' name: this is the number of heads (32 channels each)
    cross_attention_dim=DINO["hidden_size"],
    norm_num_groups=16,
    transformer_layers_per_block=1,
    use_linear_projection=True,
)

# "tile": the model runs on 128 px output patches, as it was trained (the larger training patch; DINOv2
# then sees a patch, not a whole photo shrunk to 56x56). Checked by choose_tile.py on the validation
# photos (run of 2026-12-02): mean PSNR-Y 26.57 / 28.05 dB (realistic / clean LR) at 128 vs 26.54 /
# 28.02 at 256 and 26.54 / 28.03 whole-image.
F2I = {"scale": 4, "timestep": 999, "dino_image_size": DINO_IMAGE_SIZE, "tile": 128}

# PEFT LoRA targets (the converter merges them at pack time): everything the reference goldens cover
LORA_UNET_TARGETS = (
    r"(conv_in|conv_out|time_embedding\.linear_[12]"
    r"|.*\.(to_q|to_k|to_v|to_out\.0|conv1|conv2|conv_shortcut|time_emb_proj"
    r"|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2)"
    r"|.*\.(downsamplers|upsamplers)\.0\.conv)"
)
LORA_VAE_TARGETS = r"(quant_conv|encoder\.(conv_in|conv_out)|encoder\..*\.(conv1|conv2|conv_shortcut|conv))"
# the decoder's too (refine.py's round 6): the decoder is the only part that runs at output resolution
LORA_VAE_DECODER_TARGETS = (r"(quant_conv|post_quant_conv|(en|de)coder\.(conv_in|conv_out)"
                            r"|(en|de)coder\..*\.(conv1|conv2|conv_shortcut|conv))")


def new_vae():
    return AutoencoderKL(**VAE)


def new_dino():
    return Dinov2Model(Dinov2Config(**DINO))


def new_unet():
    return UNet2DConditionModel(**UNET)


def count(m):
    return sum(p.numel() for p in m.parameters())
