"""e_v, the first frame as CLIP sees it (aid-method.md §4): visual tokens or the pooled token."""

from __future__ import annotations

from torch import Tensor, nn


def clip_image_context(image_encoder: nn.Module, clip_pixels: Tensor,
                       image_context: str = "tokens") -> Tensor:
    """The DQFormer's e_v for CLIP-preprocessed first frames.

    ``tokens`` **(ours)**: CLIP's own ``post_layernorm`` and ``visual_projection`` applied to
    every token of the last hidden state, so each token lives where the pooled image
    embedding lives (token 0 *is* SVD's image embedding) without new weights; a
    cross-attention onto a single key would give every query the same value.
    ``pooled``: only that image embedding, as one token.

    Args:
        image_encoder: transformers ``CLIPVisionModelWithProjection`` (frozen).
        clip_pixels: (B, 3, H, W) frames preprocessed as for SVD's image embedding
            (224 px, CLIP mean/std).
        image_context: ``tokens`` or ``pooled`` (``AIDConfig.image_context``).
    Returns:
        (B, M, projection_dim): M = 1 + (H/patch)·(W/patch) tokens (257 for ViT-H/14), or 1.
    """
    if image_context == "pooled":
        return image_encoder(pixel_values=clip_pixels).image_embeds[:, None]
    if image_context != "tokens":
        raise ValueError(f"image_context must be 'tokens' or 'pooled', got {image_context!r}")
    hidden = image_encoder.vision_model(pixel_values=clip_pixels).last_hidden_state
    return image_encoder.visual_projection(image_encoder.vision_model.post_layernorm(hidden))

