"""AIDConfig validation and JSON, the K-reference concat condition, and e_v from CLIP."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from aid_model.aid import AIDConfig, clip_image_context, reference_concat_latents


def test_config_json_round_trip():
    config = AIDConfig(num_frames=12, num_reference_frames=2, concat_fill="zeros",
                       dqformer_width=512, dqformer_heads=8, without_sta=True)
    assert AIDConfig.from_json(config.to_json()) == config
    assert AIDConfig.from_json(AIDConfig().to_json()) == AIDConfig()


@pytest.mark.parametrize(("changes", "message"), [
    ({"adapter_ratio": 0.0}, "adapter_ratio"),
    ({"adapter_ratio": 1.5}, "adapter_ratio"),
    ({"concat_fill": "mask"}, "concat_fill"),
    ({"image_context": "cls"}, "image_context"),
    ({"num_reference_frames": 16}, "num_reference_frames"),
    ({"queries_per_frame": 0}, "queries_per_frame"),
    ({"dqformer_width": 100, "dqformer_heads": 16}, "must divide"),
    ({"without_de": True, "without_me": True}, "without_mcondition"),
])
def test_config_rejects_bad_values_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        AIDConfig(**changes)


def test_config_json_with_unknown_field_is_an_error():
    with pytest.raises(ValueError, match=r"unknown fields.*adapter_size"):
        AIDConfig.from_json('{"adapter_size": 4}')


def test_ablation_switches_decide_the_parts():
    assert AIDConfig().mcondition_tokens == 154
    assert AIDConfig(without_de=True).mcondition_tokens == 77
    assert not AIDConfig(without_de=True).use_states
    off = AIDConfig(without_adapters=True)
    assert not (off.use_sa or off.use_sta or off.use_lta)
    assert AIDConfig(without_lta=True).use_sta


def test_reference_concat_latents():
    latents = torch.randn(2, 2, 4, 3, 3)
    svd_like = reference_concat_latents(latents[:, :1], 5, "repeat_last")
    assert torch.equal(svd_like, latents[:, :1].repeat(1, 5, 1, 1, 1))  # SVD's own, K = 1

    repeated = reference_concat_latents(latents, 5, "repeat_last")
    assert torch.equal(repeated[:, :2], latents)
    assert all(torch.equal(repeated[:, t], latents[:, 1]) for t in range(2, 5))
    zeros = reference_concat_latents(latents, 5, "zeros")
    assert torch.equal(zeros[:, :2], latents) and not zeros[:, 2:].any()
    with pytest.raises(ValueError, match="K=2, T=1"):
        reference_concat_latents(latents, 1)


def test_image_context_tokens_extend_the_pooled_embedding():
    torch.manual_seed(0)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1,
        image_size=28, patch_size=14, projection_dim=24,
    )).eval()
    pixels = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        tokens = clip_image_context(encoder, pixels, "tokens")
        pooled = clip_image_context(encoder, pixels, "pooled")
        image_embeds = encoder(pixel_values=pixels).image_embeds
    assert tokens.shape == (2, 5, 24) and pooled.shape == (2, 1, 24)
    assert torch.equal(pooled[:, 0], image_embeds)
    # Token 0 is SVD's image embedding; the patch tokens are new, in the same space.
    torch.testing.assert_close(tokens[:, 0], image_embeds, rtol=0, atol=1e-6)
    assert not torch.allclose(tokens[:, 1], image_embeds)
