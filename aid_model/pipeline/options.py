"""Prediction settings, their defaults and their validation (checked before any heavy work).

The fields' defaults below are the one source of the library's defaults: the CLI's and the
nodes' defaults and help texts are read from them. The bundled miniature's own settings are
``aid_model.demo.load.DEMO_OPTIONS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from numbers import Integral, Real

from aid_model.sampling import SAMPLERS
from aid_model.sampling.dual_guidance import GuidanceSettings

# What torch.Generator.manual_seed takes.
SEED_MAX = 2**64 - 1


@dataclass(frozen=True)
class PredictionOptions:
    """Everything about one prediction except the inputs.

    Attributes:
        num_frames: T, frames in the output including the K given ones; None = the AID
            model's ``num_frames`` (its DQFormer is built for that T), else 14.
        height, width: output size in pixels, multiples of the model's size factor
            (64 for SVD: VAE ×8, then three UNet downsamplings ×8).
        steps, sampler: EDM steps and sampler (euler, heun, dpmpp_2m).
        frame_scale, text_scale: s_f and s_t of eq. 8; s_t = 0 is plain SVD guidance. The
            paper states no scales; eq. 8 is InstructPix2Pix's dual guidance, so its
            defaults (image 1.5, text 7.5) are the starting point.
        frame_scale_first: s_f on frame 0 for SVD-style linear ramp to ``frame_scale``.
        guidance_interval: (σ_lo, σ_hi) outside which only the conditional branch runs.
        seed: noise seed in [0, 2⁶⁴ − 1]; the same seed gives the same video whatever else
            is batched.
        fps, motion_bucket_id, cond_aug: SVD micro-conditioning.
        decode_chunk_size: frames per temporal VAE decode call (None: all at once).
    """

    num_frames: int | None = None
    height: int = 256
    width: int = 256
    steps: int = 25
    sampler: str = "euler"
    frame_scale: float = 1.5
    text_scale: float = 7.5
    frame_scale_first: float | None = None
    guidance_interval: tuple[float, float] | None = None
    seed: int = 0
    fps: float = 7
    motion_bucket_id: int = 127
    cond_aug: float = 0.02
    decode_chunk_size: int | None = 8

    def with_(self, **changes) -> PredictionOptions:
        return replace(self, **changes)

    def guidance(self) -> GuidanceSettings:
        return GuidanceSettings(
            frame_scale=self.frame_scale,
            text_scale=self.text_scale,
            frame_scale_first=self.frame_scale_first,
            interval=self.guidance_interval,
        )

    def validate(
        self, num_reference_frames: int | None = None, size_multiple: int | None = None
    ) -> None:
        """Checks every setting; with ``num_reference_frames`` (K) also K < T, with
        ``size_multiple`` also the size. Raises ValueError naming the option, its value and
        the fix. Nothing below the pipeline's ``check_inputs`` checks them again."""
        frames = self.num_frames
        if frames is not None:
            _check_integer("num_frames", frames, 2, "predict at least 2 frames")
        if num_reference_frames is not None:
            if frames is None:
                raise ValueError("num_frames is not set (resolve it against the model first)")
            if not 1 <= num_reference_frames < frames:
                raise ValueError(
                    f"need 1 <= K < T: got K={num_reference_frames} reference frames for "
                    f"T={frames} frames; give fewer reference frames or predict more frames"
                )
        if size_multiple is not None:
            for name in ("height", "width"):
                value = getattr(self, name)
                if value < size_multiple or value % size_multiple:
                    raise ValueError(
                        f"{name}={value} is not a positive multiple of {size_multiple} (the "
                        f"model's size factor: VAE downsampling × UNet downsampling); try "
                        f"{max(size_multiple, round(value / size_multiple) * size_multiple)}"
                    )
        _check_integer("steps", self.steps, 1, "sample at least 1 step")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {sorted(SAMPLERS)}")
        for name in ("frame_scale", "text_scale", "frame_scale_first"):
            value = getattr(self, name)
            if value is not None:
                _check_number(name, value, 0, _default_hint(name))
        if self.guidance_interval is not None:
            interval = self.guidance_interval
            if (len(interval) != 2 or not all(isinstance(v, Real) and math.isfinite(v)
                                              for v in interval)
                    or not 0 <= interval[0] <= interval[1]):
                raise ValueError(
                    f"guidance_interval={interval!r} is not (σ_lo, σ_hi) with "
                    "0 <= σ_lo <= σ_hi; give two finite noise levels, e.g. (0.3, 100), or None "
                    "to guide at every step"
                )
        check_seed(self.seed)
        _check_number("fps", self.fps, 1, _default_hint("fps"))
        _check_number("motion_bucket_id", self.motion_bucket_id, 0,
                      _default_hint("motion_bucket_id"))
        _check_number("cond_aug", self.cond_aug, 0, _default_hint("cond_aug"))
        if self.decode_chunk_size is not None:
            _check_integer("decode_chunk_size", self.decode_chunk_size, 1,
                           "decode at least 1 frame a call, or None for all at once")


def check_seed(seed, name: str = "seed") -> None:
    """Raises ValueError unless ``seed`` is a whole number in [0, SEED_MAX]."""
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{name} must be a whole number from 0 to {SEED_MAX}, got {seed!r}; "
                         "choose a seed in that range, e.g. 0")


def _default_hint(name: str) -> str:
    default = next(f.default for f in fields(PredictionOptions) if f.name == name)
    return f"use e.g. the default {default}"


def _check_number(name: str, value, low: float, fix: str) -> None:
    if (isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value)
            or value < low):
        raise ValueError(f"{name} must be a finite number >= {low}, got {value!r}; {fix}")


def _check_integer(name: str, value, low: int, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}; {fix}")
