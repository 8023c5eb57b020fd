"""AIDConfig.first_frame_query: the given frame's encoded objects join the MCondition query."""

from __future__ import annotations

import pytest
import torch
from test_aid_model import (
    BATCH,
    CONFIG,
    FRAMES,
    WIDTH,
    aid_output,
    text_inputs,
    tiny_components,
    video_inputs,
)
from tiny_models import open_gates

from aid_model.aid import AIDConfig, attach_aid, parameter_groups
from aid_model.aid.first_frame_query import FirstFrameEncoder, FirstFrameQuery
from aid_model.aid.mcondition_attention import MConditionAttnProcessor
from aid_model.aid.weights import AIDWeightsError, load_aid_weights, save_aid_weights
from aid_model.sampling import VideoCondition, VideoDenoiser

ENCODER_WIDTH = 8
FIRST_FRAME = AIDConfig(**{**CONFIG.__dict__, "first_frame_query": ENCODER_WIDTH})


def first_frame_parameters(model) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in parameter_groups(model)["mcondition_attention"].items()
            if ".first_frame_query." in name or "first_frame_encoder." in name}


def open_projections(model, seed: int = 4) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in first_frame_parameters(model).items():
            if ".first_frame_query." in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)


def condition_with_first_frame(model, first: torch.Tensor) -> VideoCondition:
    generator = torch.Generator().manual_seed(3)
    mcondition = model.build_mcondition(**text_inputs(2, model.config))
    return VideoCondition(torch.randn(BATCH, 1, WIDTH, generator=generator),
                          first.repeat(1, FRAMES, 1, 1, 1),
                          torch.tensor([[6.0, 127.0, 0.02]] * BATCH), mcondition)


def test_the_query_gets_the_pooled_features_of_its_own_clip_in_every_frame():
    """Tokens are (B·T, h·w, c), batch-major and row-major (y, x); features (B, w, H, W)
    are average-pooled to the layer's grid, also when it is not square."""
    torch.manual_seed(0)
    batch, frames, height, width, channels = 2, 3, 2, 3, 5
    module = FirstFrameQuery(ENCODER_WIDTH, channels)
    tokens = torch.randn(batch * frames, height * width, channels)
    features = torch.randn(batch, ENCODER_WIDTH, 2 * height, 2 * width)
    assert torch.equal(module(tokens, features, (height, width)), tokens)  # zero at start
    torch.nn.init.normal_(module.projection.weight)
    torch.nn.init.normal_(module.projection.bias)
    added = module(tokens, features, (height, width)) - tokens
    for row in range(batch * frames):
        clip = row // frames
        for y in range(height):
            for x in range(width):
                cell = features[clip, :, 2 * y:2 * y + 2, 2 * x:2 * x + 2].mean((1, 2))
                torch.testing.assert_close(added[row, y * width + x], module.projection(cell))
    with pytest.raises(ValueError, match=r"do not fit 2 clips of 4×4"):
        module(tokens, features, (4, 4))


def test_the_encoder_keeps_the_latent_grid():
    encoder = FirstFrameEncoder(4, ENCODER_WIDTH)
    assert encoder(torch.randn(2, 4, 6, 10)).shape == (2, ENCODER_WIDTH, 6, 10)


@torch.no_grad()
def test_a_fresh_model_with_the_first_frame_query_is_bit_identical_to_svd():
    components = tiny_components()
    x, sigma, cond = video_inputs()
    svd = VideoDenoiser(components.unet)(x, sigma, cond)
    model = attach_aid(components, FIRST_FRAME)
    processors = [m for m in model.modules() if isinstance(m, MConditionAttnProcessor)]
    encoder_tensors = 6  # three convolutions, weight and bias
    assert processors
    assert len(first_frame_parameters(model)) == 2 * len(processors) + encoder_tensors
    assert (aid_output(model, x, sigma, cond) - svd).abs().max().item() == 0.0
    model.detach()
    assert torch.equal(VideoDenoiser(components.unet)(x, sigma, cond), svd)


@torch.no_grad()
def test_the_answer_follows_the_given_frame_through_the_first_frame_query():
    """With the branch and the projections open, changing only the concat latent changes
    the MCondition branch's answer; with the projections closed the difference is SVD's
    own (the concat latent is the base's input too), so the two differences differ."""
    model = attach_aid(tiny_components(), FIRST_FRAME)
    open_gates(model)
    generator = torch.Generator().manual_seed(1)
    height, width = 8, 12
    x = torch.randn(BATCH, FRAMES, 4, height, width, generator=generator)
    sigma = torch.tensor([0.7, 12.0])
    first = torch.randn(BATCH, 1, 4, height, width, generator=generator)
    other = first + torch.randn(first.shape, generator=generator)

    def change(model) -> torch.Tensor:
        denoiser = VideoDenoiser(model.unet)
        return (denoiser(x, sigma, condition_with_first_frame(model, other))
                - denoiser(x, sigma, condition_with_first_frame(model, first)))

    closed = change(model)
    open_projections(model)
    opened = change(model)
    assert opened.shape == x.shape
    assert not torch.allclose(opened, closed)


def test_the_encoder_and_projections_train_once_the_branch_is_open():
    model = attach_aid(tiny_components(), FIRST_FRAME)
    open_gates(model)
    open_projections(model)
    x, sigma, cond = video_inputs()
    aid_output(model, x, sigma, cond).square().mean().backward()
    for name, parameter in first_frame_parameters(model).items():
        assert parameter.requires_grad, name
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_weight_files_keep_the_first_frame_query_and_refuse_the_other_query(tmp_path):
    model = attach_aid(tiny_components(), FIRST_FRAME)
    open_gates(model)
    open_projections(model)
    path = save_aid_weights(model, tmp_path / "aid.safetensors")
    reloaded = attach_aid(tiny_components(), FIRST_FRAME)
    load_aid_weights(reloaded, path)
    for name, parameter in first_frame_parameters(model).items():
        assert torch.equal(first_frame_parameters(reloaded)[name], parameter), name
    with pytest.raises(AIDWeightsError, match="first_frame_query"):
        load_aid_weights(attach_aid(tiny_components(), CONFIG), path)


@pytest.mark.parametrize("width", [-1, 1.5, True])
def test_the_width_must_be_a_non_negative_integer(width):
    with pytest.raises(ValueError, match="first_frame_query"):
        AIDConfig(first_frame_query=width)
