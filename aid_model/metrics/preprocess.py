"""Preparing clips for the feature networks, as aid-method §8 states for I3D.

I3D (FVD, KVD): frames resized so the short side is 224 (bilinear), centre-cropped to
224 × 224, values in [−1, 1], laid out (B, 3, T, 224, 224). The clips are whole: the K
given reference frames stay in (generated and real alike).

Inception (FID): frames as uint8 values (N, 3, H, W); the Inception network resizes to
299 itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

I3D_SIZE = 224


def _check_videos(videos: Tensor) -> None:
    if videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(
            f"videos must be (B, T, 3, H, W) (the dataset's and the pipeline's layout), got "
            f"shape {tuple(videos.shape)}"
        )


def to_minus_one_one(values: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Map ``value_range`` linearly onto [−1, 1] and clamp."""
    low, high = value_range
    if high <= low:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    return ((values.float() - low) * (2.0 / (high - low)) - 1.0).clamp(-1.0, 1.0)


def i3d_preprocess(
    videos: Tensor, value_range: tuple[float, float] = (-1.0, 1.0), size: int = I3D_SIZE
) -> Tensor:
    """(B, T, 3, H, W) in ``value_range`` → (B, 3, T, size, size) float in [−1, 1].

    Short side to ``size`` by bilinear interpolation (align_corners False, no antialias,
    like the StyleGAN-V-derived FVD code), the long side scaled alike (rounded, at least
    ``size``), then the centre ``size`` × ``size`` crop.
    """
    _check_videos(videos)
    batch, frames, _, height, width = videos.shape
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    flat = to_minus_one_one(videos, value_range).reshape(batch * frames, 3, height, width)
    if (new_h, new_w) != (height, width):
        flat = F.interpolate(flat, size=(new_h, new_w), mode="bilinear", align_corners=False)
        # Bilinear weights sum to 1, but float rounding can step past ±1 by an ulp.
        flat = flat.clamp(-1.0, 1.0)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    flat = flat[:, :, top : top + size, left : left + size]
    return flat.reshape(batch, frames, 3, size, size).permute(0, 2, 1, 3, 4).contiguous()


def inception_preprocess(frames: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """(N, 3, H, W) in ``value_range`` → uint8 (N, 3, H, W), the Inception network's input."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (N, 3, H, W), got shape {tuple(frames.shape)}")
    unit = (to_minus_one_one(frames, value_range) + 1.0) * 127.5
    return unit.round().clamp(0, 255).to(torch.uint8)
