"""Where the instruction enters the UNet: MCondition in every spatial cross-attention.

SVD's spatial cross-attention (``transformer_blocks[i].attn2``) attends to one CLIP image
token per frame. AID adds, frame by frame, a parallel cross-attention onto that frame's
MCondition (aid-method.md §4, eq. 4):

    out = Attn(q, K_img, V_img)                                   # SVD's, run unchanged
        + gate · to_out(Attn(q, W_k^mc·MC_t, W_v^mc·MC_t))          # AID's branch

with the query ``q = to_q(x)`` and the output projection ``to_out`` shared with SVD's
attention (both are trained), new key/value projections initialised as copies of SVD's
``to_k``/``to_v`` **(ours)** (so the branch starts out answering like SVD's own attention
would), and a scalar ``gate`` initialised to 0. Multiplying by an exact zero and adding
keeps a fresh AID model bit-identical to SVD; the gate receives a gradient from the first
step, the branch's projections from the second.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aid_model.aid.adapters import WrappingProcessor


class MConditionSlot:
    """The MCondition of the current UNet call, (B·T, L, d), shared by all processors.

    diffusers' SVD UNet forwards no extra arguments to its attention layers, so the AID
    UNet puts the tensor here before calling the base UNet. It is kept until the next call
    (not cleared on return) because gradient checkpointing re-runs the attention layers
    during the backward pass.
    """

    def __init__(self) -> None:
        self.value: Tensor | None = None


class MConditionAttnProcessor(WrappingProcessor):
    """Processor of a spatial cross-attention (``attn2``): SVD's attention + gated MCondition.

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
        self.mcondition_gate = nn.Parameter(torch.zeros((), dtype=attn.to_k.weight.dtype,
                                                        device=attn.to_k.weight.device))

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
        key = self.to_k_mcondition(mcondition)
        value = self.to_v_mcondition(mcondition)
        head_dim = query.shape[-1] // heads
        query, key, value = (
            t.reshape(rows, -1, heads, head_dim).transpose(1, 2) for t in (query, key, value)
        )
        attended = F.scaled_dot_product_attention(query, key, value)
        attended = attended.transpose(1, 2).reshape(rows, -1, heads * head_dim).to(query.dtype)
        attended = attn.to_out[1](attn.to_out[0](attended))  # shared projection, dropout
        return out + self.mcondition_gate * attended


def _copy_linear(linear: nn.Linear) -> nn.Linear:
    """A new Linear with the same shape, device, dtype and values as ``linear``."""
    copy = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None,
                     device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        copy.weight.copy_(linear.weight)
        if linear.bias is not None:
            copy.bias.copy_(linear.bias)
    return copy
