"""Vanilla SVD image-to-video on the project's own pieces (AID with every AID part off).

image → CLIP token + unscaled VAE concat latent → EDM sampling with SVD's per-frame
guidance → chunked temporal VAE decode → frames. The AID pipeline builds on the same
functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from aid_model.conditioning import clip_image_embedding, condition_latents, svd_added_time_ids
from aid_model.sampling import (
    FrameRampCFG,
    StepCallback,
    VideoCondition,
    VideoDenoiser,
    karras_sigmas,
    noise_to_initial_state,
    sample,
)
from aid_model.svd import SVDComponents
from aid_model.video_decode import decode_latents


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


def _check_frame(image: Tensor, components: SVDComponents) -> None:
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one image (3, H, W) in [0, 1], got shape {tuple(image.shape)}")
    levels = len(components.unet.config.block_out_channels)
    vae_factor = 2 ** (len(components.vae.config.block_out_channels) - 1)
    multiple = vae_factor * 2 ** (levels - 1)
    height, width = image.shape[1:]
    if height % multiple or width % multiple:
        raise ValueError(
            f"image size {height}x{width} is not a multiple of {multiple} (VAE factor "
            f"{vae_factor} × UNet downsampling {2 ** (levels - 1)}); resize or crop it first"
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
    options.validate()
    _check_frame(image, components)
    generator = torch.Generator().manual_seed(options.seed)
    frame = image.unsqueeze(0).float() * 2.0 - 1.0
    image_embeddings = clip_image_embedding(components.image_encoder, frame).float()
    latent = condition_latents(components.vae, frame, options.cond_aug, generator).float()
    concat = latent.unsqueeze(1).expand(-1, options.num_frames, -1, -1, -1)
    ids = svd_added_time_ids(options.fps, options.motion_bucket_id, options.cond_aug)
    cond = VideoCondition(image_embeddings, concat, ids).to(components.device)

    denoiser = VideoDenoiser(components.unet)
    if options.min_guidance == options.max_guidance == 1.0:

        def denoise(x: Tensor, sigma: Tensor) -> Tensor:
            return denoiser(x, sigma, cond)
    else:
        uncond = VideoCondition(
            torch.zeros_like(image_embeddings), torch.zeros_like(concat), ids
        ).to(components.device)
        denoise = FrameRampCFG(denoiser, cond, uncond, options.min_guidance, options.max_guidance)

    sigmas = karras_sigmas(options.steps, device=components.device)
    noise = torch.randn(concat.shape, generator=generator).to(components.device)
    x = noise_to_initial_state(noise, sigmas[0])
    x = sample(options.sampler, denoise, x, sigmas, callback)
    if not torch.isfinite(x).all():
        raise FloatingPointError(
            "sampling produced NaN/inf latents (float16 overflow is the usual cause); "
            "load the model in bfloat16 or float32"
        )
    scaling = components.vae.config.scaling_factor
    frames = decode_latents(components.vae, x / scaling, options.decode_chunk_size)
    return ((frames[0] + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu()
