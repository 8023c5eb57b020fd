"""Samplers over any denoiser callable ``denoise(x, sigma) -> x0_estimate``.

They know nothing of SVD or AID: conditioning and guidance are bound into the callable
(see ``aid_model.sampling.dual_guidance``). Each takes a decreasing σ schedule ending in 0 and
a per-step callback that receives a ``StepInfo``; a callback cancels sampling by raising.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Denoise = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class StepInfo:
    """What a callback sees after step ``step`` (0-based) of ``total``."""

    step: int
    total: int
    x: Tensor  # state entering the step, (B, T, C, h, w)
    sigma: Tensor  # σ_i, scalar tensor
    denoised: Tensor  # the denoiser's estimate at σ_i (for previews)


StepCallback = Callable[[StepInfo], None]


def _to_d(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """The probability-flow ODE derivative dx/dσ = (x − D(x; σ)) / σ."""
    return (x - denoised) / sigma


def _batch_sigma(sigma: Tensor, x: Tensor) -> Tensor:
    return sigma.expand(x.shape[0])


def _zero_on_host(sigmas: Tensor) -> list[bool]:
    """Which σ are 0, read once per run: ``sigmas[i] == 0`` in the loop would wait for
    the device at every step."""
    return [value == 0 for value in sigmas.tolist()]


def _report(callback: StepCallback | None, i: int, sigmas: Tensor, x, denoised) -> None:
    if callback is not None:
        callback(StepInfo(i, len(sigmas) - 1, x, sigmas[i], denoised))


@torch.no_grad()
def sample_euler(
    denoise: Denoise, x: Tensor, sigmas: Tensor, callback: StepCallback | None = None
) -> Tensor:
    """Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 2
    without the second-order correction and without churn)."""
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, _batch_sigma(sigmas[i], x))
        _report(callback, i, sigmas, x, denoised)
        x = x + _to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_heun(
    denoise: Denoise, x: Tensor, sigmas: Tensor, callback: StepCallback | None = None
) -> Tensor:
    """Heun's second-order method (Karras et al. 2022, Algorithm 2, no churn); the last
    step to σ = 0 is an Euler step, since D at σ = 0 is undefined."""
    is_zero = _zero_on_host(sigmas)
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, _batch_sigma(sigmas[i], x))
        _report(callback, i, sigmas, x, denoised)
        d = _to_d(x, sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if is_zero[i + 1]:
            x = x + d * dt
            continue
        x_euler = x + d * dt
        denoised_next = denoise(x_euler, _batch_sigma(sigmas[i + 1], x))
        d_next = _to_d(x_euler, sigmas[i + 1], denoised_next)
        x = x + (d + d_next) / 2 * dt
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    denoise: Denoise, x: Tensor, sigmas: Tensor, callback: StepCallback | None = None
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, multistep second order, data prediction),
    in the log-σ time variable t = −ln σ."""
    previous_denoised: Tensor | None = None
    is_zero = _zero_on_host(sigmas)
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, _batch_sigma(sigmas[i], x))
        _report(callback, i, sigmas, x, denoised)
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if is_zero[i + 1]:
            x = denoised
            continue
        t, t_next = -sigma.log(), -sigma_next.log()
        h = t_next - t
        if previous_denoised is None:
            estimate = denoised
        else:
            h_last = t - (-sigmas[i - 1].log())
            r = h_last / h
            estimate = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous_denoised
        x = (sigma_next / sigma) * x - torch.expm1(-h) * estimate
        previous_denoised = denoised
    return x


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
}


def sample(
    name: str,
    denoise: Denoise,
    x: Tensor,
    sigmas: Tensor,
    callback: StepCallback | None = None,
) -> Tensor:
    """Runs the sampler called ``name`` (one of ``SAMPLERS``)."""
    try:
        sampler = SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}") from None
    return sampler(denoise, x, sigmas, callback)
