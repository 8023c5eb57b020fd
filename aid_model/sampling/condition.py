"""The conditioning of one SVD/AID denoiser call, as one batched object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

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

    @property
    def batch_size(self) -> int:
        return self.concat_latents.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """Moves every tensor; ``added_time_ids`` keep float32 (they feed sinusoids)."""

        def move(name: str, value: Tensor | None) -> Tensor | None:
            if value is None:
                return None
            target_dtype = torch.float32 if name == "added_time_ids" else dtype
            return value.to(device=device, dtype=target_dtype)

        return replace(self, **{f.name: move(f.name, getattr(self, f.name)) for f in fields(self)})

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

    def repeat(self, times: int) -> VideoCondition:
        """The same condition ``times`` times on the batch axis (batch order: a a a b b b)."""
        return VideoCondition(
            image_embeddings=self.image_embeddings.repeat_interleave(times, dim=0),
            concat_latents=self.concat_latents.repeat_interleave(times, dim=0),
            added_time_ids=self.added_time_ids.repeat_interleave(times, dim=0),
            mcondition=None
            if self.mcondition is None
            else self.mcondition.repeat_interleave(times, dim=0),
        )
