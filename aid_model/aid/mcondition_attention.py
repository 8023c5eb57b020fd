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

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aid_model.aid.adapters import WrappingProcessor
from aid_model.tensor_versions import modification_count


class MConditionSlot:
    """The MCondition of the current UNet call, (B·T, L, d), shared by all processors, and
    the processors' key/value cache for it.

    diffusers' SVD UNet forwards no extra arguments to its attention layers, so the AID
    UNet puts the tensor here (``set``) before calling the base UNet. It is kept until the
    next call (not cleared on return) because gradient checkpointing re-runs the attention
    layers during the backward pass.

    ``generation`` counts the distinct MConditions set: it changes when ``set`` receives
    another tensor, the same tensor modified in place since (its ``_version``), or another
    dtype, and on ``release``. Sampling sets the same MCondition at every step of a clip,
    so the processors compute W_k^mc·MC and W_v^mc·MC once per generation instead of once
    per step (``key_values``; only with gradients off).

    Inference tensors (made under ``torch.inference_mode``, as ComfyUI runs its nodes)
    carry no version counter: for them the slot relies on identity alone, i.e. on nobody
    writing into an inference tensor between two UNet calls of one sampling run
    (``AIDPipeline.sample_latents`` releases the cache when it returns).
    """

    def __init__(self) -> None:
        self.value: Tensor | None = None
        self.generation = 0
        # The tensor given to ``set`` (held, so its identity cannot pass to a new tensor),
        # its version then, and its (B·T, L, d) cast.
        self._source: Tensor | None = None
        self._source_version: int | None = None
        self._cast: Tensor | None = None
        # Per processor (``id``; all live as long as the UNet they share this slot with):
        # the keys and values of the current generation.
        self.key_values: dict[int, _CachedKeyValue] = {}

    def set(self, mcondition: Tensor | None, dtype: torch.dtype) -> None:
        """Makes ``mcondition`` (B, T, L, d), cast to ``dtype``, the current MCondition
        (None: the next call runs without MCondition; the cache is kept for the next one)."""
        if mcondition is None:
            self.value = None
            return
        unchanged = (
            not torch.is_grad_enabled()  # in a graph the value must be rebuilt each call
            and mcondition is self._source
            and modification_count(mcondition) == self._source_version
            and self._cast is not None and self._cast.dtype == dtype
        )
        if not unchanged:
            self._new_generation()
            self._source, self._source_version = mcondition, modification_count(mcondition)
            self._cast = mcondition.flatten(0, 1).to(dtype)
        self.value = self._cast

    def release(self) -> None:
        """Drops the cached keys and values and the held MCondition (the next ``set``
        starts a new generation)."""
        self._new_generation()
        self.value = None

    def _new_generation(self) -> None:
        self.generation += 1
        self.key_values.clear()
        self._source = self._source_version = self._cast = None


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
        key, value = self.mcondition_key_value(mcondition)
        head_dim = query.shape[-1] // heads
        query, key, value = (
            t.reshape(rows, -1, heads, head_dim).transpose(1, 2) for t in (query, key, value)
        )
        attended = F.scaled_dot_product_attention(query, key, value)
        attended = attended.transpose(1, 2).reshape(rows, -1, heads * head_dim).to(query.dtype)
        attended = attn.to_out[1](self.to_out_mcondition(attended))  # own projection, dropout
        return out + attended

    def mcondition_key_value(self, mcondition: Tensor) -> tuple[Tensor, Tensor]:
        """(W_k^mc·MC, W_v^mc·MC), each (B·T, L, c), for the slot's current MCondition.

        With gradients off they are computed once per MCondition generation and reused
        while the projections' weights and the autocast state stay as they were: the same
        values, so the output is bit-identical. With gradients on (training) they are
        always recomputed, inside the graph.
        """
        projections = (self.to_k_mcondition, self.to_v_mcondition)
        # Also checked here, not only in ``MConditionSlot.set``: gradient checkpointing
        # re-runs this layer with gradients on without setting the MCondition again. An
        # MCondition in a graph (training) is new every step: nothing to reuse. Inside
        # torch.compile the bookkeeping below would break the graph.
        if (torch.is_grad_enabled() or mcondition.requires_grad
                or torch.compiler.is_compiling()):
            return self.to_k_mcondition(mcondition), self.to_v_mcondition(mcondition)
        state = _ProjectionState.now(self.slot.generation, mcondition, projections)
        cached = self.slot.key_values.get(id(self))
        if cached is not None and cached.state.matches(state):
            return cached.key, cached.value
        key, value = (projection(mcondition) for projection in projections)
        self.slot.key_values[id(self)] = _CachedKeyValue(state, key, value)
        return key, value


@dataclass(frozen=True)
class _ProjectionState:
    """What cached keys and values were computed from: the MCondition generation, each
    projection parameter (the tensor, its storage, its version: a cast or ``.data``
    assignment swaps the storage, an in-place update bumps the version) and autocast."""

    generation: int
    parameters: tuple[tuple[Tensor, torch.UntypedStorage, int | None], ...]
    autocast: tuple[bool, torch.dtype]

    @staticmethod
    def now(generation: int, mcondition: Tensor, projections: tuple[nn.Linear, ...]):
        device_type = mcondition.device.type
        parameters = tuple((p, p.untyped_storage(), modification_count(p))
                           for projection in projections for p in projection.parameters())
        autocast = (torch.is_autocast_enabled(device_type),
                    torch.get_autocast_dtype(device_type))
        return _ProjectionState(generation, parameters, autocast)

    def matches(self, other: _ProjectionState) -> bool:
        # Storages compare by their C++ object (``_cdata``): the stored ones are held, so
        # that address cannot pass to another storage.
        return (
            self.generation == other.generation
            and self.autocast == other.autocast
            and len(self.parameters) == len(other.parameters)
            and all(
                mine is theirs and my_storage._cdata == their_storage._cdata
                and my_version == their_version
                for (mine, my_storage, my_version), (theirs, their_storage, their_version)
                in zip(self.parameters, other.parameters, strict=True)
            )
        )


@dataclass(frozen=True)
class _CachedKeyValue:
    state: _ProjectionState
    key: Tensor  # (B·T, L, c)
    value: Tensor  # (B·T, L, c)



def _copy_linear(linear: nn.Linear) -> nn.Linear:
    """A new Linear with the same shape, device, dtype and values as ``linear``."""
    copy = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None,
                     device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        copy.weight.copy_(linear.weight)
        if linear.bias is not None:
            copy.bias.copy_(linear.bias)
    return copy
