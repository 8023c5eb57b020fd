"""AIDConfig.query_neighbourhood: the MCondition query sees each token's k × k neighbourhood."""

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
from aid_model.aid.mcondition_attention import MConditionAttnProcessor
from aid_model.aid.query_neighbourhood import QueryNeighbourhood
from aid_model.aid.weights import AIDWeightsError, load_aid_weights, save_aid_weights
from aid_model.sampling import VideoCondition, VideoDenoiser

NEIGHBOURHOOD = AIDConfig(**{**CONFIG.__dict__, "query_neighbourhood": 3})


def neighbourhood_convs(model) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in parameter_groups(model)["mcondition_attention"].items()
            if ".query_neighbourhood." in name}


def open_neighbourhoods(model, seed: int = 4) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in neighbourhood_convs(model).values():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)


def test_the_neighbourhood_is_the_frame_grid_in_diffusers_token_order():
    """Tokens (B·T, h·w, c) are row-major (y, x) frames; the convolution must see the
    (B·T, c, h, w) frame, including a frame that is not square."""
    torch.manual_seed(0)
    rows, height, width, channels = 2, 3, 5, 6
    module = QueryNeighbourhood(channels, 3)
    tokens = torch.randn(rows, height * width, channels)
    assert torch.equal(module(tokens, (height, width)), tokens)  # zero at initialisation
    torch.nn.init.normal_(module.conv.weight)
    frames = tokens.transpose(1, 2).reshape(rows, channels, height, width)
    expected = module.conv(frames).flatten(2).transpose(1, 2)
    torch.testing.assert_close(module(tokens, (height, width)) - tokens, expected)
    with pytest.raises(ValueError, match=r"15 tokens per frame but the recorded frame size is 4×4"):
        module(tokens, (4, 4))


@torch.no_grad()
def test_a_fresh_model_with_neighbourhood_is_bit_identical_to_svd():
    components = tiny_components()
    x, sigma, cond = video_inputs()
    svd = VideoDenoiser(components.unet)(x, sigma, cond)
    model = attach_aid(components, NEIGHBOURHOOD)
    processors = [m for m in model.modules() if isinstance(m, MConditionAttnProcessor)]
    assert processors and len(neighbourhood_convs(model)) == 2 * len(processors)  # weight, bias
    assert (aid_output(model, x, sigma, cond) - svd).abs().max().item() == 0.0
    model.detach()
    assert torch.equal(VideoDenoiser(components.unet)(x, sigma, cond), svd)


@torch.no_grad()
def test_an_open_neighbourhood_changes_the_answer_on_a_non_square_frame():
    model = attach_aid(tiny_components(), NEIGHBOURHOOD)
    open_gates(model)
    generator = torch.Generator().manual_seed(1)
    height, width = 8, 12
    x = torch.randn(BATCH, FRAMES, 4, height, width, generator=generator)
    sigma = torch.tensor([0.7, 12.0])
    first = torch.randn(BATCH, 1, 4, height, width, generator=generator)
    mcondition = model.build_mcondition(**text_inputs(2, model.config))
    cond = VideoCondition(torch.randn(BATCH, 1, WIDTH, generator=generator),
                          first.repeat(1, FRAMES, 1, 1, 1),
                          torch.tensor([[6.0, 127.0, 0.02]] * BATCH), mcondition)
    closed = VideoDenoiser(model.unet)(x, sigma, cond)
    open_neighbourhoods(model)
    opened = VideoDenoiser(model.unet)(x, sigma, cond)
    assert opened.shape == closed.shape == x.shape
    assert not torch.equal(opened, closed)


def test_the_convolution_trains_once_the_branch_is_open():
    model = attach_aid(tiny_components(), NEIGHBOURHOOD)
    open_gates(model)
    x, sigma, cond = video_inputs()
    aid_output(model, x, sigma, cond).square().mean().backward()
    for name, parameter in neighbourhood_convs(model).items():
        assert parameter.requires_grad, name
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_weight_files_keep_the_neighbourhood_and_refuse_the_other_query(tmp_path):
    model = attach_aid(tiny_components(), NEIGHBOURHOOD)
    open_gates(model)
    open_neighbourhoods(model)
    path = save_aid_weights(model, tmp_path / "aid.safetensors")
    reloaded = attach_aid(tiny_components(), NEIGHBOURHOOD)
    load_aid_weights(reloaded, path)
    for name, parameter in neighbourhood_convs(model).items():
        assert torch.equal(neighbourhood_convs(reloaded)[name], parameter), name
    with pytest.raises(AIDWeightsError, match="query_neighbourhood"):
        load_aid_weights(attach_aid(tiny_components(), CONFIG), path)


@pytest.mark.parametrize("size", [0, 2, 1.5])
def test_the_kernel_size_must_be_a_positive_odd_integer(size):
    with pytest.raises(ValueError, match="query_neighbourhood"):
        AIDConfig(query_neighbourhood=size)
