"""The frozen text encoder AID conditions on: OpenCLIP ViT-H/14's text tower, SD 2.x style.

SD 2.x "penultimate" convention (ldm/sgm ``FrozenOpenCLIPEmbedder(layer="penultimate")``):
run the blocks up to the second-to-last, apply the final LayerNorm, keep all 77 positions.
Only the causal mask is applied, never a padding mask, as in open_clip: positions after
EOT attend to the pads before them and carry their own, deterministic values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from .tokenizer import OpenCLIPTokenizer


@dataclass
class TextEncoding:
    """Everything one pass of the text tower gives, for N texts.

    Attributes:
        token_ids: ``(N, 77)`` int64, open_clip's ids (pad 0).
        hidden_states: L + 1 tensors ``(N, 77, width)``: the embeddings (token +
            position), then each block's output before any final LayerNorm.
        penultimate: ``(N, 77, width)``, SD 2.x conditioning: final LayerNorm of the
            second-to-last block's output. What `TextEncoder.encode` returns.
        last: ``(N, 77, width)``, final LayerNorm of the last block's output; None for a
            tower that already ends at the penultimate block.
        pooled: ``(N, width)``, ``last`` at each text's EOT (open_clip: argmax of the ids).
        projected: ``(N, embed_dim)``, ``pooled @ text_projection``; None without a
            projection. Not normalised (divide by its norm for CLIP similarity).
    """

    token_ids: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...]
    penultimate: torch.Tensor
    last: torch.Tensor | None
    pooled: torch.Tensor | None
    projected: torch.Tensor | None


class TextEncoder(nn.Module):
    """Tokenizer + frozen CLIP text tower; ``encode(texts) -> (N, 77, width)``.

    Args:
        model: the transformers tower; `CLIPTextModelWithProjection` gives projected
            embeddings too.
        tokenizer: open_clip-compatible tokenizer (`load_tokenizer`).
        ends_at_penultimate: the tower was stored without its last block (diffusers SD 2.x
            ``text_encoder`` folders, 23 of ViT-H's 24 blocks), so its last block's output
            is the penultimate one and pooled/projected embeddings do not exist.
    """

    def __init__(
        self,
        model: CLIPTextModel | CLIPTextModelWithProjection,
        tokenizer: OpenCLIPTokenizer,
        ends_at_penultimate: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.ends_at_penultimate = ends_at_penultimate
        config = model.config
        if tokenizer.context_length > config.max_position_embeddings:
            raise ValueError(
                f"the tokenizer makes {tokenizer.context_length} positions but the tower "
                f"has {config.max_position_embeddings} position embeddings"
            )
        largest_id = max(tokenizer.vocab_size - 1, tokenizer.sot_id, tokenizer.eot_id)
        if largest_id >= config.vocab_size:
            raise ValueError(
                f"the tokenizer produces ids up to {largest_id} but the tower's vocabulary "
                f"has {config.vocab_size} entries; the tokenizer folder belongs to another model"
            )
        # Frozen (paper §3.3): no dropout, no gradients into CLIP.
        self.requires_grad_(False)
        self.eval()

    @property
    def text_model(self) -> CLIPTextModel:
        """The tower without projection."""
        if isinstance(self.model, CLIPTextModelWithProjection):
            return self.model.text_model
        return self.model

    @property
    def text_projection(self) -> nn.Linear | None:
        """``width → embed_dim`` projection (`nn.Linear`, no bias), or None."""
        return getattr(self.model, "text_projection", None)

    @property
    def width(self) -> int:
        """Channels per token (1024 for ViT-H/14, the UNet's context width)."""
        return self.model.config.hidden_size

    @property
    def context_length(self) -> int:
        """Tokens per text (77)."""
        return self.tokenizer.context_length

    @property
    def device(self) -> torch.device:
        return self.text_model.embeddings.token_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.text_model.embeddings.token_embedding.weight.dtype

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """open_clip token ids ``(N, 77)`` int64 on CPU."""
        return self.tokenizer(texts)

    @torch.no_grad()
    def encode_tokens(self, token_ids: torch.Tensor) -> TextEncoding:
        """Run the tower on token ids ``(N, 77)``; see `TextEncoding` for the outputs."""
        token_ids = token_ids.to(self.device)
        if token_ids.shape[0] == 0:
            return self._empty_encoding(token_ids)
        # No attention_mask on purpose: open_clip and SD 2.x apply the causal mask only.
        output = self.text_model(input_ids=token_ids, output_hidden_states=True)
        hidden_states = tuple(output.hidden_states)
        if self.ends_at_penultimate:
            return TextEncoding(
                token_ids, hidden_states, output.last_hidden_state, None, None, None
            )
        penultimate = self.text_model.final_layer_norm(hidden_states[-2])
        last = output.last_hidden_state
        # open_clip pools at argmax(ids): the first EOT, the largest id of the vocabulary.
        rows = torch.arange(token_ids.shape[0], device=token_ids.device)
        pooled = last[rows, token_ids.argmax(dim=-1)]
        projection = self.text_projection
        projected = projection(pooled) if projection is not None else None
        return TextEncoding(token_ids, hidden_states, penultimate, last, pooled, projected)

    def _empty_encoding(self, token_ids: torch.Tensor) -> TextEncoding:
        # The attention reshape cannot infer a size from a zero batch; nothing to compute.
        def empty(*shape: int) -> torch.Tensor:
            return torch.empty(0, *shape, device=self.device, dtype=self.dtype)

        length = token_ids.shape[1]
        layers = self.model.config.num_hidden_layers
        hidden_states = tuple(empty(length, self.width) for _ in range(layers + 1))
        if self.ends_at_penultimate:
            return TextEncoding(
                token_ids, hidden_states, empty(length, self.width), None, None, None
            )
        projection = self.text_projection
        projected = empty(projection.out_features) if projection is not None else None
        return TextEncoding(
            token_ids,
            hidden_states,
            empty(length, self.width),
            empty(length, self.width),
            empty(self.width),
            projected,
        )

    def encode_all(self, texts: Sequence[str]) -> TextEncoding:
        """Tokenize and run the tower: penultimate, last, pooled and projected outputs."""
        return self.encode_tokens(self.tokenize(texts))

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """SD 2.x penultimate conditioning, ``(N, 77, width)``, the DQFormer's text input.

        Args:
            texts: N strings; "" gives the null text of classifier-free guidance.
        """
        return self.encode_all(texts).penultimate

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Same as `encode`."""
        return self.encode(texts)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write a transformers folder (config, model.safetensors, tokenizer files).

        `load_text_encoder(folder)` loads it back with identical outputs.
        """
        if self.ends_at_penultimate:
            raise ValueError(
                "this tower was loaded without its last block (diffusers SD 2.x "
                "text_encoder); saved on its own it would be read as a full tower and "
                "encode one block too early. Save from the OpenCLIP or SD 2.x file instead"
            )
        self.model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(folder)
