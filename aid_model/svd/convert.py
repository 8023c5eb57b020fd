"""Converting the original single-file SVD key layout to diffusers / transformers modules.

This is the one place where original names become library names. Each ``convert_*``
function maps the original tensors of one component (its prefix already stripped) to the
state dict of the library module, and returns the keys it did not recognise so the
caller can report them instead of dropping them silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from aid_model.svd.layout import UNetLayout, VAELayout

StateDict = dict[str, Tensor]

# ---------------------------------------------------------------------------------------
# Shared renames: (original suffix, library suffix), first match wins, so the temporal
# ('time_stack.') forms come before their spatial namesakes.

_UNET_RESBLOCK = [
    ("time_stack.in_layers.0.", "temporal_res_block.norm1."),
    ("time_stack.in_layers.2.", "temporal_res_block.conv1."),
    ("time_stack.emb_layers.1.", "temporal_res_block.time_emb_proj."),
    ("time_stack.out_layers.0.", "temporal_res_block.norm2."),
    ("time_stack.out_layers.3.", "temporal_res_block.conv2."),
    ("time_mixer.mix_factor", "time_mixer.mix_factor"),
    ("in_layers.0.", "spatial_res_block.norm1."),
    ("in_layers.2.", "spatial_res_block.conv1."),
    ("emb_layers.1.", "spatial_res_block.time_emb_proj."),
    ("out_layers.0.", "spatial_res_block.norm2."),
    ("out_layers.3.", "spatial_res_block.conv2."),
    ("skip_connection.", "spatial_res_block.conv_shortcut."),
]

_UNET_TRANSFORMER = [
    ("time_stack.", "temporal_transformer_blocks."),
    ("time_pos_embed.0.", "time_pos_embed.linear_1."),
    ("time_pos_embed.2.", "time_pos_embed.linear_2."),
    ("time_mixer.mix_factor", "time_mixer.mix_factor"),
    ("transformer_blocks.", "transformer_blocks."),
    ("norm.", "norm."),
    ("proj_in.", "proj_in."),
    ("proj_out.", "proj_out."),
]

_UNET_TOP = [
    ("input_blocks.0.0.", "conv_in."),
    ("time_embed.0.", "time_embedding.linear_1."),
    ("time_embed.2.", "time_embedding.linear_2."),
    ("label_emb.0.0.", "add_embedding.linear_1."),
    ("label_emb.0.2.", "add_embedding.linear_2."),
    ("out.0.", "conv_norm_out."),
    ("out.2.", "conv_out."),
]

_VAE_RESBLOCK = [
    ("nin_shortcut.", "conv_shortcut."),
    ("norm1.", "norm1."),
    ("conv1.", "conv1."),
    ("norm2.", "norm2."),
    ("conv2.", "conv2."),
]

_VAE_VIDEO_RESBLOCK = [
    ("time_stack.in_layers.0.", "temporal_res_block.norm1."),
    ("time_stack.in_layers.2.", "temporal_res_block.conv1."),
    ("time_stack.out_layers.0.", "temporal_res_block.norm2."),
    ("time_stack.out_layers.3.", "temporal_res_block.conv2."),
    ("mix_factor", "time_mixer.mix_factor"),
    *[(old, "spatial_res_block." + new) for old, new in _VAE_RESBLOCK],
]

_VAE_ATTENTION = [
    ("norm.", "group_norm."),
    ("q.", "to_q."),
    ("k.", "to_k."),
    ("v.", "to_v."),
    ("proj_out.", "to_out.0."),
]


def _rename(suffix: str, table: list[tuple[str, str]]) -> str | None:
    for old, new in table:
        if suffix.startswith(old):
            return new + suffix[len(old) :]
    return None


def library_names(
    original_keys: Iterable[str], convert: Callable[[StateDict], tuple[StateDict, list[str]]]
) -> tuple[dict[str, str], list[str]]:
    """Each original key's library name as ``convert`` gives it, and the keys it does not know.

    For the other direction (library weights into a model built in the original layout, as
    ComfyUI builds SVD) from the same tables: ``convert`` is run on one key at a time. Only
    for converters that rename one tensor to one tensor (``convert_unet``, ``convert_vae``).
    """
    names: dict[str, str] = {}
    unknown: list[str] = []
    for key in original_keys:
        converted, rejected = convert({key: _NAME_PROBE})
        if rejected:
            unknown.append(key)
        else:
            (names[key],) = converted
    return names, unknown


_NAME_PROBE = torch.empty(0)  # a value for key-only conversions; 1-D, so nothing reshapes it


def _convert(
    original: StateDict, rename: Callable[[str], str | None]
) -> tuple[StateDict, list[str]]:
    converted: StateDict = {}
    unknown: list[str] = []
    for key, tensor in original.items():
        target = rename(key)
        if target is None:
            unknown.append(key)
        else:
            converted[target] = tensor
    return converted, unknown


# ---------------------------------------------------------------------------------------
# UNet


def _unet_block_tables(layout: UNetLayout) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """Original input/output block index → (kind, diffusers prefix) per sub-module index.

    Input blocks: per level, ``layers_per_block`` blocks (.0 resblock, .1 transformer),
    then one downsampler ('.0.op') except after the last level. Output blocks: per
    level from the deepest, ``layers_per_block + 1`` blocks (.0 resblock, .1 transformer
    when the level has attention) with the upsampler in the last one's final slot.
    """
    levels = len(layout.block_out_channels)
    inputs: dict[int, tuple] = {}
    index = 1
    for level in range(levels):
        for j in range(layout.layers_per_block[level]):
            inputs[index] = (
                f"down_blocks.{level}.resnets.{j}.",
                f"down_blocks.{level}.attentions.{j}.",
            )
            index += 1
        if level < levels - 1:
            inputs[index] = ("downsample", f"down_blocks.{level}.downsamplers.0.conv.")
            index += 1

    outputs: dict[int, tuple] = {}
    index = 0
    for up_level in range(levels):
        level = levels - 1 - up_level
        blocks = layout.layers_per_block[level] + 1
        for j in range(blocks):
            upsampler = (
                f"up_blocks.{up_level}.upsamplers.0.conv."
                if j == blocks - 1 and up_level < levels - 1
                else None
            )
            upsample_slot = 2 if layout.attention_on_level[level] else 1
            outputs[index] = (
                f"up_blocks.{up_level}.resnets.{j}.",
                f"up_blocks.{up_level}.attentions.{j}.",
                upsampler,
                upsample_slot,
            )
            index += 1
    return inputs, outputs


def convert_unet(original: StateDict, layout: UNetLayout) -> tuple[StateDict, list[str]]:
    """``model.diffusion_model.*`` (prefix stripped) → diffusers
    ``UNetSpatioTemporalConditionModel``."""
    return _convert(original, _unet_rename(layout))


def unet_original_names(original_keys: Iterable[str], layout: UNetLayout) -> dict[str, str]:
    """{diffusers name: original name} for the UNet keys ``convert_unet`` recognises: the
    same table read backwards, for hosts that keep the original layout (ComfyUI)."""
    rename = _unet_rename(layout)
    names = {key: rename(key) for key in original_keys}
    return {target: key for key, target in names.items() if target is not None}


def _unet_rename(layout: UNetLayout) -> Callable[[str], str | None]:
    """The original → diffusers name of one UNet key (None: not recognised)."""
    inputs, outputs = _unet_block_tables(layout)
    pattern = re.compile(r"^(input_blocks|output_blocks|middle_block)\.(\d+)\.(?:(\d+)\.)?(.*)$")

    def rename(key: str) -> str | None:
        top = _rename(key, _UNET_TOP)
        if top is not None:
            return top
        match = pattern.match(key)
        if match is None:
            return None
        group, first, second, rest = (
            match.group(1),
            int(match.group(2)),
            match.group(3),
            match.group(4),
        )
        if group == "middle_block":
            # middle_block.0 resnet, .1 transformer, .2 resnet (first is the slot here)
            suffix = (f"{second}." if second is not None else "") + rest
            if first == 1:
                converted = _rename(suffix, _UNET_TRANSFORMER)
                return None if converted is None else "mid_block.attentions.0." + converted
            converted = _rename(suffix, _UNET_RESBLOCK)
            resnet = {0: 0, 2: 1}.get(first)
            if converted is None or resnet is None:
                return None
            return f"mid_block.resnets.{resnet}." + converted
        if second is None:
            return None
        slot = int(second)
        if group == "input_blocks":
            entry = inputs.get(first)
            if entry is None:
                return None
            if entry[0] == "downsample":
                return (
                    entry[1] + rest[len("op.") :] if slot == 0 and rest.startswith("op.") else None
                )
            table, prefix = (
                (_UNET_RESBLOCK, entry[0]) if slot == 0 else (_UNET_TRANSFORMER, entry[1])
            )
            converted = _rename(rest, table) if slot in (0, 1) else None
            return None if converted is None else prefix + converted
        entry = outputs.get(first)
        if entry is None:
            return None
        resnet_prefix, attention_prefix, upsampler, upsample_slot = entry
        if upsampler is not None and slot == upsample_slot and rest.startswith("conv."):
            return upsampler + rest[len("conv.") :]
        if slot == 0:
            converted = _rename(rest, _UNET_RESBLOCK)
            return None if converted is None else resnet_prefix + converted
        if slot == 1:
            converted = _rename(rest, _UNET_TRANSFORMER)
            return None if converted is None else attention_prefix + converted
        return None

    return rename


# ---------------------------------------------------------------------------------------
# VAE


def _attention_weights(converted: StateDict) -> StateDict:
    """The original VAE attention uses 1×1 convs; diffusers' Attention uses Linear layers."""
    for key, tensor in converted.items():
        if ".attentions.0." in key and key.endswith(".weight") and tensor.ndim == 4:
            converted[key] = tensor[:, :, 0, 0]
    return converted


def convert_vae(original: StateDict, layout: VAELayout) -> tuple[StateDict, list[str]]:
    """``first_stage_model.*`` (prefix stripped) → diffusers AutoencoderKLTemporalDecoder.

    The original decoder's ``up`` list runs from the highest resolution (index 0) to the
    lowest; diffusers' ``up_blocks`` run the other way, hence ``levels − 1 − k``.
    """
    levels = len(layout.block_out_channels)

    def rename(key: str) -> str | None:
        for side in ("encoder", "decoder"):
            if not key.startswith(side + "."):
                continue
            rest = key[len(side) + 1 :]
            resblock = _VAE_RESBLOCK if side == "encoder" else _VAE_VIDEO_RESBLOCK
            if rest.startswith(("conv_in.", "conv_out.weight", "conv_out.bias")):
                return f"{side}.{rest}"
            if rest.startswith("norm_out."):
                return f"{side}.conv_norm_out." + rest[len("norm_out.") :]
            if side == "decoder" and rest.startswith("conv_out.time_mix_conv."):
                return "decoder.time_conv_out." + rest[len("conv_out.time_mix_conv.") :]
            if match := re.match(r"^mid\.block_([12])\.(.*)$", rest):
                converted = _rename(match.group(2), resblock)
                index = int(match.group(1)) - 1
                return (
                    None if converted is None else f"{side}.mid_block.resnets.{index}.{converted}"
                )
            if match := re.match(r"^mid\.attn_1\.(.*)$", rest):
                converted = _rename(match.group(1), _VAE_ATTENTION)
                return None if converted is None else f"{side}.mid_block.attentions.0.{converted}"
            direction = "down" if side == "encoder" else "up"
            if match := re.match(rf"^{direction}\.(\d+)\.(.*)$", rest):
                level = int(match.group(1))
                block = level if side == "encoder" else levels - 1 - level
                inner = match.group(2)
                if m := re.match(r"^block\.(\d+)\.(.*)$", inner):
                    converted = _rename(m.group(2), resblock)
                    if converted is None:
                        return None
                    return f"{side}.{direction}_blocks.{block}.resnets.{m.group(1)}.{converted}"
                sampler = "downsample" if side == "encoder" else "upsample"
                if inner.startswith(f"{sampler}.conv."):
                    tail = inner[len(f"{sampler}.conv.") :]
                    return f"{side}.{direction}_blocks.{block}.{sampler}rs.0.conv.{tail}"
            return None
        if key.startswith(("quant_conv.", "post_quant_conv.")):
            return key
        return None

    converted, unknown = _convert(original, rename)
    return _attention_weights(converted), unknown


def identity_quant_conv(latent_channels: int, dtype: torch.dtype) -> StateDict:
    """The SVD checkpoint has no ``quant_conv``; diffusers' class has one, so it becomes
    the identity (exactly what the original computes: moments straight from the encoder)."""
    channels = 2 * latent_channels
    weight = torch.eye(channels, dtype=dtype).reshape(channels, channels, 1, 1)
    return {"quant_conv.weight": weight, "quant_conv.bias": torch.zeros(channels, dtype=dtype)}


# ---------------------------------------------------------------------------------------
# CLIP vision tower (OpenCLIP → transformers)

_CLIP_LAYER = [
    ("ln_1.", "layer_norm1."),
    ("ln_2.", "layer_norm2."),
    ("attn.out_proj.", "self_attn.out_proj."),
    ("mlp.c_fc.", "mlp.fc1."),
    ("mlp.c_proj.", "mlp.fc2."),
]

_CLIP_TOP = {
    "class_embedding": "vision_model.embeddings.class_embedding",
    "conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "ln_post.weight": "vision_model.post_layernorm.weight",
    "ln_post.bias": "vision_model.post_layernorm.bias",
}


def convert_clip_vision(original: StateDict) -> tuple[StateDict, list[str]]:
    """OpenCLIP ``visual.*`` (prefix stripped) → transformers CLIPVisionModelWithProjection.

    OpenCLIP fuses q, k, v into ``in_proj`` (rows q; k; v) and applies ``x @ proj``;
    transformers has separate projections and a Linear, so ``proj`` is transposed.
    """
    converted: StateDict = {}
    unknown: list[str] = []
    layer_pattern = re.compile(r"^transformer\.resblocks\.(\d+)\.(.*)$")
    for key, tensor in original.items():
        if key in _CLIP_TOP:
            converted[_CLIP_TOP[key]] = tensor
            continue
        if key == "proj":
            converted["visual_projection.weight"] = tensor.t().contiguous()
            continue
        match = layer_pattern.match(key)
        if match is None:
            unknown.append(key)
            continue
        prefix = f"vision_model.encoder.layers.{match.group(1)}."
        rest = match.group(2)
        if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
            kind = "weight" if rest.endswith("weight") else "bias"
            parts = tensor.chunk(3, dim=0)
            for name, part in zip(("q_proj", "k_proj", "v_proj"), parts, strict=True):
                converted[f"{prefix}self_attn.{name}.{kind}"] = part.contiguous()
            continue
        renamed = _rename(rest, _CLIP_LAYER)
        if renamed is None:
            unknown.append(key)
        else:
            converted[prefix + renamed] = tensor
    return converted, unknown
