"""Vanilla SVD image-to-video: ``AIDPipeline`` without AID, with SVD's option names.

image → CLIP token + unscaled VAE concat latent → EDM sampling with SVD's per-frame
guidance ramp → chunked temporal VAE decode → frames; one code path with AID's
prediction (``aid_model.pipeline``), of which this is the s_t = 0, no-AID case. As there,
frame 0 of the result is the given image itself (before the merge it was the decoded
frame 0, which differs from the image by the VAE's reconstruction error).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from aid_model.sampling import StepCallback
from aid_model.svd import SVDComponents


@dataclass(frozen=True)
class SVDSamplingOptions:
    """Sampling settings; defaults are SVD's (svd_xt users often take 1.5 → 3.0 guidance)."""

    num_frames: int = 14
    steps: int = 25
    sampler: str = "euler"
    min_guidance: float = 1.0
    max_guidance: float = 2.5
    fps: int = 7
    motion_bucket_id: int = 127
    cond_aug: float = 0.02
    seed: int = 0
    decode_chunk_size: int | None = 8

    def validate(self) -> None:
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.min_guidance < 0 or self.max_guidance < 0:
            raise ValueError(
                f"guidance scales must be >= 0, got {self.min_guidance} and {self.max_guidance}"
            )


@torch.no_grad()
def svd_image_to_video(
    components: SVDComponents,
    image: Tensor,
    options: SVDSamplingOptions = SVDSamplingOptions(),
    callback: StepCallback | None = None,
) -> Tensor:
    """Predicts a video from one frame with plain SVD.

    Args:
        image: (3, H, W) in [0, 1], H and W multiples of the model's size factor.
        options: see ``SVDSamplingOptions``.
        callback: called after each step with a ``StepInfo`` (may raise to cancel).
    Returns:
        (T, H, W, 3) float frames in [0, 1].
    """
    from aid_model.pipeline import AIDPipeline, PredictionOptions

    options.validate()
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one image (3, H, W) in [0, 1], got shape {tuple(image.shape)}")
    prediction = PredictionOptions(
        num_frames=options.num_frames, height=image.shape[1], width=image.shape[2],
        steps=options.steps, sampler=options.sampler, frame_scale_first=options.min_guidance,
        frame_scale=options.max_guidance, text_scale=0.0, seed=options.seed, fps=options.fps,
        motion_bucket_id=options.motion_bucket_id, cond_aug=options.cond_aug,
        decode_chunk_size=options.decode_chunk_size,
    )
    return AIDPipeline(components).predict([image], options=prediction, callback=callback)
