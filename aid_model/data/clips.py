"""Clip sampling: which frames of a segment make the T-frame clip, and how they become a tensor.

A stride is either an integer s (T frames s apart, a window that may slide inside the
segment) or ``"uniform"`` (T frames spread evenly over the whole segment, first and last
included: the paper's "reduce each video to 12 frames", following Seer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from aid_model.data.decode import ShortClipError

Stride = int | str
UNIFORM = "uniform"


def parse_stride(stride: object) -> Stride:
    """``stride`` checked: a positive integer or ``"uniform"``."""
    if isinstance(stride, str):
        if stride.strip().lower() == UNIFORM:
            return UNIFORM
        if stride.strip().isdigit():
            stride = int(stride)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive integer or 'uniform', got {stride!r}")
    return stride


def parse_size(size: object) -> tuple[int, int]:
    """``size`` as (height, width): an int (square) or a pair, each a positive multiple of 8."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
    ):
        raise ValueError(f"size must be an int or [height, width], got {size!r}")
    height, width = size
    if height < 8 or width < 8 or height % 8 or width % 8:
        # The VAE downsamples by 8; other sizes would be cropped again later.
        raise ValueError(f"size must be positive multiples of 8 (VAE factor), got {size!r}")
    return int(height), int(width)


def frames_needed(num_frames: int, stride: Stride) -> int:
    """The fewest frames a segment must have to yield a clip."""
    return num_frames if stride == UNIFORM else (num_frames - 1) * int(stride) + 1


def choose_indices(
    available: int,
    num_frames: int,
    stride: Stride,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """``num_frames`` ascending indices into a segment of ``available`` frames.

    Integer stride: a window of (T − 1)·s + 1 frames starting at a random offset drawn from
    ``rng`` (uniform over every offset that fits), or at 0 without ``rng``. Uniform: T
    frames from first to last, rounded half up (strictly increasing since the spacing is
    at least 1). Raises ``ShortClipError`` when the segment is too short.
    """
    needed = frames_needed(num_frames, stride)
    if available < needed:
        raise ShortClipError(available, needed)
    if stride == UNIFORM:
        if num_frames == 1:
            return [0]
        positions = np.arange(num_frames) * ((available - 1) / (num_frames - 1))
        return [int(v) for v in np.floor(positions + 0.5)]
    step = int(stride)
    slack = available - needed
    offset = int(rng.integers(0, slack + 1)) if rng is not None and slack > 0 else 0
    return [offset + k * step for k in range(num_frames)]


def clip_fps(native_fps: float, indices: Sequence[int]) -> float:
    """Frame rate of the sampled clip: the source rate over the mean spacing of the indices."""
    if len(indices) < 2 or indices[-1] == indices[0]:
        return float(native_fps)
    spacing = (indices[-1] - indices[0]) / (len(indices) - 1)
    return float(native_fps) / spacing


def frames_to_tensor(frames: Sequence[np.ndarray], size: tuple[int, int]) -> Tensor:
    """uint8 RGB frames (H, W, 3), any size → (T, 3, height, width) float in [−1, 1].

    Each frame is scaled to cover ``size`` (aspect ratio kept, antialiased bicubic) and
    centre-cropped, as the reference frames at prediction time are.
    """
    from aid_model.images import resize_and_center_crop

    height, width = size
    out = torch.empty(len(frames), 3, height, width)
    for t, frame in enumerate(frames):
        image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float() / 255.0
        out[t] = resize_and_center_crop(image, height, width)
    return out.mul_(2.0).sub_(1.0).clamp_(-1.0, 1.0)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one item: a function of (seed, epoch, index) only, so an item is the
    same whichever worker or rank loads it, and changes from epoch to epoch."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])
