"""EDM schedule, samplers and guidance on analytic denoisers (exact answers known)."""

from __future__ import annotations

import math

import pytest
import torch

from aid_model.sampling import (
    SAMPLERS,
    DualCFG,
    GuidanceSettings,
    VideoCondition,
    karras_sigmas,
    noise_to_initial_state,
    sample,
    v_prediction_scalings,
)


def test_karras_schedule_endpoints_and_order():
    sigmas = karras_sigmas(25)
    assert sigmas.shape == (26,)
    assert sigmas[-1] == 0
    assert math.isclose(sigmas[0].item(), 700.0, rel_tol=1e-6)
    assert math.isclose(sigmas[-2].item(), 0.002, rel_tol=1e-5)
    assert torch.all(sigmas[1:] < sigmas[:-1])


def test_karras_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_steps"):
        karras_sigmas(0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        karras_sigmas(4, sigma_min=1.0, sigma_max=0.5)


def test_v_prediction_scalings_reconstruct_clean_signal():
    # With F = the v-target, D(x; σ) must return the clean sample exactly.
    sigma = torch.tensor([0.1, 1.0, 80.0])
    clean = torch.tensor([0.3, -1.2, 2.0])
    noise = torch.tensor([1.5, 0.2, -0.7])
    noisy = clean + sigma * noise
    c_skip, c_out, c_in, c_noise = v_prediction_scalings(sigma)
    # v-target of SVD's parameterisation: F = (c_skip·x_σ − x) / (−c_out) ... solved for F.
    target = (clean - c_skip * noisy) / c_out
    assert torch.allclose(c_skip * noisy + c_out * target, clean)
    assert torch.allclose(c_noise, 0.25 * sigma.log())
    assert torch.allclose(c_in, 1 / (sigma**2 + 1).sqrt())


def gaussian_denoiser(data_std: float):
    """Exact D(x; σ) for data ~ N(0, s²): x·s²/(s²+σ²)."""

    def denoise(x, sigma):
        sigma = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        return x * data_std**2 / (data_std**2 + sigma**2)

    return denoise


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_follow_the_exact_ode_solution(name):
    # For Gaussian data the probability-flow ODE has the closed form x(σ) ∝ √(s²+σ²).
    data_std = 0.5
    sigmas = karras_sigmas(40, sigma_max=80.0)
    x_start = torch.randn(2, 3, 4, 2, 2, generator=torch.Generator().manual_seed(0)) * 80.0
    exact = x_start * data_std / math.sqrt(data_std**2 + 80.0**2)
    result = sample(name, gaussian_denoiser(data_std), x_start, sigmas)
    relative = ((result - exact).abs().max() / exact.abs().max()).item()
    assert relative < {"euler": 0.1, "heun": 0.02, "dpmpp_2m": 0.02}[name]


def test_higher_order_samplers_beat_euler():
    data_std = 0.5
    sigmas = karras_sigmas(10, sigma_max=80.0)
    x_start = torch.full((1, 2, 1, 1, 1), 80.0)
    exact = x_start * data_std / math.sqrt(data_std**2 + 80.0**2)
    errors = {
        name: (sample(name, gaussian_denoiser(data_std), x_start, sigmas) - exact).abs().max()
        for name in SAMPLERS
    }
    assert errors["heun"] < errors["euler"]
    assert errors["dpmpp_2m"] < errors["euler"]


class Cancelled(RuntimeError):
    """What a callback raises to stop sampling (ComfyUI's interrupt, Ctrl-C, ...)."""


def test_callback_sees_every_step_and_can_cancel():
    sigmas = karras_sigmas(5)
    seen = []
    sample("heun", gaussian_denoiser(1.0), torch.ones(1, 1, 1, 1, 1), sigmas, seen.append)
    assert [info.step for info in seen] == [0, 1, 2, 3, 4]
    assert all(info.total == 5 for info in seen)
    assert seen[0].sigma == sigmas[0]

    def cancel_at_two(info):
        if info.step == 2:
            raise Cancelled("user pressed stop")

    with pytest.raises(Cancelled):
        sample("euler", gaussian_denoiser(1.0), torch.ones(1, 1, 1, 1, 1), sigmas, cancel_at_two)


def test_unknown_sampler_lists_the_choices():
    with pytest.raises(ValueError, match=r"dpmpp_2m.*euler.*heun"):
        sample("ddim", gaussian_denoiser(1.0), torch.ones(1), karras_sigmas(2))


def test_initial_state_scaling():
    noise = torch.ones(3)
    assert torch.allclose(
        noise_to_initial_state(noise, 700.0), torch.full((3,), math.sqrt(1 + 700**2))
    )


class RecordingDenoiser:
    """Stands in for VideoDenoiser: output depends on the condition, and calls are counted."""

    def __init__(self):
        self.batch_sizes = []

    def __call__(self, x, sigma, cond):
        self.batch_sizes.append(x.shape[0])
        scale = cond.image_embeddings[:, 0, 0].reshape(-1, 1, 1, 1, 1)
        return x * 0.5 + scale


def make_condition(value: float, frames: int = 4) -> VideoCondition:
    return VideoCondition(
        image_embeddings=torch.full((1, 1, 8), value),
        concat_latents=torch.zeros(1, frames, 4, 2, 2),
        added_time_ids=torch.tensor([[6.0, 127.0, 0.02]]),
    )


def test_plain_cfg_with_svd_ramp_is_the_per_frame_combination_in_one_call():
    # s_t = 0: SVD's own guidance, s_f rising linearly from 1.0 on frame 0 to 2.5.
    denoiser = RecordingDenoiser()
    cond, uncond = make_condition(3.0), make_condition(1.0)
    settings = GuidanceSettings(frame_scale=2.5, text_scale=0.0, frame_scale_first=1.0)
    guided = DualCFG(denoiser, uncond, cond, cond, settings)
    x = torch.randn(1, 4, 4, 2, 2)
    out = guided(x, torch.tensor([2.0]))
    assert denoiser.batch_sizes == [2]  # both branches in one batched call, no text branch
    expected_cond = x * 0.5 + 3.0
    expected_uncond = x * 0.5 + 1.0
    for frame, scale in enumerate([1.0, 1.5, 2.0, 2.5]):
        manual = expected_uncond[:, frame] + scale * (
            expected_cond[:, frame] - expected_uncond[:, frame]
        )
        assert torch.allclose(out[:, frame], manual)


def test_condition_batching_keeps_order():
    both = VideoCondition.cat([make_condition(1.0), make_condition(2.0)])
    assert both.image_embeddings[:, 0, 0].tolist() == [1.0, 2.0]
    with_mc = VideoCondition(
        torch.zeros(1, 1, 8),
        torch.zeros(1, 4, 4, 2, 2),
        torch.zeros(1, 3),
        mcondition=torch.zeros(1, 4, 154, 8),
    )
    with pytest.raises(ValueError, match="mcondition"):
        VideoCondition.cat([with_mc, make_condition(1.0)])
