"""OpenCLIP text-tower state dict → transformers `CLIPTextModelWithProjection`, in one place.

OpenCLIP layout (``open_clip_pytorch_model`` files; SD 2.x single files under
``cond_stage_model.model.``), per text tower of width w, L blocks, embedding size e:

    token_embedding.weight                  (vocab, w)
    positional_embedding                    (context, w)
    transformer.resblocks.{i}.ln_1.*        pre-attention LayerNorm
    transformer.resblocks.{i}.attn.in_proj_weight / _bias   (3w, w) / (3w,): q; k; v rows
    transformer.resblocks.{i}.attn.out_proj.*
    transformer.resblocks.{i}.ln_2.*        pre-MLP LayerNorm
    transformer.resblocks.{i}.mlp.c_fc.* / mlp.c_proj.*     (4w, w) / (w, 4w)
    ln_final.*
    text_projection                         (w, e), used as x @ P
    logit_scale                             scalar, image-text similarity only
"""

from __future__ import annotations

import re

import torch
from transformers import CLIPTextConfig

# The two open_clip special ids sit at the end of its vocabulary (49406, 49407 for ViT-H/14).
_SOT_FROM_END = 2
_EOT_FROM_END = 1
# OpenCLIP's convention for the text tower when a config names no head count.
OPENCLIP_HEAD_WIDTH = 64

_BLOCK_KEY = re.compile(r"transformer\.resblocks\.(\d+)\.(.+)")
_BLOCK_RENAMES = {
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}
_FUSED_QKV = {"attn.in_proj_weight": "weight", "attn.in_proj_bias": "bias"}
_TOP_RENAMES = {
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
}
_PROJECTION = "text_projection"
# Not text-tower weights: the CLIP logit scale and the causal mask buffer (rebuilt by the
# model; old open_clip versions saved it).
_NON_TEXT_KEYS = ("logit_scale", "attn_mask")
_NON_TEXT_PREFIXES = ("visual.",)


def is_non_text_key(key: str) -> bool:
    """True for OpenCLIP keys that belong to the image side or to no tower (skipped silently)."""
    return key in _NON_TEXT_KEYS or key.startswith(_NON_TEXT_PREFIXES)


def _block_indices(state_dict: dict[str, torch.Tensor]) -> list[int]:
    indices = {int(m.group(1)) for key in state_dict if (m := _BLOCK_KEY.fullmatch(key))}
    return sorted(indices)


def expected_openclip_keys(num_layers: int) -> list[str]:
    """Every key an OpenCLIP text tower of ``num_layers`` blocks must have."""
    block_params = [*_BLOCK_RENAMES, *_FUSED_QKV]
    blocks = [
        f"transformer.resblocks.{i}.{name}" for i in range(num_layers) for name in block_params
    ]
    return [*_TOP_RENAMES, *blocks, _PROJECTION]


def _check_complete(state_dict: dict[str, torch.Tensor], source: str) -> int:
    """Raise on missing keys; return the number of blocks."""
    indices = _block_indices(state_dict)
    num_layers = indices[-1] + 1 if indices else 0
    missing = [key for key in expected_openclip_keys(num_layers) if key not in state_dict]
    if num_layers == 0:
        missing.append("transformer.resblocks.0.*")
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" … ({len(missing)} in all)" if len(missing) > 10 else ""
        )
        raise ValueError(
            f"{source}: the OpenCLIP text tower is incomplete, missing {shown}; "
            "expected every key of an open_clip text tower (a truncated or partial file?)"
        )
    return num_layers


def text_config_from_openclip(
    state_dict: dict[str, torch.Tensor],
    num_heads: int | None = None,
    source: str = "state dict",
) -> CLIPTextConfig:
    """The transformers config of an OpenCLIP text tower, read from its tensor shapes.

    Args:
        state_dict: OpenCLIP-layout text tower (prefix already stripped).
        num_heads: attention heads; weights cannot tell. None: width // 64, OpenCLIP's
            text-tower convention (ViT-H/14: width 1024 → 16 heads).
        source: name used in error messages.

    Returns:
        A `CLIPTextConfig` with exact GELU, LayerNorm eps 1e-5 and SDPA attention, the
        semantics of open_clip's text tower.
    """
    num_layers = _check_complete(state_dict, source)
    vocab_size, width = state_dict["token_embedding.weight"].shape
    heads = num_heads if num_heads is not None else max(width // OPENCLIP_HEAD_WIDTH, 1)
    if heads <= 0 or width % heads:
        raise ValueError(
            f"{source}: width {width} is not divisible by num_heads={heads}; pass the "
            "tower's head count (open_clip model config 'text_cfg.heads')"
        )
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=state_dict["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        projection_dim=state_dict[_PROJECTION].shape[1],
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        max_position_embeddings=state_dict["positional_embedding"].shape[0],
        hidden_act="gelu",  # open_clip's nn.GELU (exact erf), not OpenAI's QuickGELU
        layer_norm_eps=1e-5,
        pad_token_id=0,
        bos_token_id=vocab_size - _SOT_FROM_END,
        eos_token_id=vocab_size - _EOT_FROM_END,
        architectures=["CLIPTextModelWithProjection"],
        attn_implementation="sdpa",  # bitwise equal to open_clip's attention on CPU
    )


def openclip_to_transformers(
    state_dict: dict[str, torch.Tensor], source: str = "state dict"
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename and reshape an OpenCLIP text tower for `CLIPTextModelWithProjection`.

    Fused ``in_proj`` (3w, w) → ``q_proj``/``k_proj``/``v_proj`` (w, w) each;
    ``c_fc``/``c_proj`` → ``fc1``/``fc2``; ``ln_final`` → ``final_layer_norm``;
    ``text_projection`` (w, e) → ``text_projection.weight`` (e, w), transposed because
    open_clip computes ``x @ P`` and `nn.Linear` computes ``x @ W.T``.

    Args:
        state_dict: OpenCLIP-layout keys (no ``cond_stage_model.model.`` prefix).
        source: name used in error messages.

    Returns:
        The transformers state dict, and the keys that were neither converted nor known
        to be non-text (for the caller to report).

    Raises:
        ValueError: a key of the text tower is missing (all are named).
    """
    _check_complete(state_dict, source)
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, tensor in state_dict.items():
        if is_non_text_key(key):
            continue
        if key in _TOP_RENAMES:
            converted[_TOP_RENAMES[key]] = tensor
        elif key == _PROJECTION:
            converted["text_projection.weight"] = tensor.T.contiguous()
        elif (match := _BLOCK_KEY.fullmatch(key)) and match.group(2) in _BLOCK_RENAMES:
            layer = f"text_model.encoder.layers.{match.group(1)}."
            converted[layer + _BLOCK_RENAMES[match.group(2)]] = tensor
        elif match and match.group(2) in _FUSED_QKV:
            layer = f"text_model.encoder.layers.{match.group(1)}.self_attn."
            kind = _FUSED_QKV[match.group(2)]
            for name, part in zip(("q", "k", "v"), tensor.chunk(3, dim=0), strict=True):
                converted[f"{layer}{name}_proj.{kind}"] = part
        else:
            unexpected.append(key)
    return converted, unexpected
