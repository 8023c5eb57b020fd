"""Sizes of the miniature AID: the same classes as SVD and OpenCLIP, scaled down.

64×64 frames, T = 8; the VAE downsamples ×4 (16×16 latents with 8 channels, where SVD has
4: at this size 4 channels blurred the shapes), so that an object of 10–16 px spans 2.5–4
latent cells a side; the UNet halves the grid twice more, so sizes are multiples of 16.
Every level (16×16, 8×8, 4×4) has spatio-temporal transformers, and so AID's MCondition
cross-attention and adapters: with res blocks only at 16×16 the text barely reached the
output after all 4,500 steps of stage 2. Attention there costs 2.5× that layout's step
(lab/NOTES.md, "The finer grid" and the layout screens after it). The context width (64)
is shared by the CLIP image projection, the text tower and the UNet's cross-attention, as
1024 is in SVD.
"""

from __future__ import annotations

IMAGE_SIZE = 64
NUM_FRAMES = 8
FPS = 8
CONTEXT_WIDTH = 64

VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 3,
    "block_out_channels": (32, 32, 64),
    "layers_per_block": 1,
    "latent_channels": 8,
}

UNET = {
    "in_channels": 16,  # 8 noisy + 8 concat latent channels
    "out_channels": 8,
    "down_block_types": ("CrossAttnDownBlockSpatioTemporal",) * 3,
    "up_block_types": ("CrossAttnUpBlockSpatioTemporal",) * 3,
    "block_out_channels": (32, 32, 64),
    "layers_per_block": 1,
    "transformer_layers_per_block": 1,
    "cross_attention_dim": CONTEXT_WIDTH,
    # 32 channels is the least a level can have: every GroupNorm has 32 groups.
    "num_attention_heads": (2, 2, 4),  # 16 channels a head
    "addition_time_embed_dim": 256,  # SVD's micro-conditioning, unchanged
    "projection_class_embeddings_input_dim": 768,
    "num_frames": NUM_FRAMES,
}
UNET_HEAD_CHANNELS = 16

# Random, frozen towers: no pretrained CLIP exists at this size; random projections still
# give every image and every text its own stable embedding, which is what AID reads.
IMAGE_ENCODER = {
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "patch_size": 16,
    "image_size": IMAGE_SIZE,
    "projection_dim": CONTEXT_WIDTH,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}

TEXT_ENCODER = {
    "hidden_size": CONTEXT_WIDTH,
    "intermediate_size": 256,
    "num_hidden_layers": 3,  # AID reads the penultimate layer
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "projection_dim": CONTEXT_WIDTH,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}
