"""The original single-file SVD layout (Stability's ``sgm`` code, as in ``svd_xt.safetensors``):
which key prefixes hold which model, and every size inferred from tensor shapes.

Sizes come from shapes alone so that a tiny random test checkpoint and the real 1.5 B
model go through the same code. Head counts cannot be read from weights: they are
arguments (``unet_head_channels``, ``clip_num_heads``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field

from aid_model.safetensors_io import CheckpointError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "conditioner.embedders.0.open_clip.model.visual."
COMPONENT_PREFIXES = {"unet": UNET_PREFIX, "vae": VAE_PREFIX, "image_encoder": CLIP_PREFIX}

# OpenCLIP ViT-H/14 (SVD's image encoder): 1280 wide, 16 heads of 80 channels.
OPENCLIP_VISION_HEAD_CHANNELS = 80
SVD_ADDED_TIME_IDS = 3  # fps_id, motion_bucket_id, cond_aug

Shapes = dict[str, tuple[int, ...]]


@dataclass
class UNetLayout:
    in_channels: int
    out_channels: int
    block_out_channels: list[int]
    layers_per_block: list[int]
    attention_on_level: list[bool]
    transformer_layers_per_block: list[int]
    cross_attention_dim: int
    addition_time_embed_dim: int
    projection_class_embeddings_input_dim: int
    num_attention_heads: list[int]

    def diffusers_config(self) -> dict:
        """Keyword arguments for diffusers' ``UNetSpatioTemporalConditionModel``."""
        levels = len(self.block_out_channels)
        down = [
            "CrossAttnDownBlockSpatioTemporal" if attn else "DownBlockSpatioTemporal"
            for attn in self.attention_on_level
        ]
        up = [
            "CrossAttnUpBlockSpatioTemporal" if attn else "UpBlockSpatioTemporal"
            for attn in reversed(self.attention_on_level)
        ]
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "down_block_types": tuple(down),
            "up_block_types": tuple(up),
            "block_out_channels": tuple(self.block_out_channels),
            "layers_per_block": tuple(self.layers_per_block),
            "transformer_layers_per_block": tuple(self.transformer_layers_per_block),
            "cross_attention_dim": self.cross_attention_dim,
            "addition_time_embed_dim": self.addition_time_embed_dim,
            "projection_class_embeddings_input_dim": self.projection_class_embeddings_input_dim,
            "num_attention_heads": tuple(self.num_attention_heads[:levels]),
        }


@dataclass
class VAELayout:
    in_channels: int
    out_channels: int
    block_out_channels: list[int]
    layers_per_block: int
    latent_channels: int
    decoder_mid_resnets: int = 2  # the original decoder always has block_1 and block_2

    def diffusers_config(self) -> dict:
        """Keyword arguments for diffusers' ``AutoencoderKLTemporalDecoder``."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "down_block_types": ("DownEncoderBlock2D",) * len(self.block_out_channels),
            "block_out_channels": tuple(self.block_out_channels),
            "layers_per_block": self.layers_per_block,
            "latent_channels": self.latent_channels,
        }


@dataclass
class VisionLayout:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    patch_size: int
    image_size: int
    projection_dim: int
    num_channels: int = 3

    def transformers_config(self) -> dict:
        """Keyword arguments for transformers' ``CLIPVisionConfig`` (OpenCLIP: exact GELU)."""
        return {**asdict(self), "hidden_act": "gelu", "layer_norm_eps": 1e-5}


@dataclass
class SVDLayout:
    """Every size of an SVD checkpoint; ``diffusers`` configs are derived from it."""

    unet: UNetLayout
    vae: VAELayout
    image_encoder: VisionLayout
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def split_components(shapes: Shapes) -> dict[str, Shapes]:
    """Groups keys by component (prefix stripped); keys of no component go under 'other'."""
    groups: dict[str, Shapes] = {name: {} for name in [*COMPONENT_PREFIXES, "other"]}
    for key, shape in shapes.items():
        for name, prefix in COMPONENT_PREFIXES.items():
            if key.startswith(prefix):
                groups[name][key[len(prefix) :]] = shape
                break
        else:
            groups["other"][key] = shape
    return groups


def summarize_prefixes(keys, depth: int = 2, limit: int = 8) -> str:
    """'812 × unet.down_blocks, 40 × vae.encoder' — for error messages."""
    counts = Counter(".".join(key.split(".")[:depth]) for key in keys)
    parts = [f"{count} × {prefix}.*" for prefix, count in counts.most_common(limit)]
    more = len(counts) - limit
    return ", ".join(parts) + (f", and {more} more prefixes" if more > 0 else "")


def _require(shapes: Shapes, key: str, what: str) -> tuple[int, ...]:
    if key not in shapes:
        raise CheckpointError(f"SVD checkpoint has no {what} tensor '{key}'")
    return shapes[key]


def _block_indices(shapes: Shapes, group: str) -> list[int]:
    pattern = re.compile(rf"^{group}\.(\d+)\.")
    return sorted({int(m.group(1)) for key in shapes if (m := pattern.match(key))})


def infer_unet_layout(shapes: Shapes, head_channels: int) -> UNetLayout:
    """Reads the UNet's sizes from ``model.diffusion_model.*`` shapes (prefix stripped)."""
    conv_in = _require(shapes, "input_blocks.0.0.weight", "UNet input conv")
    model_channels, in_channels = conv_in[0], conv_in[1]
    out_channels = _require(shapes, "out.2.weight", "UNet output conv")[0]
    label = _require(shapes, "label_emb.0.0.weight", "micro-conditioning embedding")
    adm_channels = label[1]
    if adm_channels % SVD_ADDED_TIME_IDS:
        raise CheckpointError(
            f"micro-conditioning input has {adm_channels} channels, expected 3 sinusoids of "
            "equal width (fps_id, motion_bucket_id, cond_aug)"
        )

    # Walk input blocks in order: resblocks belong to the current level, a downsampler
    # ('.0.op') closes it. This yields res blocks, attention and width per level.
    channels: list[int] = []
    res_blocks: list[int] = []
    attention: list[bool] = []
    depth: list[int] = []
    level_open = False
    for index in _block_indices(shapes, "input_blocks")[1:]:
        block = f"input_blocks.{index}"
        if f"{block}.0.op.weight" in shapes:
            level_open = False
            continue
        width = _require(shapes, f"{block}.0.out_layers.3.weight", "UNet resblock")[0]
        if not level_open:
            channels.append(width)
            res_blocks.append(0)
            attention.append(False)
            depth.append(0)
            level_open = True
        res_blocks[-1] += 1
        layers = _block_indices(shapes, f"{block}.1.transformer_blocks")
        if layers:
            attention[-1] = True
            depth[-1] = max(depth[-1], len(layers))
    if not channels:
        raise CheckpointError("SVD checkpoint has no UNet input blocks after the input conv")

    context = None
    for key, shape in shapes.items():
        if key.endswith("transformer_blocks.0.attn2.to_k.weight"):
            context = shape[1]
            break
    if context is None:
        raise CheckpointError(
            "SVD UNet has no cross-attention (attn2.to_k): cannot read the context width"
        )
    for width in channels:
        if width % head_channels:
            raise CheckpointError(
                f"UNet width {width} is not a multiple of unet_head_channels={head_channels}; "
                "pass the head width the checkpoint was trained with (SVD: 64)"
            )
    if channels[0] != model_channels:
        raise CheckpointError(
            f"UNet input conv has {model_channels} channels but the first level {channels[0]}"
        )
    return UNetLayout(
        in_channels=in_channels,
        out_channels=out_channels,
        block_out_channels=channels,
        layers_per_block=res_blocks,
        attention_on_level=attention,
        transformer_layers_per_block=[max(d, 1) for d in depth],
        cross_attention_dim=context,
        addition_time_embed_dim=adm_channels // SVD_ADDED_TIME_IDS,
        projection_class_embeddings_input_dim=adm_channels,
        num_attention_heads=[width // head_channels for width in channels],
    )


def infer_vae_layout(shapes: Shapes) -> VAELayout:
    """Reads the VAE's sizes from ``first_stage_model.*`` shapes (prefix stripped)."""
    conv_in = _require(shapes, "encoder.conv_in.weight", "VAE encoder input conv")
    levels = _block_indices(shapes, "encoder.down")
    if not levels:
        raise CheckpointError("SVD VAE has no encoder.down.* blocks")
    widths = [
        _require(shapes, f"encoder.down.{level}.block.0.conv1.weight", "VAE encoder block")[0]
        for level in levels
    ]
    res_blocks = len(_block_indices(shapes, "encoder.down.0.block"))
    moments = _require(shapes, "encoder.conv_out.weight", "VAE encoder output conv")[0]
    image_out = _require(shapes, "decoder.conv_out.weight", "VAE decoder output conv")[0]
    mid_resnets = sum(f"decoder.mid.block_{i}.conv1.weight" in shapes for i in (1, 2))
    return VAELayout(
        in_channels=conv_in[1],
        out_channels=image_out,
        block_out_channels=widths,
        layers_per_block=res_blocks,
        latent_channels=moments // 2,
        decoder_mid_resnets=mid_resnets,
    )


def infer_vision_layout(shapes: Shapes, num_heads: int | None) -> VisionLayout:
    """Reads the OpenCLIP vision tower's sizes (prefix stripped)."""
    patch = _require(shapes, "conv1.weight", "CLIP patch embedding")
    width, patch_size = patch[0], patch[2]
    tokens = _require(shapes, "positional_embedding", "CLIP position embedding")[0]
    grid = round((tokens - 1) ** 0.5)
    if grid * grid != tokens - 1:
        raise CheckpointError(f"CLIP has {tokens} positions, not 1 + a square number of patches")
    layers = len(_block_indices(shapes, "transformer.resblocks"))
    mlp = _require(shapes, "transformer.resblocks.0.mlp.c_fc.weight", "CLIP MLP")[0]
    projection = _require(shapes, "proj", "CLIP projection")[1]
    if num_heads is None:
        if width % OPENCLIP_VISION_HEAD_CHANNELS:
            raise CheckpointError(
                f"CLIP vision width {width} is not a multiple of 80 (the OpenCLIP ViT-H "
                "convention); pass clip_num_heads explicitly"
            )
        num_heads = width // OPENCLIP_VISION_HEAD_CHANNELS
    if width % num_heads:
        raise CheckpointError(f"CLIP width {width} is not divisible by clip_num_heads={num_heads}")
    return VisionLayout(
        hidden_size=width,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=num_heads,
        patch_size=patch_size,
        image_size=grid * patch_size,
        projection_dim=projection,
    )


def infer_svd_layout(
    shapes: Shapes, unet_head_channels: int = 64, clip_num_heads: int | None = None
) -> SVDLayout:
    """The whole layout of an original single-file SVD checkpoint from its key shapes.

    Raises CheckpointError naming what was found when the keys are not an SVD checkpoint.
    """
    groups = split_components(shapes)
    missing = [name for name in COMPONENT_PREFIXES if not groups[name]]
    if missing:
        expected = ", ".join(f"{COMPONENT_PREFIXES[name]}* ({name})" for name in missing)
        raise CheckpointError(
            f"not an SVD checkpoint: no keys {expected}. Found {len(shapes)} keys: "
            f"{summarize_prefixes(shapes)}. For a diffusers folder pass the folder, not a file."
        )
    if not any(".time_stack." in key for key in groups["unet"]):
        raise CheckpointError(
            "the UNet in this file has no temporal layers (time_stack): it is an image model, "
            "not Stable Video Diffusion"
        )
    return SVDLayout(
        unet=infer_unet_layout(groups["unet"], unet_head_channels),
        vae=infer_vae_layout(groups["vae"]),
        image_encoder=infer_vision_layout(groups["image_encoder"], clip_num_heads),
    )
