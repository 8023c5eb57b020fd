"""Cross-attention onto one token, without the attention: SVD's ``attn2`` layers.

SVD's cross-attentions (``transformer_blocks[i].attn2``, spatial, and
``temporal_transformer_blocks[i].attn2``, temporal) attend to a single context token, the
CLIP image embedding. A softmax over one key is exactly 1 whatever the query, so every
query receives that token's value:

    Attn(q, k, v) = softmax(q·kᵀ/√c)·v = 1·v  →  out = to_out(to_v(context)), for every query

diffusers still computes ``to_q`` for every query, the key, the attention and ``to_out``
for every query (4.7 % of svd_xt's UNet FLOPs). ``SingleTokenCrossAttnProcessor`` computes
``to_out(to_v(context))`` once per row and broadcasts it over the queries; the values are
the same, so the UNet's output is too (see ``tests/test_single_token_attention.py``).

Inference only: with gradients enabled it calls the processor it replaced, because AID
trains ``to_q`` and ``to_k`` of the spatial cross-attention, and a shortcut that skips them
would leave them without a gradient (DistributedDataParallel refuses that). Where the
softmax would not be 1 (fp16 overflow of q·k gives inf − inf = NaN there), the shortcut
returns the value instead of NaN.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0
from torch import Tensor, nn

# The processors whose arithmetic the shortcut reproduces (diffusers' plain attention).
_REPLACEABLE = (AttnProcessor, AttnProcessor2_0)


class SingleTokenCrossAttnProcessor:
    """An ``Attention`` processor: ``to_out(to_v(context))`` broadcast over the queries
    when the context is one token and gradients are off; otherwise the processor it
    replaced, called unchanged.

    Args:
        base_processor: the attention's previous processor (diffusers' ``AttnProcessor2_0``).
    """

    def __init__(self, base_processor) -> None:
        self.base_processor = base_processor

    def __call__(self, attn: Attention, hidden_states: Tensor,
                 encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, **kwargs) -> Tensor:
        """hidden_states: (rows, queries, c); encoder_hidden_states: (rows, 1, d) for the
        shortcut. Returns (rows, queries, c) (broadcast: a stride-0 view of the queries)."""
        if not _shortcut_applies(attn, hidden_states, encoder_hidden_states, attention_mask,
                                 kwargs):
            return self.base_processor(attn, hidden_states,
                                       encoder_hidden_states=encoder_hidden_states,
                                       attention_mask=attention_mask, **kwargs)
        value = attn.to_v(encoder_hidden_states)  # (rows, 1, inner): the attention's output
        out = attn.to_out[1](attn.to_out[0](value))  # output projection, dropout
        # As AttnProcessor2_0 ends (the factor is 1 for SVD): elementwise, so it may come
        # before the broadcast.
        out = out / attn.rescale_output_factor
        return out.expand(-1, hidden_states.shape[1], -1)


def _shortcut_applies(attn: Attention, hidden_states: Tensor,
                      encoder_hidden_states: Tensor | None, attention_mask: Tensor | None,
                      kwargs: dict) -> bool:
    """True where ``AttnProcessor2_0`` would compute exactly ``to_out(to_v(context))`` per
    query, and no gradient is wanted."""
    dropout = attn.to_out[1]
    return (
        not torch.is_grad_enabled()
        and encoder_hidden_states is not None
        and encoder_hidden_states.ndim == 3
        and encoder_hidden_states.shape[1] == 1
        and hidden_states.ndim == 3
        and attention_mask is None  # a mask could remove the only key
        and all(value is None for value in kwargs.values())  # temb and the like
        and attn.spatial_norm is None
        and attn.group_norm is None
        and not attn.norm_cross
        and not attn.residual_connection
        # Dropout on one row, broadcast, would give every query the same mask.
        and not (dropout.training and isinstance(dropout, nn.Dropout) and dropout.p > 0)
    )


def install_single_token_cross_attention(module: nn.Module) -> int:
    """Puts ``SingleTokenCrossAttnProcessor`` on every cross-attention of ``module`` that
    runs diffusers' plain attention processor (in place; an attention already wrapped is
    left as it is). Returns how many were installed.

    For an SVD UNet: every ``attn2``, spatial and temporal. AID attaches afterwards and
    wraps the spatial ones (its MCondition branch computes its own query).
    """
    installed = 0
    for attention in module.modules():
        if (isinstance(attention, Attention) and attention.is_cross_attention
                and isinstance(attention.processor, _REPLACEABLE)):
            attention.set_processor(SingleTokenCrossAttnProcessor(attention.processor))
            installed += 1
    return installed


@contextmanager
def single_token_shortcut_disabled(module: nn.Module) -> Iterator[None]:
    """Inside the block, ``module``'s attentions run the processors the shortcut replaced
    (for A/B measurements); restored on exit. Wrapping processors (AID's) are followed
    through their ``base_processor``."""
    undo: list[tuple[object, str, SingleTokenCrossAttnProcessor]] = []
    for attention in module.modules():
        if not isinstance(attention, Attention):
            continue
        owner, name, processor = attention, "processor", attention.processor
        while processor is not None:
            if isinstance(processor, SingleTokenCrossAttnProcessor):
                undo.append((owner, name, processor))
                # object.__setattr__: AID's processors keep the wrapped one unregistered.
                object.__setattr__(owner, name, processor.base_processor)
                break
            owner, name = processor, "base_processor"
            processor = getattr(processor, "base_processor", None)
    try:
        yield
    finally:
        for owner, name, processor in reversed(undo):
            object.__setattr__(owner, name, processor)
