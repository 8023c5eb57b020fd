"""No host reads per sampling step: guidance weights cached on the device, the guidance
interval decided from a host copy of σ, the finite check read once at the end.

On a GPU every read of a device value (``.item()``, ``float()``, ``bool()``) waits for the
queue to drain. Here on the CPU such reads are counted through the op they all dispatch
to, ``aten._local_scalar_dense``.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from tiny_models import tiny_aid_pipeline
from torch.utils._python_dispatch import TorchDispatchMode

import aid_model.sampling.guidance as guidance_module
from aid_model.pipeline import PredictionOptions, PredictionRequest
from aid_model.pipeline.pipeline import FiniteCheck
from aid_model.sampling import (
    DualCFG,
    FrameRampCFG,
    GuidanceSettings,
    VideoCondition,
    karras_sigmas,
)

INTERVAL = (0.3, 100.0)


class ScalarReads(TorchDispatchMode):
    """Counts reads of a tensor's value into Python (a GPU synchronisation on CUDA)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def deferred_finite_check(monkeypatch):
    """The pipeline's finite check as it runs on a GPU (read at the end), here on the CPU."""
    original = FiniteCheck.__init__

    def deferred(self, device, immediate=None):
        original(self, device, immediate=False)

    with monkeypatch.context() as patch:
        patch.setattr(FiniteCheck, "__init__", deferred)
        yield


@pytest.fixture(scope="module")
def pipeline(svd_fixture_checkpoint, clip_text_fixture_dir):
    return tiny_aid_pipeline(svd_fixture_checkpoint, clip_text_fixture_dir)


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2m"])
def test_sampling_reads_nothing_from_the_device_per_step(pipeline, monkeypatch, sampler):
    frame = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(5))
    conditions = pipeline.encode_conditions([PredictionRequest([frame], "move it")], 16, 16)
    reads = {}
    for steps in (3, 6):
        options = pipeline.resolve(PredictionOptions(
            height=16, width=16, steps=steps, sampler=sampler, guidance_interval=INTERVAL))
        with deferred_finite_check(monkeypatch), torch.no_grad(), ScalarReads() as counter:
            pipeline.sample_latents(conditions, options, [0])
        reads[steps] = counter.count
    assert reads[3] == reads[6], reads  # what is read, is read once per clip


class StubDenoiser:
    """Output depends on the condition; no UNet."""

    def __call__(self, x, sigma, cond):
        return x * 0.5 + cond.image_embeddings[:, 0, 0].reshape(-1, 1, 1, 1, 1)


def condition(value: float) -> VideoCondition:
    return VideoCondition(torch.full((1, 1, 8), value), torch.zeros(1, 4, 4, 2, 2),
                          torch.tensor([[6.0, 127.0, 0.02]]))


def test_dual_cfg_builds_its_weights_once_and_reads_sigma_from_the_host_copy(monkeypatch):
    built = []
    original = GuidanceSettings.branch_weights

    def counted(self, *args, **kwargs):
        built.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GuidanceSettings, "branch_weights", counted)
    sigmas = karras_sigmas(8)
    settings = GuidanceSettings(frame_scale=2.0, text_scale=5.0, frame_scale_first=1.0,
                                interval=INTERVAL)
    branches = (condition(0.0), condition(1.0), condition(3.0))
    cached = DualCFG(StubDenoiser(), *branches, settings, sigmas=sigmas)
    x = torch.randn(1, 4, 4, 2, 2)
    with ScalarReads() as counter:
        outputs = [cached(x, sigmas[i].expand(1)) for i in range(8)]  # as the samplers pass σ
    assert counter.count == 0
    assert len(built) == 1  # the guided weights; the unguided ones are fixed
    # The same answers as a DualCFG without the schedule, which reads σ on the device.
    reading = DualCFG(StubDenoiser(), *branches, settings)
    with ScalarReads() as counter:
        expected = [reading(x, sigmas[i].clone().expand(1)) for i in range(8)]
    assert counter.count == 8
    for output, reference in zip(outputs, expected, strict=True):
        assert torch.equal(output, reference)
    assert cached.evaluations == reading.evaluations
    # A σ that is no view of the schedule is read from the device.
    with ScalarReads() as counter:
        cached(x, torch.tensor([1.0]))
    assert counter.count == 1


def test_frame_ramp_cfg_copies_its_ramp_once(monkeypatch):
    built = []
    original = guidance_module.frame_guidance_scales

    def counted(*args):
        built.append(1)
        return original(*args)

    monkeypatch.setattr(guidance_module, "frame_guidance_scales", counted)
    guided = FrameRampCFG(StubDenoiser(), condition(3.0), condition(1.0), 1.0, 2.5)
    x = torch.randn(1, 4, 4, 2, 2)
    first, second = guided(x, torch.tensor([2.0])), guided(x, torch.tensor([1.0]))
    assert len(built) == 1
    assert torch.equal(first, second)  # the stub ignores σ


def test_deferred_finite_check_names_the_first_failing_step():
    check = FiniteCheck(torch.device("cpu"), immediate=False)
    finite, broken = torch.zeros(1, 2, 4, 2, 2), torch.full((1, 2, 4, 2, 2), float("nan"))
    with ScalarReads() as counter:
        for step, denoised in enumerate([finite, finite, broken, broken, finite]):
            check.check_step(denoised, step)
    assert counter.count == 0
    with pytest.raises(FloatingPointError, match=r"at step 2 .*bfloat16 or float32"):
        check.raise_if_failed(final=finite)

    clean = FiniteCheck(torch.device("cpu"), immediate=False)
    clean.check_step(finite, 0)
    clean.raise_if_failed(final=finite)  # nothing to report
    with pytest.raises(FloatingPointError, match=r"NaN/inf latents \(float16"):
        clean.raise_if_failed(final=broken)  # only the final state: no step named


def test_pipeline_reports_the_failing_step_when_checking_at_the_end(pipeline, monkeypatch):
    def overflow(x, sigma, cond):
        return torch.full_like(x, float("nan"))

    monkeypatch.setattr(pipeline, "denoiser", overflow)
    frame = torch.rand(3, 16, 16)
    options = PredictionOptions(height=16, width=16, steps=3)
    with deferred_finite_check(monkeypatch), pytest.raises(
            FloatingPointError, match=r"at step 0 .*bfloat16 or float32"):
        pipeline.predict([frame], "move it", options=options)
