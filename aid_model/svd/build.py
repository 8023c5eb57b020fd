"""Building the library modules for an SVD layout, faithful to the original model.

diffusers' SVD classes differ from Stability's original code in a few places that its
own configs cannot express. Each difference is corrected here, once, with the reason,
and the same corrections apply to checkpoints loaded from diffusers folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
from diffusers.models.resnet import SpatioTemporalResBlock
from diffusers.models.unets.unet_3d_blocks import MidBlockTemporalDecoder
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from aid_model.safetensors_io import CheckpointError
from aid_model.svd.single_token_attention import install_single_token_cross_attention

# The original UNet's ResBlocks (spatial and temporal) normalise with GroupNorm eps 1e-5.
ORIGINAL_UNET_RESBLOCK_EPS = 1e-5


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Creates parameters on the meta device (no memory, no random init); buffers stay real.

    Keeping buffers real matters: modules hold non-persistent buffers (CLIP's position
    ids) that no weight file carries. Parameters are then filled by ``assign``-loading.
    """
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(
                param.to("meta"), requires_grad=param.requires_grad
            )

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def restore_original_unet_norms(unet: UNetSpatioTemporalConditionModel) -> None:
    """diffusers builds the resblocks of its cross-attention down blocks (and their temporal
    halves) with GroupNorm eps 1e-6; the original uses 1e-5 in every UNet resblock."""
    for module in unet.modules():
        if isinstance(module, SpatioTemporalResBlock):
            for half in (module.spatial_res_block, module.temporal_res_block):
                half.norm1.eps = ORIGINAL_UNET_RESBLOCK_EPS
                half.norm2.eps = ORIGINAL_UNET_RESBLOCK_EPS


def restore_original_decoder_mid_block(vae: AutoencoderKLTemporalDecoder, mid_resnets: int) -> None:
    """diffusers gives the temporal decoder's mid block ``layers_per_block`` resnets; the
    original always has two (block_1, attention, block_2). Equal for SVD's
    layers_per_block = 2, different for smaller VAEs, so it is rebuilt from the weights."""
    decoder = vae.decoder
    if len(decoder.mid_block.resnets) == mid_resnets:
        return
    width = decoder.conv_in.out_channels
    with parameters_on_meta():
        decoder.mid_block = MidBlockTemporalDecoder(
            num_layers=mid_resnets,
            in_channels=width,
            out_channels=width,
            attention_head_dim=width,
        )


def as_loaded_svd_unet(unet: UNetSpatioTemporalConditionModel) -> UNetSpatioTemporalConditionModel:
    """What ``load_svd`` makes of every diffusers SVD UNet (in place): the original's
    normalisation, and its one-token cross-attentions computed without the attention at
    inference (``single_token_attention``: same values, 4.7 % fewer FLOPs at svd_xt shape)."""
    restore_original_unet_norms(unet)
    install_single_token_cross_attention(unet)
    return unet


def build_unet(config: dict) -> UNetSpatioTemporalConditionModel:
    """An SVD UNet with meta parameters, as ``load_svd`` gives it (``as_loaded_svd_unet``)."""
    with parameters_on_meta():
        unet = UNetSpatioTemporalConditionModel(**config)
    return as_loaded_svd_unet(unet)


def build_vae(config: dict, decoder_mid_resnets: int) -> AutoencoderKLTemporalDecoder:
    with parameters_on_meta():
        vae = AutoencoderKLTemporalDecoder(**config)
    restore_original_decoder_mid_block(vae, decoder_mid_resnets)
    return vae


def build_image_encoder(config: CLIPVisionConfig | dict) -> CLIPVisionModelWithProjection:
    if isinstance(config, dict):
        config = CLIPVisionConfig(**config)
    with parameters_on_meta():
        return CLIPVisionModelWithProjection(config)


def load_weights(
    module: nn.Module,
    state_dict: dict[str, torch.Tensor],
    component: str,
    dtype: torch.dtype,
    device: torch.device | str,
    source: str,
) -> None:
    """Fills every parameter of ``module`` from ``state_dict`` (strictly), then freezes it.

    Missing weights are an error naming them; shape mismatches name the tensor and both
    shapes. Extra keys must have been removed (and reported) by the caller.
    """
    expected = dict(module.state_dict(keep_vars=True))
    missing = sorted(set(expected) - set(state_dict))
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        raise CheckpointError(
            f"{source}: the {component} is missing {len(missing)} weights: {shown}. "
            "The file is incomplete or was saved from a different model."
        )
    unexpected = sorted(set(state_dict) - set(expected))
    if unexpected:
        raise CheckpointError(f"{source}: the {component} got unknown weights {unexpected[:8]}")
    prepared = {}
    for key, tensor in state_dict.items():
        target = expected[key]
        if tuple(target.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{source}: {component} tensor '{key}' has shape {tuple(tensor.shape)}, "
                f"the model built from this checkpoint's layout expects {tuple(target.shape)}"
            )
        # Floating-point buffers follow the requested dtype; integer buffers keep theirs.
        # copy=True: tensors read from a file can sit at unaligned offsets of its buffer,
        # which sends CPU kernels down other vectorised paths (last-bit differences, and
        # slower); a fresh allocation is aligned.
        cast = dtype if tensor.is_floating_point() else tensor.dtype
        prepared[key] = tensor.to(device=device, dtype=cast, copy=True)
    module.load_state_dict(prepared, strict=True, assign=True)
    for name, buffer in module.named_buffers():
        if buffer.device.type != torch.device(device).type or (
            buffer.is_floating_point() and buffer.dtype != dtype
        ):
            owner = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
            cast = dtype if buffer.is_floating_point() else buffer.dtype
            owner._buffers[name.rpartition(".")[2]] = buffer.to(device=device, dtype=cast)
    module.requires_grad_(False)
    module.eval()
