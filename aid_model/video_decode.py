"""Chunked temporal VAE decoding of video latents."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def decode_latents(vae, latents: Tensor, chunk_size: int | None = None) -> Tensor:
    """(B, T, C, h, w) UNSCALED VAE latents → (B, T, 3, H, W) frames, raw decoder output
    (≈ [−1, 1], not clamped).

    The temporal decoder mixes frames inside each decode call, so a chunk of ``chunk_size``
    frames is decoded as its own short video (as SVD's ``decoding_t`` does): smaller chunks
    use less memory and give slightly different frames. None decodes all T at once.
    """
    batch, frames = latents.shape[:2]
    chunk = frames if chunk_size is None else int(chunk_size)
    if chunk < 1:
        raise ValueError(f"decode chunk size must be >= 1, got {chunk_size}")
    outputs = []
    for video in latents:
        pieces = [
            vae.decode(part.to(device=vae.device, dtype=vae.dtype), num_frames=part.shape[0]).sample
            for part in video.split(chunk)
        ]
        outputs.append(torch.cat(pieces))
    return torch.stack(outputs).float().reshape(batch, frames, *outputs[0].shape[1:])


@torch.no_grad()
def decode_to_frames(vae, latents: Tensor, chunk_size: int | None = None) -> Tensor:
    """(B, T, C, h, w) UNSCALED VAE latents → (B, T, H, W, 3) frames in [0, 1] on the CPU
    (``decode_latents``, then clamped to the displayable range)."""
    frames = decode_latents(vae, latents, chunk_size)
    return ((frames + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 1, 3, 4, 2).cpu()
