"""Kernel distance (KVD on I3D features; KID on Inception features): the unbiased estimate
of the squared maximum mean discrepancy with the polynomial kernel

    k(x, y) = (xᵀy / D + 1)³

    MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j)
             − 2/(mn) Σ_{i,j} k(x_i, y_j)

By default on the whole sets (kernel sums built in row blocks, float64). With
``subset_size``, the estimate is averaged over ``num_subsets`` random subsets of that size
drawn from each set, as KID implementations do (which makes large sets cheaper and gives
a spread); the two agree in expectation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from aid_model.metrics.frechet import ArrayLike, as_float64

_BLOCK = 2048  # rows of the kernel matrix held at once: 2048 × N float64


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """k(x_i, y_j) = (x_iᵀ y_j / D + 1)³ for x (N, D), y (M, D) → (N, M)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _kernel_sum(x: Tensor, y: Tensor, exclude_diagonal: bool) -> float:
    """Σ_{i,j} k(x_i, y_j), without the i = j terms when ``exclude_diagonal`` (x is y)."""
    total = 0.0
    for start in range(0, x.shape[0], _BLOCK):
        block = polynomial_kernel(x[start : start + _BLOCK], y)
        total += float(block.sum())
        if exclude_diagonal:
            rows = torch.arange(block.shape[0])
            total -= float(block[rows, rows + start].sum())
    return total


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """The unbiased MMD² estimate with the polynomial kernel, x (m, D), y (n, D), m, n ≥ 2."""
    m, n = x.shape[0], y.shape[0]
    within_x = _kernel_sum(x, x, exclude_diagonal=True) / (m * (m - 1))
    within_y = _kernel_sum(y, y, exclude_diagonal=True) / (n * (n - 1))
    between = _kernel_sum(x, y, exclude_diagonal=False) / (m * n)
    return within_x + within_y - 2.0 * between


def kernel_distance(
    real: ArrayLike,
    generated: ArrayLike,
    *,
    subset_size: int | None = None,
    num_subsets: int = 100,
    seed: int = 0,
) -> float:
    """KVD (I3D features) or KID (Inception features) between ``real`` (N, D) and
    ``generated`` (M, D). See the module docstring for the estimate and the subsets."""
    x, y = as_float64(real), as_float64(generated)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"feature sets must be (N, D) and (M, D) with the same D, got {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(
            f"the unbiased estimate needs at least 2 samples per set, got {x.shape[0]} and "
            f"{y.shape[0]}"
        )
    if subset_size is None:
        return mmd2_unbiased(x, y)
    size = min(int(subset_size), x.shape[0], y.shape[0])
    if size < 2:
        raise ValueError(f"subset_size must be at least 2, got {subset_size}")
    rng = np.random.default_rng(seed)
    estimates = [
        mmd2_unbiased(
            x[torch.from_numpy(rng.choice(x.shape[0], size, replace=False))],
            y[torch.from_numpy(rng.choice(y.shape[0], size, replace=False))],
        )
        for _ in range(int(num_subsets))
    ]
    return float(np.mean(estimates))
