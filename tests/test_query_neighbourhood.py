"""AIDConfig.query_neighbourhood: the MCondition query sees each token's k × k neighbourhood."""

from __future__ import annotations

import pytest
import torch
from test_aid_model import (
    tiny_components,
)
from test_query_options import (
    OPTIONS,
    condition_with_first_frame,
    non_square_inputs,
    open_option,
)
from tiny_models import open_gates

from aid_model.aid import AIDConfig, attach_aid
from aid_model.aid.query_neighbourhood import QueryNeighbourhood
from aid_model.sampling import VideoDenoiser

NEIGHBOURHOOD = OPTIONS[0]


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
def test_an_open_neighbourhood_changes_the_answer_on_a_non_square_frame():
    model = attach_aid(tiny_components(), NEIGHBOURHOOD.config)
    open_gates(model)
    x, sigma, first = non_square_inputs()
    cond = condition_with_first_frame(model, first)
    closed = VideoDenoiser(model.unet)(x, sigma, cond)
    open_option(model, NEIGHBOURHOOD)
    opened = VideoDenoiser(model.unet)(x, sigma, cond)
    assert opened.shape == closed.shape == x.shape
    assert not torch.equal(opened, closed)


@pytest.mark.parametrize("size", [0, 2, 1.5])
def test_the_kernel_size_must_be_a_positive_odd_integer(size):
    with pytest.raises(ValueError, match="query_neighbourhood"):
        AIDConfig(query_neighbourhood=size)
