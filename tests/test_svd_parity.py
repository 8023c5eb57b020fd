"""Parity of the SVD base with ComfyUI's own SVD classes (goldens in tests/fixtures/svd-parity-A).

Tolerances (float32): module outputs ≤ 2e-5 max abs; sampler states within 1e-6 of the
largest magnitude the states reach (~2.4e3 at σ = 700); final state ≤ 1e-4.
"""

from __future__ import annotations

import pytest

from aid_model.svd.parity import run_parity


@pytest.fixture(scope="module")
def parity_results(svd_fixture_dir):
    return {result.name: result for result in run_parity(svd_fixture_dir)}


EXPECTED = [
    "adm_y",
    "adm_y_video1",
    "unet a_out",
    "unet a2_out",
    "unet a3_out",
    "denoiser b_denoised_0 (sigma 700)",
    "denoiser b_denoised_1 (sigma 1.5)",
    "vae encode d_enc_mean",
    "vae encode d_enc_moments",
    "vae decode d_dec_images",
    "vae decode chunked by 3",
    "clip image_embeds",
    "clip last_hidden_state",
    "clip penultimate hidden state",
    "karras sigmas (4 steps)",
    "initial state c_x_init",
    *[f"euler step {i} {what}" for i in range(4) for what in ("state", "denoised")],
    "euler final state c_final_x",
    "final VAE latent c_final_latent",
    "final images c_final_images",
]


def test_every_golden_is_compared(parity_results):
    assert sorted(parity_results) == sorted(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_matches_independent_svd(parity_results, name):
    result = parity_results[name]
    assert result.max_abs_error <= result.tolerance, (
        f"{name}: max abs error {result.max_abs_error:.3g} > tolerance {result.tolerance:.3g}"
    )


def test_module_tolerances_are_the_issues(parity_results):
    # The bar must not drift: single calls 2e-5, final state 1e-4, steps 1e-6 × ~2.4e3.
    assert parity_results["unet a_out"].tolerance == 2e-5
    assert parity_results["euler final state c_final_x"].tolerance == 1e-4
    step = parity_results["euler step 1 state"]
    assert 2e-3 < step.tolerance < 3e-3
