"""AID's dual classifier-free guidance (paper eq. 8) as a denoiser wrapper.

    D̃ = D(x, ∅, ∅) + s_f·(D(x, c_f, ∅) − D(x, ∅, ∅)) + s_t·(D(x, c_f, c_t) − D(x, c_f, ∅))

Rewritten as a weighted sum of the three branches,

    D̃ = (1 − s_f)·D(∅, ∅) + (s_f − s_t)·D(c_f, ∅) + s_t·D(c_f, c_t),

a branch whose weight is zero on every frame is not evaluated: s_t = 0 is plain CFG (two
branches: SVD's own guidance, with its per-frame ramp of s_f), s_f = s_t = 1 is the
conditional model alone (one branch). The branches that are needed run in one batched
UNet call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from aid_model.sampling.condition import VideoCondition
from aid_model.sampling.denoiser import VideoDenoiser


@dataclass(frozen=True)
class GuidanceSettings:
    """Guidance scales, as ``PredictionOptions.guidance()`` gives them (validated there).

    Attributes:
        frame_scale: s_f on the last frame; with ``frame_scale_first`` set, s_f ramps
            linearly from that value on frame 0 to ``frame_scale`` (SVD's linear guidance:
            svd 1.0 → 2.5, svd_xt 1.5 → 3.0).
        text_scale: s_t (0 skips the text branch).
        frame_scale_first: s_f on the first frame, or None for a constant s_f.
        interval: (σ_lo, σ_hi): guide only while σ_lo ≤ σ ≤ σ_hi; outside it the fully
            conditional branch alone is used (one UNet evaluation instead of three).
    """

    frame_scale: float
    text_scale: float
    frame_scale_first: float | None = None
    interval: tuple[float, float] | None = None

    def branch_weights(self, num_frames: int, text_enabled: Tensor | None = None) -> Tensor:
        """(3, B, T) weights of D(∅,∅), D(c_f,∅), D(c_f,c_t) per item and frame (B = 1
        when ``text_enabled`` (B,) is None; an item with text disabled gets s_t = 0)."""
        first = self.frame_scale if self.frame_scale_first is None else self.frame_scale_first
        frame = torch.linspace(first, self.frame_scale, num_frames)[None, :]  # (1, T)
        enabled = torch.ones(1) if text_enabled is None else text_enabled.float().cpu()
        text = (self.text_scale * enabled)[:, None].expand(-1, num_frames)  # (B, T)
        return torch.stack([(1.0 - frame).expand_as(text), frame - text, text])


class DualCFG:
    """Callable ``guided(x, sigma)`` for any sampler.

    Args:
        denoiser: the (AID) video denoiser.
        null: condition (∅, ∅): zero CLIP token and concat latent, null MCondition.
        frame_only: condition (c_f, ∅): frame condition with the null MCondition.
        full: condition (c_f, c_t).
        settings: scales, ramp and interval.
        text_enabled: (B,) bool, False for items without text (an empty instruction):
            their s_t is 0 while the rest of the batch keeps its text guidance.
    All three conditions have the batch size of the ``x`` the sampler passes.
    """

    def __init__(
        self,
        denoiser: VideoDenoiser,
        null: VideoCondition,
        frame_only: VideoCondition,
        full: VideoCondition,
        settings: GuidanceSettings,
        text_enabled: Tensor | None = None,
    ):
        self.text_enabled = text_enabled
        self.denoiser = denoiser
        self.settings = settings
        self.branches = (null, frame_only, full)
        self._batched: dict[tuple[int, ...], VideoCondition] = {}
        # (guided, T, device, dtype) → (branches to evaluate, their (3, B|1, T) weights on
        # the device): built once, not rebuilt on the CPU and copied at every step.
        self._weights: dict[tuple, tuple[list[int], Tensor]] = {}

    def _condition_for(self, needed: Sequence[int]) -> VideoCondition:
        key = tuple(needed)
        if key not in self._batched:  # built once per branch set, not per step
            self._batched[key] = VideoCondition.cat([self.branches[i] for i in needed])
        return self._batched[key]

    def _in_interval(self, sigma: Tensor) -> bool:
        if self.settings.interval is None:
            return True
        low, high = self.settings.interval
        # Which branches run is decided on the host, so σ is read there (one read a step).
        return low <= float(sigma.reshape(-1)[0]) <= high

    def _branch_weights(self, guided: bool, x: Tensor) -> tuple[list[int], Tensor]:
        """(indices of the branches with a non-zero weight, (3, B|1, T) weights on x's
        device in x's dtype)."""
        num_frames = x.shape[1]
        key = (guided, num_frames, x.device, x.dtype)
        if key not in self._weights:
            if guided:
                weights = self.settings.branch_weights(num_frames, self.text_enabled)
            else:
                weights = torch.tensor([0.0, 0.0, 1.0]).reshape(3, 1, 1).expand(3, 1, num_frames)
            used = weights.ne(0).flatten(1).any(1).tolist()  # on the CPU: nothing waits
            needed = [i for i in range(3) if used[i]]
            if not needed:  # s_f = s_t = 0 would be the unconditional model alone
                needed = [0]
            self._weights[key] = (needed, weights.to(x.device, x.dtype))
        return self._weights[key]

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        num_frames = x.shape[1]
        needed, weights = self._branch_weights(self._in_interval(sigma), x)
        repeats = len(needed)
        outputs = self.denoiser(
            torch.cat([x] * repeats),
            torch.cat([sigma] * repeats),
            self._condition_for(needed),
        ).chunk(repeats)
        shape = (weights.shape[1], num_frames, 1, 1, 1)  # per item (or 1 for all), per frame
        if needed == [0, 1]:
            # Plain CFG, in the form SVD's reference implementations (ComfyUI, diffusers)
            # round it, so plain SVD matches them to the last bit of this step.
            uncond, cond = outputs
            return uncond + weights[1].reshape(shape) * (cond - uncond)
        result = torch.zeros_like(x)
        for branch, output in zip(needed, outputs, strict=True):
            result = result + weights[branch].reshape(shape) * output
        return result
