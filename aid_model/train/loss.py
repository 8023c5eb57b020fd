"""The EDM denoising loss SVD is trained with (aid-method.md §1).

    σ ~ LogNormal(P_mean, P_std²),  x_σ = x + σ·ε,  L = λ(σ)·‖D(x_σ; σ, c) − x‖²,
    λ(σ) = (σ² + 1)/σ²   (= 1/c_out² for σ_data = 1: the loss on the network output F)
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_sigma(generator: torch.Generator, p_mean: float, p_std: float) -> Tensor:
    """One σ ~ LogNormal(p_mean, p_std²), float32 scalar tensor (CPU)."""
    return (torch.randn((), generator=generator) * p_std + p_mean).exp()


def edm_loss_weight(sigma: Tensor) -> Tensor:
    """λ(σ) = (σ² + 1)/σ²."""
    return (sigma**2 + 1.0) / sigma**2


def frame_mask(num_frames: int, num_reference_frames: Tensor, frames: str) -> Tensor:
    """(B, T) float mask of the frames the loss covers: every frame (``all``) or the
    frames after each sample's K given ones (``predicted``)."""
    positions = torch.arange(num_frames, device=num_reference_frames.device)
    if frames == "all":
        return torch.ones(num_reference_frames.shape[0], num_frames,
                          device=num_reference_frames.device)
    if frames == "predicted":
        return (positions[None, :] >= num_reference_frames[:, None]).float()
    raise ValueError(f"loss frames must be 'all' or 'predicted', got {frames!r}")


def denoising_loss(denoised: Tensor, target: Tensor, sigma: Tensor, mask: Tensor) -> Tensor:
    """Per-sample weighted squared error, averaged over the covered frames' elements.

    Args:
        denoised: D(x_σ; σ, c), (B, T, C, h, w).
        target: the clean scaled latents x, (B, T, C, h, w).
        sigma: (B,).
        mask: (B, T) frames covered by the loss.
    Returns:
        (B,) float32 losses; the batch loss is their mean, so shards of a global batch
        average to the same value as the whole batch.
    """
    error = (denoised.float() - target.float()).pow(2).mean(dim=(2, 3, 4))  # (B, T)
    per_sample = (error * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
    return edm_loss_weight(sigma.float()) * per_sample
