"""AID on a tiny random SVD UNet: the fresh-model invariant, adapters, ablations, training set."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel
from tiny_models import open_gates
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from aid_model.aid import (
    AIDConfig,
    LongTermTemporalAdapter,
    ShortTermTemporalAdapter,
    SpatialAdapter,
    attach_aid,
    count_parameters,
    parameter_groups,
    reference_concat_latents,
    trainable_parameters,
)
from aid_model.aid.param_share import svd_xt_parameter_counts
from aid_model.sampling import VideoCondition, VideoDenoiser

BATCH, FRAMES, WIDTH, LATENT = 2, 4, 64, 8
CONFIG = AIDConfig(num_frames=FRAMES, num_states=2, dqformer_heads=2, queries_per_frame=8)
ADAPTERS = (SpatialAdapter, ShortTermTemporalAdapter, LongTermTemporalAdapter)


def tiny_components(seed: int = 0) -> SimpleNamespace:
    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=LATENT, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=WIDTH,
        num_attention_heads=(2, 4), projection_class_embeddings_input_dim=768,
        addition_time_embed_dim=256,
    ).eval()
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1,
        image_size=28, patch_size=14, projection_dim=WIDTH,
    )).eval()
    return SimpleNamespace(unet=unet, image_encoder=image_encoder)


def text_inputs(seed: int, config: AIDConfig = CONFIG) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "instruction_embeddings": torch.randn(BATCH, 77, WIDTH, generator=generator),
        "state_embeddings": torch.randn(BATCH, config.num_states * 77, WIDTH, generator=generator),
        "image_tokens": torch.randn(BATCH, 5, WIDTH, generator=generator),
    }


def video_inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, VideoCondition]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, FRAMES, 4, LATENT, LATENT, generator=generator) * 3
    sigma = torch.tensor([0.7, 12.0])
    first_frame = torch.randn(BATCH, 1, 4, LATENT, LATENT, generator=generator)
    # K = 1, repeat_last: SVD's own conditioning, the frame's latent on every frame.
    cond = VideoCondition(
        image_embeddings=torch.randn(BATCH, 1, WIDTH, generator=generator),
        concat_latents=first_frame.repeat(1, FRAMES, 1, 1, 1),
        added_time_ids=torch.tensor([[6.0, 127.0, 0.02]] * BATCH),
    )
    return x, sigma, cond


def aid_output(model, x, sigma, cond, seed: int = 2) -> torch.Tensor:
    mcondition = model.build_mcondition(**text_inputs(seed, model.config))
    return VideoDenoiser(model.unet)(x, sigma, VideoCondition(
        cond.image_embeddings, cond.concat_latents, cond.added_time_ids, mcondition))


@torch.no_grad()
def test_fresh_aid_is_bit_identical_to_svd():
    components = tiny_components()
    x, sigma, cond = video_inputs()
    given = cond.concat_latents[:, :1]
    assert torch.equal(cond.concat_latents, reference_concat_latents(given, FRAMES, "repeat_last"))
    svd = VideoDenoiser(components.unet)(x, sigma, cond)
    model = attach_aid(components, CONFIG)
    with_aid = aid_output(model, x, sigma, cond)
    assert (with_aid - svd).abs().max().item() == 0.0
    model.detach()
    assert torch.equal(VideoDenoiser(components.unet)(x, sigma, cond), svd)


def test_adapters_start_as_the_identity():
    torch.manual_seed(0)
    x = torch.randn(2 * 3 * 5, 4, 16)  # (B·h·w, T, c) with B=2, h=3, w=5
    assert torch.equal(SpatialAdapter(16, 4)(x), x)
    assert torch.equal(ShortTermTemporalAdapter(16, 4)(x, (3, 5)), x)
    assert torch.equal(LongTermTemporalAdapter(16, 4, heads=2)(x), x)


def test_short_term_adapter_convolves_over_time_and_space():
    """Tokens arrive as diffusers orders them, (b, y, x) rows of T frames; the depthwise
    conv must see the (B, c, T, h, w) video, not a scrambled one."""
    torch.manual_seed(0)
    batch, frames, height, width, channels = 2, 4, 3, 5, 6
    adapter = ShortTermTemporalAdapter(channels, channels)
    with torch.no_grad():
        for linear in (adapter.down, adapter.up):
            linear.weight.copy_(torch.eye(channels))
            linear.bias.zero_()
    video = torch.randn(batch, channels, frames, height, width)
    tokens = video.permute(0, 3, 4, 2, 1).reshape(batch * height * width, frames, channels)
    delta = adapter(tokens, (height, width)) - tokens
    expected = adapter.conv(video).permute(0, 3, 4, 2, 1).reshape_as(tokens)
    torch.testing.assert_close(delta, expected)


def test_one_step_moves_every_adapter_and_only_trained_parameters_get_gradients():
    components = tiny_components()
    model = attach_aid(components, CONFIG)
    x, sigma, cond = video_inputs()
    trainable = trainable_parameters(model)
    optimizer = torch.optim.Adam(trainable.values(), lr=1e-3)
    loss = aid_output(model, x, sigma, cond).square().mean()
    loss.backward()

    trainable_ids = {id(p) for p in trainable.values()}
    everything = [*components.unet.parameters(), *components.image_encoder.parameters(),
                  *model.dqformer.parameters()]
    for parameter in everything:
        if id(parameter) not in trainable_ids:
            assert not parameter.requires_grad and parameter.grad is None
    adapters = [m for m in model.modules() if isinstance(m, ADAPTERS)]
    assert {type(m) for m in adapters} == set(ADAPTERS)
    for adapter in adapters:
        assert adapter.up.weight.grad.abs().sum() > 0
    mcondition_outputs = [p for n, p in trainable.items() if ".to_out_mcondition." in n]
    assert mcondition_outputs  # zero at first: the first step's gradient must reach them
    for parameter in mcondition_outputs:
        assert parameter.grad.abs().sum() > 0

    optimizer.step()
    probe = torch.randn(2 * 2 * 2, FRAMES, 64)
    for adapter in adapters:
        channels = adapter.up.out_features
        tokens = probe[..., :channels]
        args = (tokens, (2, 2)) if isinstance(adapter, ShortTermTemporalAdapter) else (tokens,)
        assert not torch.equal(adapter(*args), tokens), type(adapter).__name__


ABLATIONS = {
    "without_sa": r"\.spatial_adapter\.",
    "without_sta": r"\.short_term_adapter\.",
    "without_lta": r"\.long_term_adapter\.",
    "without_adapters": r"\.(spatial|short_term|long_term)_adapter\.",
    "without_mcondition": r"^dqformer\.|\.to_(k|v|out)_mcondition\.",
    "without_de": r"^dqformer\.(queries$|decomposed_layers\.)",
    "without_me": r"^dqformer\.multimodal_layers\.",
    "without_states": r"^dqformer\.decomposed_layers\.\d+\.state_attention\.",
}


@pytest.mark.parametrize("switch", list(ABLATIONS))
def test_each_ablation_removes_exactly_its_part_and_still_runs(switch):
    full_model = attach_aid(tiny_components(), CONFIG)
    full = {n: p.shape for n, p in trainable_parameters(full_model).items()}
    ablated_config = AIDConfig(**{**CONFIG.__dict__, switch: True})
    model = attach_aid(tiny_components(), ablated_config)
    ablated = {n: p.shape for n, p in trainable_parameters(model).items()}

    removed = {n for n in full if re.search(ABLATIONS[switch], n)}
    assert removed, f"{switch}: the pattern matches nothing in the full model"
    assert set(full) - set(ablated) == removed
    assert set(ablated) <= set(full)
    assert all(ablated[n] == full[n] for n in ablated)
    assert count_parameters(model).trainable == sum(
        s.numel() for n, s in full.items() if n not in removed)

    x, sigma, cond = video_inputs()
    with torch.no_grad():
        mcondition = model.build_mcondition(**text_inputs(2, ablated_config))
        out = VideoDenoiser(model.unet)(x, sigma, VideoCondition(
            cond.image_embeddings, cond.concat_latents, cond.added_time_ids, mcondition))
    assert out.shape == x.shape and torch.isfinite(out).all()
    if ablated_config.use_mcondition:
        assert mcondition.shape == (BATCH, FRAMES, ablated_config.mcondition_tokens, WIDTH)
    else:
        assert mcondition is None


@torch.no_grad()
def test_mcondition_has_77_plus_n_tokens_per_frame():
    model = attach_aid(tiny_components(), CONFIG)
    mcondition = model.build_mcondition(**text_inputs(0))
    assert mcondition.shape == (BATCH, FRAMES, 77 + 8, WIDTH)
    # E_me is shared by all frames, E_de[t] is each frame's own.
    assert torch.equal(mcondition[:, 0, :77], mcondition[:, -1, :77])
    assert not torch.equal(mcondition[:, 0, 77:], mcondition[:, -1, 77:])


@torch.no_grad()
def test_instruction_changes_the_output_once_gates_are_open():
    model = attach_aid(tiny_components(), CONFIG)
    x, sigma, cond = video_inputs()
    # Fresh: the instruction cannot matter yet (the invariant).
    assert torch.equal(aid_output(model, x, sigma, cond, seed=2),
                       aid_output(model, x, sigma, cond, seed=5))
    open_gates(model)
    first = aid_output(model, x, sigma, cond, seed=2)
    assert torch.equal(first, aid_output(model, x, sigma, cond, seed=2))
    assert not torch.equal(first, aid_output(model, x, sigma, cond, seed=5))

    inputs = text_inputs(2)
    for name in ("state_embeddings", "image_tokens"):
        changed = {**inputs, name: inputs[name] + 1.0}
        assert not torch.equal(model.build_mcondition(**inputs),
                               model.build_mcondition(**changed)), name


def test_mcondition_shape_and_presence_errors():
    model = attach_aid(tiny_components(), CONFIG)
    x, sigma, cond = video_inputs()
    wrong_frames = torch.zeros(BATCH, FRAMES + 1, 85, WIDTH)
    with pytest.raises(ValueError, match="num_frames"):
        VideoDenoiser(model.unet)(x, sigma, VideoCondition(
            cond.image_embeddings, cond.concat_latents, cond.added_time_ids, wrong_frames))
    with pytest.raises(ValueError, match="state_embeddings"):
        model.build_mcondition(**{**text_inputs(0), "state_embeddings": None})
    plain = attach_aid(tiny_components(), AIDConfig(**{**CONFIG.__dict__,
                                                      "without_mcondition": True}))
    with pytest.raises(ValueError, match="without_mcondition"):
        VideoDenoiser(plain.unet)(x, sigma, VideoCondition(
            cond.image_embeddings, cond.concat_latents, cond.added_time_ids,
            torch.zeros(BATCH, FRAMES, 85, WIDTH)))
    with pytest.raises(ValueError, match="already has AID"):
        attach_aid(SimpleNamespace(unet=model.unet.base), CONFIG)


def test_trainable_set_is_aid_parts_plus_spatial_cross_attention():
    components = tiny_components()
    model = attach_aid(components, CONFIG)
    trainable = trainable_parameters(model)
    groups = parameter_groups(model)
    cross = groups["spatial_cross_attention"]
    # Spatial attn2 only: 1 transformer down, 1 mid, 2 up, to_q/k/v + to_out weight, bias.
    assert len(cross) == 4 * 5
    assert all(re.search(r"\.transformer_blocks\.0\.attn2\.to_(q|k|v|out\.0)\.", n) and
               "temporal_transformer_blocks" not in n for n in cross)
    others = set(trainable) - set(cross)
    assert all(n.startswith("dqformer.") or ".processor." in n for n in others)
    requires_grad = {n for n, p in model.named_parameters() if p.requires_grad}
    assert requires_grad == set(trainable)
    counts = count_parameters(model)
    inside_unet = set(others) - set(groups["dqformer"])  # the processors' weights
    base = sum(p.numel() for p in components.unet.parameters()) - sum(
        trainable[n].numel() for n in inside_unet)
    assert counts.base_unet == base
    assert counts.trainable == sum(p.numel() for p in trainable.values())


def test_svd_xt_trainable_share_is_as_documented():
    counts = svd_xt_parameter_counts(AIDConfig())
    assert counts.base_unet == 1_524_623_082  # diffusers' SVD UNet, ~1.52 B
    assert counts.share <= 0.10
    doc = (Path(__file__).parents[1] / "docs" / "aid-model.md").read_text()
    assert f"{counts.trainable:,}" in doc and f"{counts.share:.2%}" in doc


@torch.no_grad()
def test_a_failed_attach_leaves_svd_as_it_was():
    components = tiny_components()
    x, sigma, cond = video_inputs()
    svd = VideoDenoiser(components.unet)(x, sigma, cond)
    # Bottlenecks of 8 and 16 channels: 3 heads divide neither.
    with pytest.raises(ValueError, match="adapter_attention_heads"):
        attach_aid(components, AIDConfig(**{**CONFIG.__dict__, "adapter_attention_heads": 3}))
    assert torch.equal(VideoDenoiser(components.unet)(x, sigma, cond), svd)
    attach_aid(components, CONFIG)  # and AID can still be attached
