"""The concat condition for K reference frames (aid-method.md §2)."""

from __future__ import annotations

import torch
from torch import Tensor

from aid_model.aid.config import CONCAT_FILLS


def reference_concat_latents(reference_latents: Tensor, num_frames: int,
                             fill: str = "repeat_last") -> Tensor:
    """Concat latents for a T-frame clip whose first K frames are given.

    Frame t < K gets its own latent; frames t ≥ K get the last reference's latent
    (``repeat_last``: for K = 1 exactly SVD's image-to-video conditioning) or zeros
    (``zeros``: the paper's mask; a mask channel would change the UNet's 8 inputs).

    Args:
        reference_latents: (B, K, C, h, w) UNSCALED VAE latents of the reference frames
            (SVD's concat latents carry no 0.18215).
        num_frames: T ≥ K.
        fill: ``repeat_last`` or ``zeros`` (``AIDConfig.concat_fill``).
    Returns:
        (B, T, C, h, w), for ``VideoCondition.concat_latents``.
    """
    if reference_latents.ndim != 5:
        raise ValueError(
            f"reference_latents must be (B, K, C, h, w), got shape {tuple(reference_latents.shape)}"
        )
    given = reference_latents.shape[1]
    if not 1 <= given <= num_frames:
        raise ValueError(f"need 1 ≤ K ≤ T reference frames, got K={given}, T={num_frames}")
    if fill not in CONCAT_FILLS:
        raise ValueError(f"concat fill must be one of {CONCAT_FILLS}, got {fill!r}")
    rest = num_frames - given
    if fill == "repeat_last":
        tail = reference_latents[:, -1:].expand(-1, rest, -1, -1, -1)
    else:
        tail = reference_latents.new_zeros(reference_latents.shape[0], rest,
                                           *reference_latents.shape[2:])
    return torch.cat([reference_latents, tail], dim=1)
