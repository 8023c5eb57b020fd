"""AIDPipeline without AID: the default text scale must not cost a third UNet branch."""

from __future__ import annotations

import pytest
import torch
from tiny_models import fixture_svd_components

from aid_model.pipeline import AIDPipeline, PredictionOptions, PredictionRequest
from aid_model.sampling import DualCFG, karras_sigmas, noise_to_initial_state, sample

# text_scale keeps its default (7.5), as `python -m aid_model predict` without --aid does.
OPTIONS = PredictionOptions(num_frames=6, height=16, width=16, steps=3, seed=11)


@pytest.fixture(scope="module")
def pipeline(svd_fixture_checkpoint):
    return AIDPipeline(fixture_svd_components(svd_fixture_checkpoint))


@pytest.fixture(scope="module")
def conditions(pipeline):
    frame = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(5))
    return pipeline.encode_conditions([PredictionRequest([frame], "move the cup left")], 16, 16)


def unet_batch_sizes(unet, run):
    """The batch of every UNet call ``run()`` makes."""
    sizes = []
    handle = unet.register_forward_pre_hook(
        lambda module, args, kwargs: sizes.append(args[0].shape[0]), with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return sizes


@torch.no_grad()
def three_branch_latents(pipeline, conditions, options):
    """What sample_latents computed before: dual CFG with s_t on two identical branches."""
    branches, noise = pipeline._frame_conditions(conditions, options, [options.seed])
    guided = DualCFG(pipeline.denoiser, *branches, options.guidance())
    sigmas = karras_sigmas(options.steps)
    x = sample(options.sampler, guided, noise_to_initial_state(noise, sigmas[0]), sigmas)
    return x / pipeline.components.vae.config.scaling_factor


def test_default_text_scale_runs_two_branches_for_the_three_branch_result(pipeline, conditions):
    assert OPTIONS.text_scale > 0
    unet = pipeline.components.unet
    result = {}
    sizes = unet_batch_sizes(unet, lambda: result.setdefault(
        "latents", pipeline.sample_latents(conditions, OPTIONS, [OPTIONS.seed])))
    assert sizes == [2] * OPTIONS.steps  # (∅) and (c_f) batched; no third branch

    # Exactly plain CFG (s_t = 0) ...
    no_text = pipeline.sample_latents(conditions, OPTIONS.with_(text_scale=0.0), [OPTIONS.seed])
    assert torch.equal(result["latents"], no_text)
    # ... which the three branches equal up to float rounding: without MCondition
    # D(c_f, c_t) is D(c_f, ∅), and (s_f − s_t)·D + s_t·D is s_f·D only to about
    # 13.5 ulp of D a step (measured: 2.5e-5 at latents up to 14.5).
    sizes = unet_batch_sizes(unet, lambda: result.setdefault(
        "three", three_branch_latents(pipeline, conditions, OPTIONS)))
    assert sizes == [3] * OPTIONS.steps
    three = result["three"]
    scale = three.abs().max().item()
    torch.testing.assert_close(result["latents"], three, rtol=0, atol=1e-5 * scale)
