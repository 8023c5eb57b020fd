"""Test helper: writes a diffusers SVD UNet out in the ORIGINAL single-file key layout.

Written independently of ``aid_model.svd.convert`` from the structure of Stability's
``sgm`` UNet (input_blocks = conv, then per level res blocks [+ transformer] and a
downsampler; middle_block = res, transformer, res; output_blocks per level from the
deepest with the upsampler after the last block), so that loading its output through
``load_svd`` checks the converter on topologies the parity fixture lacks (SVD's own:
four levels, no attention on the last, two res blocks a level).
"""

from __future__ import annotations

import torch

RESBLOCK_NAMES = {
    "spatial_res_block.norm1": "in_layers.0",
    "spatial_res_block.conv1": "in_layers.2",
    "spatial_res_block.time_emb_proj": "emb_layers.1",
    "spatial_res_block.norm2": "out_layers.0",
    "spatial_res_block.conv2": "out_layers.3",
    "spatial_res_block.conv_shortcut": "skip_connection",
    "temporal_res_block.norm1": "time_stack.in_layers.0",
    "temporal_res_block.conv1": "time_stack.in_layers.2",
    "temporal_res_block.time_emb_proj": "time_stack.emb_layers.1",
    "temporal_res_block.norm2": "time_stack.out_layers.0",
    "temporal_res_block.conv2": "time_stack.out_layers.3",
    "time_mixer": "time_mixer",
}


def _resblock(module_prefix: str, state: dict, out: dict, original_prefix: str) -> None:
    for key, tensor in state.items():
        if not key.startswith(module_prefix):
            continue
        rest = key[len(module_prefix) :]
        for new, old in RESBLOCK_NAMES.items():
            if rest.startswith(new + "."):
                out[original_prefix + old + rest[len(new) :]] = tensor
                break
        else:
            raise KeyError(key)


def _transformer(module_prefix: str, state: dict, out: dict, original_prefix: str) -> None:
    for key, tensor in state.items():
        if not key.startswith(module_prefix):
            continue
        rest = key[len(module_prefix) :]
        rest = rest.replace("temporal_transformer_blocks.", "time_stack.")
        rest = rest.replace("time_pos_embed.linear_1.", "time_pos_embed.0.")
        rest = rest.replace("time_pos_embed.linear_2.", "time_pos_embed.2.")
        out[original_prefix + rest] = tensor


def unet_to_original(unet) -> dict[str, torch.Tensor]:
    state = unet.state_dict()
    config = unet.config
    levels = len(config.block_out_channels)
    layers = config.layers_per_block
    layers = [layers] * levels if isinstance(layers, int) else list(layers)
    attention = ["CrossAttn" in name for name in config.down_block_types]
    out: dict[str, torch.Tensor] = {}
    prefix = "model.diffusion_model."
    simple = {
        "conv_in.": "input_blocks.0.0.",
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        "add_embedding.linear_1.": "label_emb.0.0.",
        "add_embedding.linear_2.": "label_emb.0.2.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
    }
    for key, tensor in state.items():
        for new, old in simple.items():
            if key.startswith(new):
                out[prefix + old + key[len(new) :]] = tensor
    index = 1
    for level in range(levels):
        for j in range(layers[level]):
            _resblock(
                f"down_blocks.{level}.resnets.{j}.", state, out, f"{prefix}input_blocks.{index}.0."
            )
            if attention[level]:
                _transformer(
                    f"down_blocks.{level}.attentions.{j}.",
                    state,
                    out,
                    f"{prefix}input_blocks.{index}.1.",
                )
            index += 1
        if level < levels - 1:
            for kind in ("weight", "bias"):
                out[f"{prefix}input_blocks.{index}.0.op.{kind}"] = state[
                    f"down_blocks.{level}.downsamplers.0.conv.{kind}"
                ]
            index += 1
    _resblock("mid_block.resnets.0.", state, out, f"{prefix}middle_block.0.")
    _transformer("mid_block.attentions.0.", state, out, f"{prefix}middle_block.1.")
    _resblock("mid_block.resnets.1.", state, out, f"{prefix}middle_block.2.")
    index = 0
    for up in range(levels):
        level = levels - 1 - up
        for j in range(layers[level] + 1):
            _resblock(
                f"up_blocks.{up}.resnets.{j}.", state, out, f"{prefix}output_blocks.{index}.0."
            )
            slot = 1
            if attention[level]:
                _transformer(
                    f"up_blocks.{up}.attentions.{j}.",
                    state,
                    out,
                    f"{prefix}output_blocks.{index}.1.",
                )
                slot = 2
            if j == layers[level] and up < levels - 1:
                for kind in ("weight", "bias"):
                    out[f"{prefix}output_blocks.{index}.{slot}.conv.{kind}"] = state[
                        f"up_blocks.{up}.upsamplers.0.conv.{kind}"
                    ]
            index += 1
    missing = len(state) - len(out)
    assert missing == 0, f"{missing} UNet tensors were not written out"
    return out
