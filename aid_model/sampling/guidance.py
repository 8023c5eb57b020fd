"""Classifier-free guidance as denoiser wrappers (guidance is not the sampler's business)."""

from __future__ import annotations

import torch
from torch import Tensor

from aid_model.sampling.condition import VideoCondition
from aid_model.sampling.denoiser import VideoDenoiser


def frame_guidance_scales(num_frames: int, min_scale: float, max_scale: float) -> Tensor:
    """SVD's per-frame guidance ramp: scale rises linearly from the first frame to the
    last (svd: 1.0 → 2.5, svd_xt: 1.5 → 3.0; min = max gives plain CFG). Shape (T,)."""
    return torch.linspace(min_scale, max_scale, num_frames)


class FrameRampCFG:
    """D̃ = D(x, ∅) + s_t·(D(x, c) − D(x, ∅)) with a per-frame scale s_t (SVD's
    ``LinearPredictionGuider``). Both branches run in one batched UNet call.

    Call as ``guided(x, sigma)`` with x (B, T, C, h, w), so it plugs into any sampler.
    """

    def __init__(
        self,
        denoiser: VideoDenoiser,
        cond: VideoCondition,
        uncond: VideoCondition,
        min_scale: float,
        max_scale: float | None = None,
    ):
        self.denoiser = denoiser
        self.batched_cond = VideoCondition.cat([uncond, cond])
        self.min_scale = min_scale
        self.max_scale = min_scale if max_scale is None else max_scale
        # (T, device, dtype) → the ramp (1, T, 1, 1, 1) on the device: copied there once,
        # not at every step.
        self._scales: dict[tuple, Tensor] = {}

    def _scale(self, x: Tensor) -> Tensor:
        num_frames = x.shape[1]
        key = (num_frames, x.device, x.dtype)
        if key not in self._scales:
            scale = frame_guidance_scales(num_frames, self.min_scale, self.max_scale)
            self._scales[key] = scale.to(device=x.device, dtype=x.dtype).reshape(
                1, num_frames, 1, 1, 1)
        return self._scales[key]

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        both = self.denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), self.batched_cond)
        uncond_out, cond_out = both.chunk(2)
        return uncond_out + self._scale(x) * (cond_out - uncond_out)
