"""DQFormer (aid-method.md §4): instruction, first frame and MLLM states → MCondition.

Two branches of pre-norm transformer layers with residuals:

    ME (multimodal, eq. 1):    h = e_t;  h += SelfAttn(LN h);  h += CrossAttn(LN h, e_v);
                               h += FFN(LN h)                                  → E_me (77, d)
    DE (decomposed, eqs. 2-3): q = Q (T·N learnable queries);  q += SelfAttn(LN q);
                               q += CrossAttn(LN q, e_t);  q += CrossAttn(LN q, e_s);
                               q += FFN(LN q)                                  → E_de (T, N, d)
    MCondition (eq. 4):        MC_t = concat(E_me, E_de[t]) on tokens         → (T, 77+N, d)

The DE self-attention runs over all T·N queries at once **(ours)**, so the per-frame
decompositions see each other. Contexts (e_v, e_t, e_s) enter cross-attentions as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aid_model.aid.config import AIDConfig

FFN_MULT = 4


class PreNormAttention(nn.Module):
    """``x + Attn(LN x, context)``; self-attention when no context is given."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """x: (B, n, width); context: (B, m, width) or None → (B, n, width)."""
        query = self.norm(x)
        source = query if context is None else context
        return x + self.attention(query, source, source, need_weights=False)[0]


class PreNormFeedForward(nn.Module):
    """``x + W_2·GELU(W_1·LN x)`` with a 4× hidden width."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, FFN_MULT * width)
        self.fc2 = nn.Linear(FFN_MULT * width, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


class MultimodalLayer(nn.Module):
    """One ME layer: instruction self-attention, cross-attention to the frame, FFN."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.self_attention = PreNormAttention(width, heads)
        self.image_attention = PreNormAttention(width, heads)
        self.feed_forward = PreNormFeedForward(width)

    def forward(self, h: Tensor, image_tokens: Tensor) -> Tensor:
        h = self.self_attention(h)
        h = self.image_attention(h, image_tokens)
        return self.feed_forward(h)


class DecomposedLayer(nn.Module):
    """One DE layer: query self-attention, cross-attention to the instruction, then to the
    states (absent for "w/o LLaVA"), FFN."""

    def __init__(self, width: int, heads: int, use_states: bool):
        super().__init__()
        self.self_attention = PreNormAttention(width, heads)
        self.instruction_attention = PreNormAttention(width, heads)
        self.state_attention = PreNormAttention(width, heads) if use_states else None
        self.feed_forward = PreNormFeedForward(width)

    def forward(self, q: Tensor, instruction: Tensor, states: Tensor | None) -> Tensor:
        q = self.self_attention(q)
        q = self.instruction_attention(q, instruction)
        if self.state_attention is not None:
            q = self.state_attention(q, states)
        return self.feed_forward(q)


class DQFormer(nn.Module):
    """Builds MCondition (B, T, L, d) from e_t, e_s and e_v; L = 77 + N with both branches.

    Args:
        config: sizes and ablations (``without_me``, ``without_de``, ``without_states``).
        context_width: d, the UNet's cross-attention width (text embeddings have it too).
        image_width: width of the e_v tokens (CLIP's projection width; d for SVD).
    """

    def __init__(self, config: AIDConfig, context_width: int, image_width: int):
        super().__init__()
        if not config.use_mcondition:
            raise ValueError("AIDConfig.without_mcondition=True: there is no DQFormer to build")
        width = config.dqformer_width or context_width
        if width % config.dqformer_heads:
            raise ValueError(
                f"AIDConfig.dqformer_heads ({config.dqformer_heads}) must divide the DQFormer "
                f"width {width} (dqformer_width, or the UNet's context width when unset)"
            )
        self.config = config
        self.context_width = context_width
        # Projections only where widths differ (never for SVD with the default config).
        self.text_in = nn.Linear(context_width, width) if width != context_width else None
        self.out = nn.Linear(width, context_width) if width != context_width else None
        self.image_in = (
            nn.Linear(image_width, width) if config.use_me and image_width != width else None
        )
        heads, layers = config.dqformer_heads, config.dqformer_layers
        self.multimodal_layers = (
            nn.ModuleList(MultimodalLayer(width, heads) for _ in range(layers))
            if config.use_me else None
        )
        if config.use_de:
            self.queries = nn.Parameter(
                torch.randn(config.num_frames, config.queries_per_frame, width) * 0.02
            )
            self.decomposed_layers = nn.ModuleList(
                DecomposedLayer(width, heads, config.use_states) for _ in range(layers)
            )
        else:
            self.queries = None
            self.decomposed_layers = None

    def forward(self, instruction_embeddings: Tensor, state_embeddings: Tensor | None,
                image_tokens: Tensor | None) -> Tensor:
        """
        Args:
            instruction_embeddings: e_t (B, 77, d).
            state_embeddings: e_s (B, S·77, d); needed only when the DE branch uses states.
            image_tokens: e_v (B, M, d_v), M = 257 CLIP tokens or 1 pooled; needed only by ME.
        Returns:
            MCondition (B, T, L, d), L = 77 (E_me) + N (E_de[t]) without ablations.
        """
        config = self.config
        shape = tuple(instruction_embeddings.shape)
        if len(shape) != 3 or shape[-1] != self.context_width:
            raise ValueError(
                f"instruction_embeddings must be (B, 77, d={self.context_width}), got "
                f"{shape}; use the text encoder whose width is "
                "the UNet's context width (OpenCLIP ViT-H/14 for SVD, penultimate layer)"
            )
        batch = instruction_embeddings.shape[0]
        instruction = self._project(self.text_in, instruction_embeddings)
        parts = []
        if self.multimodal_layers is not None:
            if image_tokens is None:
                raise ValueError("the DQFormer's ME branch needs image_tokens e_v (B, M, d_v)")
            image = self._project(self.image_in, image_tokens)
            h = instruction
            for layer in self.multimodal_layers:
                h = layer(h, image)
            # One E_me shared by all frames.
            parts.append(h[:, None].expand(batch, config.num_frames, *h.shape[1:]))
        if self.decomposed_layers is not None:
            states = None
            if config.use_states:
                states = self._states(state_embeddings, batch, instruction.shape[1])
            q = self.queries.flatten(0, 1).expand(batch, -1, -1)  # (B, T·N, width)
            for layer in self.decomposed_layers:
                q = layer(q, instruction, states)
            parts.append(q.reshape(batch, config.num_frames, config.queries_per_frame, -1))
        mcondition = torch.cat(parts, dim=2)
        return mcondition if self.out is None else self.out(mcondition)

    def _states(self, state_embeddings: Tensor | None, batch: int, text_tokens: int) -> Tensor:
        expected = self.config.num_states * text_tokens
        if state_embeddings is None:
            raise ValueError(
                f"this AID model decomposes S={self.config.num_states} MLLM states: pass "
                f"state_embeddings of shape (B, {expected}, d), or build it with "
                "AIDConfig(without_states=True)"
            )
        if state_embeddings.shape[:2] != (batch, expected):
            raise ValueError(
                f"state_embeddings must be (B={batch}, S·77={expected}, d) for "
                f"AIDConfig.num_states={self.config.num_states}, got "
                f"{tuple(state_embeddings.shape)}"
            )
        return self._project(self.text_in, state_embeddings)

    def _project(self, projection: nn.Linear | None, x: Tensor) -> Tensor:
        dtype = next(self.parameters()).dtype
        x = x.to(dtype)
        return x if projection is None else projection(x)
