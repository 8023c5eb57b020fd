"""The one-token cross-attention shortcut: installed by load_svd on every attn2, the same
UNet output as the attention it skips, and out of the way of training and of AID."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from tiny_models import TINY_AID, fixture_svd_components, open_gates

from aid_model.aid import MConditionAttnProcessor, attach_aid
from aid_model.svd.single_token_attention import (
    SingleTokenCrossAttnProcessor,
    install_single_token_cross_attention,
    single_token_shortcut_disabled,
)

BATCH, FRAMES, LATENT = 2, 6, 8


@pytest.fixture(scope="module")
def components(svd_fixture_checkpoint):
    return fixture_svd_components(svd_fixture_checkpoint)


def without_shortcut(unet):
    """A copy of ``unet`` with diffusers' processors back on its cross-attentions."""
    plain = copy.deepcopy(unet)
    for module in plain.modules():
        if isinstance(module, Attention) and isinstance(module.processor,
                                                         SingleTokenCrossAttnProcessor):
            module.set_processor(module.processor.base_processor)
    return plain


def unet_inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "sample": torch.randn(BATCH, FRAMES, 8, LATENT, LATENT, generator=generator),
        "timestep": torch.randn(BATCH, generator=generator),
        "encoder_hidden_states": torch.randn(BATCH, 1, 64, generator=generator),
        "added_time_ids": torch.tensor([[6.0, 127.0, 0.02], [11.0, 40.0, 0.0]]),
        "return_dict": False,
    }


def test_load_svd_puts_it_on_every_spatial_and_temporal_cross_attention(components):
    cross = {name: module for name, module in components.unet.named_modules()
             if name.endswith(".attn2")}
    assert any("temporal_transformer_blocks" in name for name in cross)
    assert any(".transformer_blocks" in name for name in cross)
    for name, attention in cross.items():
        assert isinstance(attention.processor, SingleTokenCrossAttnProcessor), name
        assert isinstance(attention.processor.base_processor, AttnProcessor2_0), name
    for name, module in components.unet.named_modules():  # self-attentions keep theirs
        if name.endswith(".attn1"):
            assert isinstance(module.processor, AttnProcessor2_0), name
    assert install_single_token_cross_attention(components.unet) == 0  # not twice


@torch.no_grad()
def test_the_unet_output_is_the_same_as_with_the_attention(components):
    plain = without_shortcut(components.unet)
    ours = components.unet(**unet_inputs())[0]
    theirs = plain(**unet_inputs())[0]
    # Measured bit-identical here: softmax over one key is exactly 1, and to_out applied
    # once per row gives the same rows as applied per query.
    assert (ours - theirs).abs().max().item() <= 1e-6


def spied_base(attention):
    """Counts the calls that reach the processor the shortcut replaced."""
    calls = []
    base = attention.processor.base_processor

    def spy(*args, **kwargs):
        calls.append(1)
        return base(*args, **kwargs)

    attention.processor = SingleTokenCrossAttnProcessor(spy)
    return calls


def test_with_gradients_or_several_tokens_the_attention_runs(components):
    unet = copy.deepcopy(components.unet)
    attention = next(m for n, m in unet.named_modules() if n.endswith(".attn2"))
    calls = spied_base(attention)
    queries = torch.randn(3, 16, attention.query_dim)
    one_token = torch.randn(3, 1, attention.cross_attention_dim)
    with torch.no_grad():
        shortcut = attention(queries, encoder_hidden_states=one_token)
        assert calls == []
        attention(queries, encoder_hidden_states=torch.randn(3, 2, one_token.shape[-1]))
        assert len(calls) == 1

    attention.to_q.weight.requires_grad_(True)  # AID trains to_q and to_k of attn2
    full = attention(queries, encoder_hidden_states=one_token)
    assert len(calls) == 2
    full.sum().backward()
    assert attention.to_q.weight.grad is not None  # DDP needs a gradient for every one
    assert (full.detach() - shortcut).abs().max().item() <= 1e-6


@torch.no_grad()
def test_aid_composes_with_it(svd_fixture_checkpoint):
    # AID attaches after load_svd and wraps the shortcut; its MCondition branch computes
    # the query it needs itself. Same AID output as on a UNet without the shortcut.
    components = fixture_svd_components(svd_fixture_checkpoint)
    plain_components = copy.copy(components)
    plain_components.unet = without_shortcut(components.unet)
    models = []
    for parts in (components, plain_components):
        torch.manual_seed(3)
        model = attach_aid(parts, TINY_AID)
        open_gates(model)
        models.append(model.eval())
    generator = torch.Generator().manual_seed(1)
    mcondition = torch.randn(BATCH, FRAMES, TINY_AID.mcondition_tokens, 64,
                             generator=generator)
    ours, theirs = (m.unet(**unet_inputs(), mcondition=mcondition)[0] for m in models)
    assert (ours - theirs).abs().max().item() <= 1e-6
    models[0].detach()  # AID's processors off: the shortcut is back
    attention = next(m for n, m in components.unet.named_modules()
                     if n.endswith("transformer_blocks.0.attn2"))
    assert isinstance(attention.processor, SingleTokenCrossAttnProcessor)


@torch.no_grad()
def test_the_shortcut_can_be_switched_off_for_a_comparison(svd_fixture_checkpoint):
    # What the benchmark's A/B table relies on, with AID's processor wrapping it.
    components = fixture_svd_components(svd_fixture_checkpoint)
    torch.manual_seed(3)
    model = attach_aid(components, TINY_AID)
    wrapped = [m for m in model.unet.modules() if isinstance(m, MConditionAttnProcessor)]
    assert wrapped
    calls = {"shortcut": 0}
    original = SingleTokenCrossAttnProcessor.__call__

    def counted(self, *args, **kwargs):
        calls["shortcut"] += 1
        return original(self, *args, **kwargs)

    SingleTokenCrossAttnProcessor.__call__ = counted
    try:
        with single_token_shortcut_disabled(model.unet):
            assert all(isinstance(p.base_processor, AttnProcessor2_0) for p in wrapped)
            model.unet(**unet_inputs(), mcondition=None)
            assert calls["shortcut"] == 0
        assert all(isinstance(p.base_processor, SingleTokenCrossAttnProcessor)
                   for p in wrapped)
        model.unet(**unet_inputs(), mcondition=None)
        assert calls["shortcut"] > 0
    finally:
        SingleTokenCrossAttnProcessor.__call__ = original
