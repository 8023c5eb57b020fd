"""EDM arithmetic of SVD (Karras et al. 2022, with SVD's v-prediction parameterisation).

SVD uses σ_data = 1 and the ``VScalingWithEDMcNoise`` preconditioning:

    D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ))
    c_skip = 1/(σ²+1),  c_out = −σ/√(σ²+1),  c_in = 1/√(σ²+1),  c_noise = ¼·ln σ
"""

from __future__ import annotations

import torch
from torch import Tensor

SVD_SIGMA_MIN = 0.002
SVD_SIGMA_MAX = 700.0
KARRAS_RHO = 7.0


def v_prediction_scalings(sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) for noise levels ``sigma`` (any shape, same shape out)."""
    sigma_sq_plus_one = sigma**2 + 1.0
    c_skip = 1.0 / sigma_sq_plus_one
    c_out = -sigma / sigma_sq_plus_one.sqrt()
    c_in = 1.0 / sigma_sq_plus_one.sqrt()
    c_noise = 0.25 * sigma.log()
    return c_skip, c_out, c_in, c_noise


def karras_sigmas(
    num_steps: int,
    sigma_min: float = SVD_SIGMA_MIN,
    sigma_max: float = SVD_SIGMA_MAX,
    rho: float = KARRAS_RHO,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Karras et al. (2022) eq. 5 noise levels, decreasing, with a final 0 appended.

    Returns a float32 tensor of shape (num_steps + 1,). Computed in float32 like the
    reference implementations, so σ_max comes out as 700.0001 (the value the goldens use).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    ramp = torch.linspace(0, 1, num_steps, device=device)
    inv_rho_min = sigma_min ** (1 / rho)
    inv_rho_max = sigma_max ** (1 / rho)
    sigmas = (inv_rho_max + ramp * (inv_rho_min - inv_rho_max)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def noise_to_initial_state(noise: Tensor, sigma_start: Tensor | float) -> Tensor:
    """x₀ = √(1+σ₀²)·ε: the starting state of sampling from pure noise.

    The √(1+σ²) (rather than σ) follows SVD: at σ_max = 700 the two differ by 1e-6
    relatively, but it keeps the reference sampler's state bit-for-bit.
    """
    sigma_start = torch.as_tensor(sigma_start, dtype=noise.dtype, device=noise.device)
    return noise * torch.sqrt(1.0 + sigma_start**2)
