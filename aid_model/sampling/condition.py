"""The conditioning of one SVD/AID denoiser call, as one batched object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class VideoCondition:
    """Everything the UNet needs besides the noisy state and σ.

    Attributes:
        image_embeddings: (B, N, d) cross-attention context; for SVD one CLIP image
            token (N = 1), zeros for the unconditional branch.
        concat_latents: (B, T, C, h, w) UNSCALED VAE latents concatenated to the noisy
            input on channels (SVD quirk: no 0.18215 and no c_in), zeros when unconditional.
        added_time_ids: (B, 3) micro-conditioning [fps − 1, motion_bucket_id, cond_aug].
        mcondition: (B, T, L, d) AID's per-frame MCondition, or None for plain SVD.
    """

    image_embeddings: Tensor
    concat_latents: Tensor
    added_time_ids: Tensor
    mcondition: Tensor | None = None

    @staticmethod
    def cat(conditions: Sequence[VideoCondition]) -> VideoCondition:
        """Stacks conditions on the batch axis, so several branches run in one UNet call."""
        with_mc = [c.mcondition is not None for c in conditions]
        if any(with_mc) and not all(with_mc):
            raise ValueError("cannot batch conditions with and without mcondition together")
        return VideoCondition(
            image_embeddings=torch.cat([c.image_embeddings for c in conditions]),
            concat_latents=torch.cat([c.concat_latents for c in conditions]),
            added_time_ids=torch.cat([c.added_time_ids for c in conditions]),
            mcondition=torch.cat([c.mcondition for c in conditions]) if all(with_mc) else None,
        )
