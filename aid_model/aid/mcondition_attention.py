"""Where the instruction enters the UNet: MCondition in every spatial cross-attention.

SVD's spatial cross-attention (``transformer_blocks[i].attn2``) attends to one CLIP image
token per frame. AID adds, frame by frame, a parallel cross-attention onto that frame's
MCondition (aid-method.md §4, eq. 4):

    out = Attn(q, K_img, V_img)                                   # SVD's, run unchanged
        + W_o^mc·Attn(q, W_k^mc·MC_t, W_v^mc·MC_t) + b_o^mc          # AID's branch

with the query ``q = to_q(x)`` shared with SVD's attention (trained), new key/value
projections initialised as copies of SVD's ``to_k``/``to_v`` **(ours)** (so the branch
starts out answering like SVD's own attention would), and its own output projection
``to_out_mcondition`` initialised to zero (the method's second option). Adding an exact
zero keeps a fresh AID model bit-identical to SVD.

Why a zero-initialised projection and not a scalar gate (format 1 had ``gate·to_out(…)``
with the gate at 0): a scalar gets one number of gradient per layer, the inner product of
the upstream gradient with a branch output that is still random, and the branch's own
parameters get gradients only in proportion to the gate. On the bundled miniature the
gates stayed below 0.03 after 1,500 steps and the model ignored the instruction (6 % of
held-out scenes moved as told, docs/results.md); a zero matrix gets a full (c × c)
gradient at the first step and opens within a few. Format-1 files convert exactly
(``W_o^mc = gate·W_o``, ``b_o^mc = gate·b_o``; ``aid_model.aid.weights``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MConditionSlot:
    """The MCondition of the current UNet call, (B·T, L, d), shared by all processors.

    diffusers' SVD UNet forwards no extra arguments to its attention layers, so the AID
    UNet puts the tensor here (``value``) before calling the base UNet. It is kept until
    the next call (not cleared on return) because gradient checkpointing re-runs the
    attention layers during the backward pass.
    """

    def __init__(self) -> None:
        self.value: Tensor | None = None


class MConditionBranch(nn.Module):
    """AID's branch of a spatial cross-attention, host-agnostic (aid-method.md §4, eq. 4).

    ``W_o^mc·Attn(q, W_k^mc·MC_t, W_v^mc·MC_t) + b_o^mc`` for a query that the host's own
    ``to_q`` already projected: diffusers' processor below and the ComfyUI patch
    (``nodes/native_patch.py``) both call it, so the two hosts compute the same thing.

    Args:
        context_width: d, width of the MCondition tokens.
        inner_width: c, width of the projected query (heads × head width).
        out_width: width of the host attention's output.
        key_bias, value_bias: whether the key/value projections have a bias (as the host's
            ``to_k``/``to_v`` they start as copies of).
    """

    def __init__(self, context_width: int, inner_width: int, out_width: int,
                 key_bias: bool = False, value_bias: bool = False,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.to_k_mcondition = nn.Linear(context_width, inner_width, bias=key_bias, **factory)
        self.to_v_mcondition = nn.Linear(context_width, inner_width, bias=value_bias, **factory)
        self.to_out_mcondition = nn.Linear(inner_width, out_width, **factory)
        nn.init.zeros_(self.to_out_mcondition.weight)
        nn.init.zeros_(self.to_out_mcondition.bias)

    def copy_key_value_(self, to_k: nn.Linear, to_v: nn.Linear) -> None:
        """Initialises the key/value projections as copies of the host's (**ours**)."""
        with torch.no_grad():
            for target, source in ((self.to_k_mcondition, to_k), (self.to_v_mcondition, to_v)):
                target.weight.copy_(source.weight)
                if source.bias is not None:
                    target.bias.copy_(source.bias)

    def forward(self, query: Tensor, mcondition: Tensor, heads: int) -> Tensor:
        """
        Args:
            query: (rows, n, c) frame tokens after the host attention's ``to_q``; rows = B·T.
            mcondition: (rows, L, d) each row's frame MCondition, in the query's dtype.
            heads: the host attention's head count (c = heads × head width).
        Returns:
            (rows, n, out_width), to add to the host attention's output.
        """
        rows = query.shape[0]
        key, value = self.to_k_mcondition(mcondition), self.to_v_mcondition(mcondition)
        head_dim = query.shape[-1] // heads
        query, key, value = (
            t.reshape(rows, -1, heads, head_dim).transpose(1, 2) for t in (query, key, value)
        )
        attended = F.scaled_dot_product_attention(query, key, value)
        attended = attended.transpose(1, 2).reshape(rows, -1, heads * head_dim).to(query.dtype)
        return self.to_out_mcondition(attended)


class MConditionAttnProcessor(MConditionBranch):
    """Processor of a diffusers spatial cross-attention (``attn2``): SVD's attention, then
    the MCondition branch on the same query.

    The branch's weights are the processor's own (``attn2.processor.to_k_mcondition`` …,
    the names AID weight files use); SVD's processor is kept unregistered (its weights,
    if any, are the base's).

    Args:
        attn: the host ``diffusers`` Attention (its ``to_k``/``to_v`` are copied, not kept).
        base_processor: the host's processor, called unchanged for SVD's part.
        slot: where the AID UNet puts the current MCondition.
    """

    def __init__(self, attn: nn.Module, base_processor, slot: MConditionSlot):
        projection = attn.to_out[0]
        weight = attn.to_k.weight
        super().__init__(attn.to_k.in_features, attn.to_k.out_features,
                         projection.out_features, key_bias=attn.to_k.bias is not None,
                         value_bias=attn.to_v.bias is not None,
                         device=weight.device, dtype=weight.dtype)
        self.copy_key_value_(attn.to_k, attn.to_v)
        object.__setattr__(self, "base_processor", base_processor)
        object.__setattr__(self, "slot", slot)  # unregistered: shared, holds no weights

    def forward(self, attn: nn.Module, hidden_states: Tensor,
                encoder_hidden_states: Tensor | None = None,
                attention_mask: Tensor | None = None, **kwargs) -> Tensor:
        """hidden_states: (B·T, h·w, c) frame tokens; encoder_hidden_states: (B·T, 1, d)
        SVD's image context. Returns (B·T, h·w, c)."""
        out = self.base_processor(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                                  attention_mask=attention_mask, **kwargs)
        mcondition = self.slot.value
        if mcondition is None:  # called without MCondition: SVD's cross-attention only
            return out
        rows = hidden_states.shape[0]
        if mcondition.shape[0] != rows:
            raise ValueError(
                f"MCondition has {mcondition.shape[0]} frame rows (B·T) but the UNet runs "
                f"{rows}; pass mcondition of shape (B, T, L, d) matching the sample"
            )
        branch = super().forward(attn.to_q(hidden_states), mcondition, attn.heads)
        return out + attn.to_out[1](branch)  # the host's dropout, as on its own output
