"""Fréchet distance between two feature sets (FVD on I3D features, FID on Inception features).

    d² = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2})

computed in float64. The trace of the matrix square root is taken without forming the
(non-symmetric) product: with S = Σ_r^{1/2} (symmetric, by eigen-decomposition),
Σ_r Σ_g has the same eigenvalues as the symmetric S Σ_g S, so

    Tr (Σ_r Σ_g)^{1/2} = Σ_i sqrt(λ_i(S Σ_g S)),   λ_i clamped at 0.

Two symmetric eigen-decompositions replace scipy's general ``sqrtm``: no complex parts to
discard, no failure on singular covariances (fewer samples than dimensions), and no scipy.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

ArrayLike = np.ndarray | Tensor


def as_float64(features: ArrayLike, name: str = "features") -> Tensor:
    """``features`` as a float64 CPU tensor (numpy arrays are not copied twice)."""
    tensor = torch.as_tensor(np.asarray(features) if not isinstance(features, Tensor) else features)
    return tensor.detach().to(device="cpu", dtype=torch.float64)


def feature_statistics(features: ArrayLike) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of ``features`` (N, D), N ≥ 2, in float64.

    The covariance divides by N − 1 (``numpy.cov``'s default, as the common FVD code uses).
    """
    x = as_float64(features)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N ≥ 2, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("features contain NaN or infinity; check the extractor's input range")
    mean = x.mean(dim=0)
    centred = x - mean
    return mean, centred.T @ centred / (x.shape[0] - 1)


def _nonnegative(values: Tensor) -> Tensor:
    """Eigenvalues of a PSD matrix with rounding noise removed: those below the usual rank
    tolerance (D · ε · λ_max) are zero. Their square roots would otherwise turn noise of
    1e-16 into errors of 1e-8 each, which adds up when covariances are singular."""
    tolerance = values.shape[0] * torch.finfo(values.dtype).eps * values.abs().max()
    return torch.where(values > tolerance, values, torch.zeros_like(values))


def _symmetric_sqrt(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * _nonnegative(values).sqrt()) @ vectors.T


def trace_sqrt_product(sigma_a: Tensor, sigma_b: Tensor) -> float:
    """Tr((Σ_a Σ_b)^{1/2}) for symmetric positive semi-definite Σ_a, Σ_b (float64)."""
    root_a = _symmetric_sqrt(sigma_a)
    inner = root_a @ sigma_b @ root_a
    values = torch.linalg.eigvalsh((inner + inner.T) / 2)
    return float(_nonnegative(values).sqrt().sum())


def frechet_distance(
    mean_a: ArrayLike, sigma_a: ArrayLike, mean_b: ArrayLike, sigma_b: ArrayLike
) -> float:
    """Fréchet distance between N(mean_a, sigma_a) and N(mean_b, sigma_b)."""
    mu_a, mu_b = as_float64(mean_a), as_float64(mean_b)
    cov_a, cov_b = as_float64(sigma_a), as_float64(sigma_b)
    dim = mu_a.shape[0]
    if (
        mu_a.shape != (dim,)
        or mu_b.shape != (dim,)
        or cov_a.shape != (dim, dim)
        or (cov_b.shape != (dim, dim))
    ):
        raise ValueError(
            f"statistics do not match: means {tuple(mu_a.shape)}, {tuple(mu_b.shape)}, "
            f"covariances {tuple(cov_a.shape)}, {tuple(cov_b.shape)}"
        )
    difference = float(((mu_a - mu_b) ** 2).sum())
    trace = float(torch.trace(cov_a) + torch.trace(cov_b))
    return difference + trace - 2.0 * trace_sqrt_product(cov_a, cov_b)


def frechet_distance_from_features(real: ArrayLike, generated: ArrayLike) -> float:
    """Fréchet distance between the Gaussians fitted to ``real`` (N, D) and ``generated``
    (M, D): FVD when the features are I3D's, FID when they are Inception's."""
    real_t, generated_t = as_float64(real), as_float64(generated)
    if real_t.ndim != 2 or generated_t.ndim != 2 or real_t.shape[1] != generated_t.shape[1]:
        raise ValueError(
            f"feature sets must be (N, D) and (M, D) with the same D, got "
            f"{tuple(real_t.shape)} and {tuple(generated_t.shape)}"
        )
    return frechet_distance(*feature_statistics(real_t), *feature_statistics(generated_t))
