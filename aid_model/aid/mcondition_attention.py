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

from aid_model.aid.adapters import WrappingProcessor


class MConditionSlot:
    """The MCondition of the current UNet call, (B·T, L, d), shared by all processors.

    diffusers' SVD UNet forwards no extra arguments to its attention layers, so the AID
    UNet puts the tensor here (``value``) before calling the base UNet. It is kept until
    the next call (not cleared on return) because gradient checkpointing re-runs the
    attention layers during the backward pass.
    """

    def __init__(self) -> None:
        self.value: Tensor | None = None


class MConditionAttnProcessor(WrappingProcessor):
    """Processor of a spatial cross-attention (``attn2``): SVD's attention + MCondition.

    Args:
        attn: the host ``diffusers`` Attention (its ``to_k``/``to_v`` are copied, not kept).
        base_processor: the host's processor, called unchanged for SVD's part.
        slot: where the AID UNet puts the current MCondition.
    """

    def __init__(self, attn: nn.Module, base_processor, slot: MConditionSlot):
        super().__init__(base_processor)
        object.__setattr__(self, "slot", slot)  # unregistered: shared, holds no weights
        self.to_k_mcondition = _copy_linear(attn.to_k)
        self.to_v_mcondition = _copy_linear(attn.to_v)
        projection = attn.to_out[0]
        self.to_out_mcondition = nn.Linear(projection.in_features, projection.out_features,
                                           device=projection.weight.device,
                                           dtype=projection.weight.dtype)
        nn.init.zeros_(self.to_out_mcondition.weight)
        nn.init.zeros_(self.to_out_mcondition.bias)

    def forward(self, attn: nn.Module, hidden_states: Tensor,
                encoder_hidden_states: Tensor | None = None,
                attention_mask: Tensor | None = None, **kwargs) -> Tensor:
        """hidden_states: (B·T, h·w, c) frame tokens; encoder_hidden_states: (B·T, 1, d)
        SVD's image context. Returns (B·T, h·w, c)."""
        out = self.base_output(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        mcondition = self.slot.value
        if mcondition is None:  # called without MCondition: SVD's cross-attention only
            return out
        rows = hidden_states.shape[0]
        if mcondition.shape[0] != rows:
            raise ValueError(
                f"MCondition has {mcondition.shape[0]} frame rows (B·T) but the UNet runs "
                f"{rows}; pass mcondition of shape (B, T, L, d) matching the sample"
            )
        heads = attn.heads
        query = attn.to_q(hidden_states)
        key, value = self.to_k_mcondition(mcondition), self.to_v_mcondition(mcondition)
        head_dim = query.shape[-1] // heads
        query, key, value = (
            t.reshape(rows, -1, heads, head_dim).transpose(1, 2) for t in (query, key, value)
        )
        attended = F.scaled_dot_product_attention(query, key, value)
        attended = attended.transpose(1, 2).reshape(rows, -1, heads * head_dim).to(query.dtype)
        attended = attn.to_out[1](self.to_out_mcondition(attended))  # own projection, dropout
        return out + attended


def _copy_linear(linear: nn.Linear) -> nn.Linear:
    """A new Linear with the same shape, device, dtype and values as ``linear``."""
    copy = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None,
                     device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        copy.weight.copy_(linear.weight)
        if linear.bias is not None:
            copy.bias.copy_(linear.bias)
    return copy
