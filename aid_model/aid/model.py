"""`attach_aid`: SVD's frozen UNet becomes AID's; which parameters train; how many they are.

Where each part sits in diffusers' ``UNetSpatioTemporalConditionModel`` (every
``TransformerSpatioTemporalModel`` of the down, mid and up blocks):

    transformer_blocks[i].attn1.processor            SpatialAdapterProcessor   (SA)
    transformer_blocks[i].attn2.processor            MConditionAttnProcessor   (MCondition)
    temporal_transformer_blocks[i].attn1.processor   TemporalAdaptersProcessor (STA, LTA)

The processors wrap the attention's own processor and leave every base tensor as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from diffusers.models.transformers.transformer_temporal import TransformerSpatioTemporalModel
from torch import Tensor, nn

from aid_model.aid.adapters import (
    LongTermTemporalAdapter,
    ShortTermTemporalAdapter,
    SpatialAdapter,
    SpatialAdapterProcessor,
    TemporalAdaptersProcessor,
    WrappingProcessor,
    bottleneck_width,
)
from aid_model.aid.config import AIDConfig
from aid_model.aid.dqformer import DQFormer
from aid_model.aid.image_context import clip_image_context
from aid_model.aid.mcondition_attention import MConditionAttnProcessor, MConditionSlot
from aid_model.aid.reference import reference_concat_latents

# Parameter groups, in the order reports list them.
GROUPS = (
    "spatial_adapters",
    "short_term_adapters",
    "long_term_adapters",
    "mcondition_attention",
    "dqformer",
    "spatial_cross_attention",
)
# Everything but the base's own spatial cross-attention is new.
AID_GROUPS = GROUPS[:-1]


class SVDLike(Protocol):
    """What ``attach_aid`` needs of ``SVDComponents``: the UNet; the VAE and the CLIP image
    encoder are frozen when present, and the encoder's projection width sizes e_v."""

    unet: nn.Module


class AIDUNet(nn.Module):
    """The SVD UNet with AID inside; diffusers' call signature plus ``mcondition=``.

    This is the module to give ``VideoDenoiser``. It hands the MCondition to the spatial
    cross-attention processors (through ``slot``) and calls the base UNet unchanged.
    """

    def __init__(self, base: nn.Module, slot: MConditionSlot, context_width: int,
                 uses_mcondition: bool):
        super().__init__()
        self.base = base
        object.__setattr__(self, "slot", slot)  # shared with the processors, no weights
        self.context_width = context_width
        self.uses_mcondition = uses_mcondition

    @property
    def config(self):
        return self.base.config

    def forward(self, sample: Tensor, timestep: Tensor, encoder_hidden_states: Tensor,
                added_time_ids: Tensor, return_dict: bool = True,
                mcondition: Tensor | None = None):
        """
        Args:
            sample: (B, T, 8, h, w) preconditioned noisy latents and concat latents.
            timestep: (B,) c_noise.
            encoder_hidden_states: (B, 1, d) SVD's CLIP image embedding.
            added_time_ids: (B, 3).
            mcondition: (B, T, L, d) per-frame MCondition, or None: SVD's cross-attention
                only (adapters still act).
        Returns:
            What the base UNet returns: a tuple ``(out,)`` or an output object, out
            (B, T, 4, h, w).
        """
        if mcondition is None:
            self.slot.value = None
        else:
            if not self.uses_mcondition:
                raise ValueError(
                    "this AID model was built with without_mcondition=True and has no "
                    "MCondition attention; call it without mcondition"
                )
            batch, frames = sample.shape[:2]
            if (mcondition.ndim != 4 or mcondition.shape[:2] != (batch, frames)
                    or mcondition.shape[-1] != self.context_width):
                raise ValueError(
                    f"mcondition must be (B={batch}, T={frames}, L, d={self.context_width}) to "
                    f"match the sample, got {tuple(mcondition.shape)}; the DQFormer makes "
                    "AIDConfig.num_frames frames, sample that many"
                )
            self.slot.value = mcondition.flatten(0, 1).to(sample.dtype)
        return self.base(
            sample,
            timestep,
            encoder_hidden_states=encoder_hidden_states,
            added_time_ids=added_time_ids,
            return_dict=return_dict,
        )


class AIDModel(nn.Module):
    """An AID model: the SVD UNet with adapters and MCondition attention, and the DQFormer.

    Attributes:
        config: the ``AIDConfig`` it was built from.
        unet: ``AIDUNet``, for ``VideoDenoiser(model.unet)``.
        dqformer: ``DQFormer``, or None with ``without_mcondition``.
        components: the SVD components it was attached to (not a submodule: the VAE and
            CLIP encoder are no part of AID's parameters).
    """

    def __init__(self, config: AIDConfig, unet: AIDUNet, dqformer: DQFormer | None,
                 components: SVDLike):
        super().__init__()
        self.config = config
        self.unet = unet
        self.dqformer = dqformer
        object.__setattr__(self, "components", components)
        self._restore: list[tuple[nn.Module, object]] = []
        self._hooks: list = []

    def build_mcondition(self, instruction_embeddings: Tensor,
                         state_embeddings: Tensor | None = None,
                         image_tokens: Tensor | None = None) -> Tensor | None:
        """MCondition (B, T, L, d) for ``VideoCondition.mcondition``; None without MCondition.

        Args:
            instruction_embeddings: e_t (B, 77, d), the text encoder's penultimate output.
            state_embeddings: e_s (B, S·77, d), the S state encodings concatenated; ignored
                when the model does not use states.
            image_tokens: e_v (B, M, d_v) from ``image_context``; ignored without ME.
        """
        if self.dqformer is None:
            return None
        return self.dqformer(instruction_embeddings, state_embeddings, image_tokens)

    def image_context(self, clip_pixels: Tensor) -> Tensor:
        """e_v (B, M, d_v) of CLIP-preprocessed first frames (B, 3, 224, 224)."""
        encoder = getattr(self.components, "image_encoder", None)
        if encoder is None:
            raise ValueError("these components have no image_encoder to compute e_v with")
        return clip_image_context(encoder, clip_pixels.to(encoder.dtype),
                                  self.config.image_context)

    def concat_latents(self, reference_latents: Tensor) -> Tensor:
        """(B, K, C, h, w) reference latents → (B, T, C, h, w) concat condition (config's fill)."""
        return reference_concat_latents(
            reference_latents, self.config.num_frames, self.config.concat_fill
        )

    def detach(self) -> None:
        """Takes AID out of the base UNet again: its original processors, no hooks.

        Trained spatial cross-attention weights stay as they are (they are base tensors).
        """
        _remove_processors(self._restore, self._hooks)


def spatio_temporal_transformers(
    unet: nn.Module,
) -> Iterator[tuple[str, TransformerSpatioTemporalModel]]:
    """(name, module) of every spatio-temporal transformer of the UNet, in module order."""
    for name, module in unet.named_modules():
        if isinstance(module, TransformerSpatioTemporalModel):
            yield name, module


def has_aid_attached(unet: nn.Module) -> bool:
    """Whether ``attach_aid`` put AID's processors into this UNet (and no ``detach`` since)."""
    return any(isinstance(m, WrappingProcessor | MConditionAttnProcessor) for m in unet.modules())


def attach_aid(components: SVDLike, config: AIDConfig) -> AIDModel:
    """Inserts AID into ``components.unet`` (in place) and returns the ``AIDModel``.

    Freezes the whole base (UNet, VAE, CLIP encoder), then makes exactly
    ``trainable_parameters`` trainable. New parts are created on the UNet's device and in
    its dtype; freshly attached, the model computes exactly what the base computes.
    """
    unet = components.unet
    if has_aid_attached(unet):
        raise ValueError("this UNet already has AID attached; attach to a fresh SVD UNet")
    context_width = unet.config.cross_attention_dim
    if not isinstance(context_width, int):
        raise ValueError(
            f"AID needs one cross-attention width for the whole UNet, got {context_width!r}"
        )
    image_encoder = getattr(components, "image_encoder", None)
    # e_v tokens have CLIP's projection width (d for SVD; the DQFormer projects otherwise).
    image_width = (
        image_encoder.config.projection_dim if image_encoder is not None else context_width
    )
    for part in (unet, getattr(components, "vae", None), image_encoder):
        if part is not None:
            part.requires_grad_(False)

    device, dtype = unet.conv_in.weight.device, unet.conv_in.weight.dtype
    slot = MConditionSlot()
    restore: list[tuple[nn.Module, object]] = []
    hooks: list = []
    try:
        with torch.device(device):
            _insert_processors(unet, config, slot, dtype, restore, hooks)
            dqformer = (
                DQFormer(config, context_width, image_width).to(dtype=dtype)
                if config.use_mcondition else None
            )
    except BaseException:
        _remove_processors(restore, hooks)  # leave the caller's UNet as it was
        raise

    aid_unet = AIDUNet(unet, slot, context_width, config.use_mcondition)
    model = AIDModel(config, aid_unet, dqformer, components)
    model._restore.extend(restore)
    model._hooks.extend(hooks)
    model.train(unet.training)  # new parts follow the base's mode (eval after load_svd)
    for parameter in trainable_parameters(model).values():
        parameter.requires_grad_(True)
    return model


def _insert_processors(unet: nn.Module, config: AIDConfig, slot: MConditionSlot,
                       dtype: torch.dtype, restore: list, hooks: list) -> None:
    """Sets AID's processors on the UNet's attentions (see the module docstring), recording
    each replaced processor in ``restore`` and each hook handle in ``hooks``."""

    def replace(attn: nn.Module, processor: WrappingProcessor | MConditionAttnProcessor) -> None:
        restore.append((attn, attn.processor))
        attn.set_processor(processor.to(dtype=dtype))

    for _, transformer in spatio_temporal_transformers(unet):
        for block in transformer.transformer_blocks:
            channels = block.attn1.to_out[0].out_features
            hidden = bottleneck_width(channels, config.adapter_ratio)
            if config.use_sa:
                replace(block.attn1, SpatialAdapterProcessor(
                    block.attn1.processor, SpatialAdapter(channels, hidden)))
            if config.use_mcondition and block.attn2 is not None:
                replace(block.attn2, MConditionAttnProcessor(
                    block.attn2, block.attn2.processor, slot))
        if not (config.use_sta or config.use_lta):
            continue
        for block in transformer.temporal_transformer_blocks:
            channels = block.attn1.to_out[0].out_features
            hidden = bottleneck_width(channels, config.adapter_ratio)
            heads = config.adapter_attention_heads
            processor = TemporalAdaptersProcessor(
                block.attn1.processor,
                ShortTermTemporalAdapter(channels, hidden) if config.use_sta else None,
                LongTermTemporalAdapter(channels, hidden, heads) if config.use_lta else None,
            )
            replace(block.attn1, processor)
            if config.use_sta:
                hooks.append(transformer.register_forward_pre_hook(
                    processor.record_frame_size, with_kwargs=True))


def _remove_processors(restore: list, hooks: list) -> None:
    for attn, processor in reversed(restore):
        attn.set_processor(processor)
    for handle in hooks:
        handle.remove()
    restore.clear()
    hooks.clear()


def parameter_groups(model: AIDModel) -> dict[str, dict[str, nn.Parameter]]:
    """The trained parameters by part (``GROUPS``), each {name in ``model``: parameter}."""
    groups: dict[str, dict[str, nn.Parameter]] = {group: {} for group in GROUPS}
    kinds = {
        SpatialAdapter: "spatial_adapters",
        ShortTermTemporalAdapter: "short_term_adapters",
        LongTermTemporalAdapter: "long_term_adapters",
    }
    for name, module in model.named_modules():
        group = kinds.get(type(module))
        if group is None and isinstance(module, MConditionAttnProcessor):
            group = "mcondition_attention"
        if group is None and isinstance(module, DQFormer):
            group = "dqformer"
        if group is not None:
            for sub, parameter in module.named_parameters():
                groups[group][f"{name}.{sub}"] = parameter
    for name, transformer in spatio_temporal_transformers(model.unet):
        for i, block in enumerate(transformer.transformer_blocks):
            if block.attn2 is None:
                continue
            for sub, parameter in block.attn2.named_parameters():
                if not sub.startswith("processor."):  # the MCondition branch, counted above
                    groups["spatial_cross_attention"][
                        f"unet.{name}.transformer_blocks.{i}.attn2.{sub}"] = parameter
    return groups


def trainable_parameters(model: AIDModel) -> dict[str, nn.Parameter]:
    """Exactly what AID trains: the adapters, the MCondition attention, the DQFormer and
    the base's spatial cross-attention (aid-method.md §5). {name: parameter}."""
    return {name: p for group in parameter_groups(model).values() for name, p in group.items()}


def aid_parameters(model: AIDModel) -> dict[str, nn.Parameter]:
    """The parameters AID adds (no base tensor among them). {name: parameter}."""
    groups = parameter_groups(model)
    return {name: p for group in AID_GROUPS for name, p in groups[group].items()}


def base_unet_parameters(model: AIDModel) -> dict[str, nn.Parameter]:
    """The base UNet's own parameters, named as in the diffusers UNet."""
    added = {id(p) for p in aid_parameters(model).values()}
    return {n: p for n, p in model.unet.base.named_parameters() if id(p) not in added}


@dataclass(frozen=True)
class ParameterCounts:
    """Sizes of the trained parts next to the base UNet's size."""

    groups: dict[str, int]
    base_unet: int

    @property
    def trainable(self) -> int:
        return sum(self.groups.values())

    @property
    def share(self) -> float:
        """Trainable parameters / base UNet parameters."""
        return self.trainable / self.base_unet

    def table(self) -> str:
        lines = [f"{'part':<26}{'parameters':>15}{'of UNet':>10}"]
        for group, count in self.groups.items():
            lines.append(f"{group:<26}{count:>15,}{count / self.base_unet:>10.2%}")
        lines.append(f"{'trainable':<26}{self.trainable:>15,}{self.share:>10.2%}")
        lines.append(f"{'base UNet':<26}{self.base_unet:>15,}")
        return "\n".join(lines)


def count_parameters(model: AIDModel) -> ParameterCounts:
    """Counts by part (works on meta tensors)."""
    groups = {g: sum(p.numel() for p in ps.values()) for g, ps in parameter_groups(model).items()}
    return ParameterCounts(groups, sum(p.numel() for p in base_unet_parameters(model).values()))
