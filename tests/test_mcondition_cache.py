"""The MCondition attention's key/value cache: computed once per MCondition, invisible in
the outputs (bit-identical to recomputing), never used where gradients flow."""

from __future__ import annotations

import contextlib

import pytest
import torch
from tiny_models import TINY_AID, fixture_svd_components, open_gates

from aid_model.aid import MConditionAttnProcessor, attach_aid

BATCH, FRAMES, LATENT = 2, TINY_AID.num_frames, 8


@pytest.fixture(scope="module")
def model(svd_fixture_checkpoint):
    components = fixture_svd_components(svd_fixture_checkpoint)
    torch.manual_seed(3)
    model = attach_aid(components, TINY_AID)
    open_gates(model)  # a closed gate would hide the MCondition branch from the output
    return model.eval()


@pytest.fixture
def processors(model):
    found = [m for m in model.unet.modules() if isinstance(m, MConditionAttnProcessor)]
    assert found
    model.unet.release_mcondition_cache()  # every test starts without cached values
    return found


def unet_inputs(seed: int) -> dict[str, torch.Tensor]:
    """One step's UNet inputs (the MCondition aside): noisy latents, c_noise, CLIP token."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "sample": torch.randn(BATCH, FRAMES, 8, LATENT, LATENT, generator=generator),
        "timestep": torch.randn(BATCH, generator=generator),
        "encoder_hidden_states": torch.randn(BATCH, 1, 64, generator=generator),
        "added_time_ids": torch.tensor([[6.0, 127.0, 0.02]] * BATCH),
    }


def random_mcondition(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, FRAMES, TINY_AID.mcondition_tokens, 64, generator=generator)


@contextlib.contextmanager
def projection_calls(processors):
    """Counts the calls of every processor's W_k^mc (one per processor per computation)."""
    calls = []
    handles = [p.to_k_mcondition.register_forward_hook(lambda *_: calls.append(1))
               for p in processors]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def uncached(model, mcondition: torch.Tensor, seed: int) -> torch.Tensor:
    """The output with nothing cached: the cache dropped before the call."""
    model.unet.release_mcondition_cache()
    return model.unet(**unet_inputs(seed), mcondition=mcondition, return_dict=False)[0]


def call(model, mcondition: torch.Tensor, seed: int) -> torch.Tensor:
    return model.unet(**unet_inputs(seed), mcondition=mcondition, return_dict=False)[0]


@torch.no_grad()
def test_steps_of_a_clip_reuse_the_keys_and_values_bit_identically(model, processors):
    mcondition = random_mcondition(0)
    with projection_calls(processors) as calls:
        cached = [call(model, mcondition, seed) for seed in (1, 2, 3)]
    assert len(calls) == len(processors)  # computed once, for the first step
    for seed, output in zip((1, 2, 3), cached, strict=True):
        assert torch.equal(output, uncached(model, mcondition, seed))


@torch.no_grad()
def test_another_or_modified_mcondition_is_recomputed(model, processors):
    first, second = random_mcondition(0), random_mcondition(1)
    slot = model.unet.slot
    call(model, first, 1)
    generation = slot.generation
    call(model, first, 2)
    assert slot.generation == generation  # same tensor, unchanged: same generation
    with projection_calls(processors) as calls:
        after_switch = call(model, second, 3)
    assert slot.generation == generation + 1 and len(calls) == len(processors)
    assert torch.equal(after_switch, uncached(model, second, 3))

    call(model, second, 4)  # fills the cache again
    second.mul_(1.5)  # same tensor, new values
    modified = call(model, second, 4)
    assert torch.equal(modified, uncached(model, second.clone(), 4))
    assert not torch.equal(modified, uncached(model, second / 1.5, 4))


@torch.no_grad()
def test_changed_weights_are_not_answered_from_the_cache(model, processors):
    mcondition = random_mcondition(0)
    projection = processors[0].to_v_mcondition
    before = call(model, mcondition, 1)  # fills the cache
    original = projection.weight.clone()
    try:
        projection.weight.mul_(-1.0)  # in place: the parameter's version changes
        changed = call(model, mcondition, 1)
        assert not torch.equal(changed, before)
        assert torch.equal(changed, uncached(model, mcondition, 1))

        call(model, mcondition, 1)
        projection.weight.data = original.clone()  # a new storage, same version
        restored = call(model, mcondition, 1)
        assert torch.equal(restored, before)
    finally:
        projection.weight.data = original


def test_with_gradients_the_projections_are_recomputed_in_the_graph(model, processors):
    mcondition = random_mcondition(0)
    with torch.no_grad():
        reference = call(model, mcondition, 1)  # fills the cache
    projection = processors[0].to_k_mcondition
    projection.weight.requires_grad_(True)
    try:
        with projection_calls(processors) as calls:
            outputs = [call(model, mcondition, 1) for _ in range(2)]
        assert len(calls) == 2 * len(processors)
        assert torch.equal(outputs[0].detach(), reference)
        outputs[0].square().mean().backward()
        assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0
    finally:
        projection.weight.requires_grad_(False)
        projection.weight.grad = None


def test_a_layer_rerun_with_gradients_computes_in_the_graph(model, processors):
    # Gradient checkpointing re-runs a layer with gradients on, without a new UNet call.
    with torch.no_grad():
        call(model, random_mcondition(0), 1)  # fills the cache for this MCondition
    processor = processors[0]
    processor.to_k_mcondition.weight.requires_grad_(True)
    try:
        key, _ = processor.mcondition_key_value(model.unet.slot.value)
        assert key.grad_fn is not None
        with torch.no_grad():
            cached_key, _ = processor.mcondition_key_value(model.unet.slot.value)
        assert torch.equal(key.detach(), cached_key)
    finally:
        processor.to_k_mcondition.weight.requires_grad_(False)


def test_inference_mode_tensors_are_cached_too(model, processors):
    with torch.inference_mode():
        mcondition = random_mcondition(0)  # an inference tensor, as in ComfyUI
        with projection_calls(processors) as calls:
            outputs = [call(model, mcondition, seed) for seed in (1, 2)]
        assert len(calls) == len(processors)
        assert torch.equal(outputs[1], uncached(model, mcondition, 2))


@torch.no_grad()
def test_release_frees_the_cache(model, processors):
    call(model, random_mcondition(0), 1)
    assert len(model.unet.slot.key_values) == len(processors)
    model.unet.release_mcondition_cache()
    assert model.unet.slot.key_values == {} and model.unet.slot.value is None
