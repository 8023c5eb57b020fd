"""The three adapters of aid-method.md §5, and the attention processors that place them.

Each adapter returns ``x + W_up·f(W_down·x)`` with ``W_up`` (weight and bias) zero at
initialisation, so it starts as the exact identity and the frozen UNet's output is unchanged.

Placement (Houlsby-style: on the output of the attention the adapter sits beside, inside
that attention's residual branch, so the base attention itself runs untouched):

- SA  on every spatial self-attention: ``TransformerSpatioTemporalModel.transformer_blocks[i]
  .attn1``, tokens (B·T, h·w, c).
- STA and LTA (in that order) on every temporal self-attention, the temporal path of the same
  transformer: ``.temporal_transformer_blocks[i].attn1``, tokens (B·h·w, T, c). The temporal
  output then passes the block's feed-forward and SVD's AlphaBlender like the base's own.

The processors wrap whatever processor the host attention had, call it unchanged, and
adapt its output; the adapters' weights live in the processors (``attn1.processor.*``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def bottleneck_width(channels: int, ratio: float) -> int:
    """Hidden width of an adapter on ``channels`` channels (at least 1)."""
    return max(1, round(channels * ratio))


def _zero_(linear: nn.Linear) -> nn.Linear:
    nn.init.zeros_(linear.weight)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


class SpatialAdapter(nn.Module):
    """SA: ``x + W_up·GELU(W_down·x)`` on tokens (..., channels)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.down = nn.Linear(channels, hidden)
        self.up = _zero_(nn.Linear(hidden, channels))

    def residual(self, x: Tensor) -> Tensor:
        """``W_up·GELU(W_down·x)``, what the adapter adds (a host scales it by a strength)."""
        return self.up(F.gelu(self.down(x)))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.residual(x)


class ShortTermTemporalAdapter(nn.Module):
    """STA: ``x + W_up·DWConv3D(W_down·x)``, a depthwise 3×3×3 convolution over (T, h, w)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.down = nn.Linear(channels, hidden)
        self.conv = nn.Conv3d(hidden, hidden, kernel_size=3, padding=1, groups=hidden)
        self.up = _zero_(nn.Linear(hidden, channels))

    def residual(self, x: Tensor, frame_size: tuple[int, int]) -> Tensor:
        """What the adapter adds. x: (B·h·w, T, c) temporal tokens, rows ordered (b, y, x)
        as diffusers and ComfyUI make them; frame_size: (h, w). Returns the same shape."""
        height, width = frame_size
        rows, frames, _ = x.shape
        batch = rows // (height * width)
        hidden = self.down(x).reshape(batch, height, width, frames, -1)
        hidden = self.conv(hidden.permute(0, 4, 3, 1, 2))  # (B, c', T, h, w)
        hidden = hidden.permute(0, 3, 4, 2, 1).reshape(rows, frames, -1)
        return self.up(hidden)

    def forward(self, x: Tensor, frame_size: tuple[int, int]) -> Tensor:
        """x: (B·h·w, T, c), frame_size: (h, w) → same shape."""
        return x + self.residual(x, frame_size)


class LongTermTemporalAdapter(nn.Module):
    """LTA: ``x + W_up·SelfAttn_T(W_down·x)``, attention over all T frames of each position."""

    def __init__(self, channels: int, hidden: int, heads: int):
        super().__init__()
        if hidden % heads:
            raise ValueError(
                f"long-term temporal adapter: {heads} heads do not divide its bottleneck width "
                f"{hidden}; choose AIDConfig.adapter_attention_heads dividing every bottleneck "
                "width (channels × adapter_ratio), e.g. 1"
            )
        self.down = nn.Linear(channels, hidden)
        self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.up = _zero_(nn.Linear(hidden, channels))

    def residual(self, x: Tensor) -> Tensor:
        """What the adapter adds: x (B·h·w, T, c) → same shape."""
        hidden = self.down(x)
        hidden = self.attention(hidden, hidden, hidden, need_weights=False)[0]
        return self.up(hidden)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B·h·w, T, c) → same shape."""
        return x + self.residual(x)


class WrappingProcessor(nn.Module):
    """A processor that calls the host attention's previous processor and post-processes it.

    The previous processor is kept unregistered: it belongs to the base model (if it had
    weights they are the base's, not AID's).
    """

    def __init__(self, base_processor):
        super().__init__()
        object.__setattr__(self, "base_processor", base_processor)

    def base_output(self, attn: nn.Module, hidden_states: Tensor,
                    encoder_hidden_states: Tensor | None, attention_mask: Tensor | None,
                    **kwargs) -> Tensor:
        return self.base_processor(
            attn,
            hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            attention_mask=attention_mask,
            **kwargs,
        )


class SpatialAdapterProcessor(WrappingProcessor):
    """Processor of a spatial self-attention (``attn1``): base attention, then SA."""

    def __init__(self, base_processor, spatial_adapter: SpatialAdapter):
        super().__init__(base_processor)
        self.spatial_adapter = spatial_adapter

    def forward(self, attn: nn.Module, hidden_states: Tensor,
                encoder_hidden_states: Tensor | None = None,
                attention_mask: Tensor | None = None, **kwargs) -> Tensor:
        out = self.base_output(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        return self.spatial_adapter(out)


class FrameSizeRecorder:
    """For processors that need the frame's (h, w), which flattened tokens no longer carry.

    ``record_frame_size`` is a forward pre-hook on the enclosing
    ``TransformerSpatioTemporalModel`` that stores it before the blocks run;
    ``recorded_frame_size`` returns it, or says the hook never ran.
    """

    frame_size: tuple[int, int] | None = None

    def record_frame_size(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden_states = args[0] if args else kwargs["hidden_states"]  # (B·T, c, h, w)
        self.frame_size = (int(hidden_states.shape[-2]), int(hidden_states.shape[-1]))

    def recorded_frame_size(self, user: str) -> tuple[int, int]:
        if self.frame_size is None:
            raise RuntimeError(
                f"{user} called before its transformer recorded the frame size; call the "
                "UNet, not its attention layers directly"
            )
        return self.frame_size


class TemporalAdaptersProcessor(FrameSizeRecorder, WrappingProcessor):
    """Processor of a temporal self-attention (``attn1`` of a temporal block): base, STA, LTA.

    STA needs the frame's (h, w), which the temporal tokens (B·h·w, T, c) no longer carry
    (``FrameSizeRecorder``).
    """

    def __init__(self, base_processor, short_term_adapter: ShortTermTemporalAdapter | None,
                 long_term_adapter: LongTermTemporalAdapter | None):
        super().__init__(base_processor)
        self.short_term_adapter = short_term_adapter
        self.long_term_adapter = long_term_adapter

    def forward(self, attn: nn.Module, hidden_states: Tensor,
                encoder_hidden_states: Tensor | None = None,
                attention_mask: Tensor | None = None, **kwargs) -> Tensor:
        out = self.base_output(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        if self.short_term_adapter is not None:
            frame_size = self.recorded_frame_size("short-term temporal adapter")
            out = self.short_term_adapter(out, frame_size)
        if self.long_term_adapter is not None:
            out = self.long_term_adapter(out)
        return out

