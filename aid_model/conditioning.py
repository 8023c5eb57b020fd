"""SVD conditioning from one frame: CLIP image token, concat latent, micro-conditioning.

Conventions follow the original SVD (and diffusers): frames are in [−1, 1]; the concat
latent is the VAE latent mode of the frame plus ``cond_aug``·N(0, 1) noise added in that
[−1, 1] pixel space, and is NOT scaled; CLIP sees the clean frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# OpenCLIP's (= OpenAI CLIP's) pixel normalisation.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def svd_added_time_ids(
    fps: float, motion_bucket_id: float, cond_aug: float, batch_size: int = 1
) -> Tensor:
    """(B, 3) float32 micro-conditioning [fps − 1, motion_bucket_id, cond_aug].

    SVD was trained with fps_id = fps − 1 (the original and diffusers both subtract 1).
    """
    if fps < 1:
        raise ValueError(f"fps must be >= 1 (SVD embeds fps - 1), got {fps}")
    ids = torch.tensor([[fps - 1.0, float(motion_bucket_id), float(cond_aug)]])
    return ids.expand(batch_size, 3).clone()


def clip_pixel_values(frames: Tensor, image_size: int) -> Tensor:
    """(B, 3, H, W) frames in [−1, 1] → CLIP input (B, 3, S, S): bicubic antialiased resize
    to the tower's size (aspect ratio not kept, as SVD does), then CLIP normalisation."""
    resized = F.interpolate(
        frames.float(),
        size=(image_size, image_size),
        mode="bicubic",
        align_corners=True,
        antialias=True,
    )
    unit = ((resized + 1.0) / 2.0).clamp(0.0, 1.0)
    mean = torch.tensor(CLIP_MEAN, device=frames.device).reshape(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=frames.device).reshape(1, 3, 1, 1)
    return (unit - mean) / std


@torch.no_grad()
def clip_image_embedding(image_encoder, frames: Tensor) -> Tensor:
    """(B, 3, H, W) frames in [−1, 1] → (B, 1, d) projected CLIP image embedding, the one
    cross-attention token SVD conditions on."""
    size = image_encoder.config.image_size
    dtype = image_encoder.dtype
    pixels = clip_pixel_values(frames, size).to(device=image_encoder.device, dtype=dtype)
    return image_encoder(pixel_values=pixels).image_embeds.unsqueeze(1)


@torch.no_grad()
def condition_latents(
    vae, frames: Tensor, cond_aug: float, generator: torch.Generator | None = None
) -> Tensor:
    """(B, 3, H, W) frames in [−1, 1] → (B, C, h, w) UNSCALED VAE latent mode of the frame
    with ``cond_aug``·N(0, 1) noise added in pixel space."""
    noise = torch.randn(frames.shape, generator=generator, dtype=torch.float32, device="cpu")
    noisy = frames.float() + cond_aug * noise.to(frames.device)
    noisy = noisy.to(device=vae.device, dtype=vae.dtype)
    return vae.encode(noisy).latent_dist.mode()
