"""The feature networks of an evaluation: I3D (FVD, KVD) and optionally Inception (FID).

Both are files the user supplies (``aid_model.metrics``); they are loaded and checked
before any sampling, the I3D one also on a real clip of the dataset, so a file that cannot
take the data's clips fails in seconds rather than after hours of sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from aid_model.metrics import FeatureModelError, load_i3d, load_inception
from aid_model.metrics.i3d import I3DFeatureExtractor
from aid_model.metrics.inception import InceptionFeatureExtractor


@dataclass
class ClipFeatures:
    """Features of one batch of B clips.

    Attributes:
        real_i3d, generated_i3d: (B, D) float64.
        inception_owner: (M,) int64 batch positions of the frame rows (None without FID).
        real_inception, generated_inception: (M, D₂) float32, the predicted frames
            (t ≥ K of each clip) of the real and the generated clip.
    """

    real_i3d: Tensor
    generated_i3d: Tensor
    inception_owner: Tensor | None = None
    real_inception: Tensor | None = None
    generated_inception: Tensor | None = None


@dataclass
class FeatureNetworks:
    """The loaded networks and the batch size of their calls."""

    i3d: I3DFeatureExtractor
    inception: InceptionFeatureExtractor | None
    batch_size: int

    @classmethod
    def load(cls, i3d: Path, inception: Path | None, device: torch.device, batch_size: int,
             features: str = "logits", bn_eps: float = 1e-5) -> FeatureNetworks:
        """Loads and checks the files (``FeatureModelError`` naming the file otherwise)."""
        i3d_network = load_i3d(i3d, device, features=features, bn_eps=bn_eps)
        inception_network = load_inception(inception, device) if inception is not None else None
        return cls(i3d_network, inception_network, batch_size)

    def check_on_clip(self, clip: Tensor, sample_id: str) -> None:
        """Runs I3D on one real clip (T, 3, H, W) in [−1, 1] of the dataset: a network that
        cannot take the data's clips (too few frames for its pooling, say) fails here."""
        try:
            features = self.i3d.video_features(clip.unsqueeze(0), batch_size=1)
        except Exception as error:  # a foreign network's failure: report it with the clip shape
            raise FeatureModelError(
                f"the I3D file {self.i3d.path} failed on the first clip of the data "
                f"({sample_id}, {clip.shape[0]} frames of {clip.shape[2]}×{clip.shape[3]}): "
                f"{type(error).__name__}: {error}. I3D's last pooling needs at least 9 frames; "
                "the paper's clips have 12 or 16 (data.num_frames)"
            ) from None
        if not torch.isfinite(features).all():
            raise FeatureModelError(
                f"the I3D file {self.i3d.path} gave non-finite features for {sample_id}")

    @torch.no_grad()
    def __call__(self, real: Tensor, generated: Tensor,
                 num_reference_frames: Tensor) -> ClipFeatures:
        """Real and generated clips (B, T, 3, H, W) in [−1, 1] (whole clips, the K given
        frames included, as aid-method §8 asks) → their features."""
        result = ClipFeatures(
            self.i3d.video_features(real, self.batch_size),
            self.i3d.video_features(generated, self.batch_size),
        )
        if self.inception is not None:
            # FID on the predicted frames only: the K given frames are the same in both
            # sets and would pull the distance towards 0.
            owner = torch.cat([torch.full((real.shape[1] - int(k),), b, dtype=torch.long)
                               for b, k in enumerate(num_reference_frames.tolist())])
            frames_real = torch.cat([clip[int(k):] for clip, k in
                                     zip(real, num_reference_frames.tolist(), strict=True)])
            frames_generated = torch.cat([clip[int(k):] for clip, k in
                                          zip(generated, num_reference_frames.tolist(),
                                              strict=True)])
            batch = max(self.batch_size * real.shape[1], 1)
            result.inception_owner = owner
            result.real_inception = self.inception.frame_features(frames_real, batch).float()
            result.generated_inception = self.inception.frame_features(
                frames_generated, batch).float()
        return result
