"""Prediction settings and their validation (checked before any heavy work)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from aid_model.sampling import SAMPLERS
from aid_model.sampling.dual_guidance import GuidanceSettings

# Defaults (ours): the paper states no scales; eq. 8 is InstructPix2Pix's dual guidance,
# so its defaults (image 1.5, text 7.5) are the starting point.
DEFAULT_FRAME_SCALE = 1.5
DEFAULT_TEXT_SCALE = 7.5


@dataclass(frozen=True)
class PredictionOptions:
    """Everything about one prediction except the inputs.

    Attributes:
        num_frames: T, frames in the output including the K given ones; None = the AID
            model's ``num_frames`` (its DQFormer is built for that T), else 14.
        height, width: output size in pixels, multiples of the model's size factor
            (64 for SVD: VAE ×8, then three UNet downsamplings ×8).
        steps, sampler: EDM steps and sampler (euler, heun, dpmpp_2m).
        frame_scale, text_scale: s_f and s_t of eq. 8; s_t = 0 is plain SVD guidance.
        frame_scale_first: s_f on frame 0 for SVD-style linear ramp to ``frame_scale``.
        guidance_interval: (σ_lo, σ_hi) outside which only the conditional branch runs.
        seed: noise seed; the same seed gives the same video whatever else is batched.
        fps, motion_bucket_id, cond_aug: SVD micro-conditioning.
        decode_chunk_size: frames per temporal VAE decode call (None: all at once).
    """

    num_frames: int | None = None
    height: int = 256
    width: int = 256
    steps: int = 25
    sampler: str = "euler"
    frame_scale: float = DEFAULT_FRAME_SCALE
    text_scale: float = DEFAULT_TEXT_SCALE
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

    def validate(self, num_reference_frames: int, size_multiple: int) -> None:
        """Raises ValueError naming the option, its value and the fix."""
        frames = self.num_frames
        if frames is None:
            raise ValueError("num_frames is not set (resolve it against the model first)")
        if frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {frames}")
        if not 1 <= num_reference_frames < frames:
            raise ValueError(
                f"need 1 <= K < T: got K={num_reference_frames} reference frames for "
                f"T={frames} frames; give fewer reference frames or predict more frames"
            )
        for name in ("height", "width"):
            value = getattr(self, name)
            if value < size_multiple or value % size_multiple:
                raise ValueError(
                    f"{name}={value} is not a positive multiple of {size_multiple} (the model's "
                    f"size factor: VAE downsampling × UNet downsampling); try "
                    f"{max(size_multiple, round(value / size_multiple) * size_multiple)}"
                )
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {sorted(SAMPLERS)}")
        if self.fps < 1:
            raise ValueError(f"fps must be >= 1, got {self.fps}")
        if self.cond_aug < 0:
            raise ValueError(f"cond_aug must be >= 0, got {self.cond_aug}")
        if self.decode_chunk_size is not None and self.decode_chunk_size < 1:
            raise ValueError(f"decode_chunk_size must be >= 1, got {self.decode_chunk_size}")
        self.guidance().validate()
