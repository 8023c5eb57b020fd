"""AIDConfig.first_frame_query: the given frame's encoded objects join the MCondition query."""

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
from aid_model.aid.first_frame_query import FirstFrameEncoder, FirstFrameQuery
from aid_model.sampling import VideoDenoiser

FIRST_FRAME = OPTIONS[1]
ENCODER_WIDTH = FIRST_FRAME.value


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
def test_the_answer_follows_the_given_frame_through_the_first_frame_query():
    """With the branch and the projections open, changing only the concat latent changes
    the MCondition branch's answer; with the projections closed the difference is SVD's
    own (the concat latent is the base's input too), so the two differences differ."""
    model = attach_aid(tiny_components(), FIRST_FRAME.config)
    open_gates(model)
    x, sigma, first = non_square_inputs()
    generator = torch.Generator().manual_seed(2)
    other = first + torch.randn(first.shape, generator=generator)

    def change(model) -> torch.Tensor:
        denoiser = VideoDenoiser(model.unet)
        return (denoiser(x, sigma, condition_with_first_frame(model, other))
                - denoiser(x, sigma, condition_with_first_frame(model, first)))

    closed = change(model)
    open_option(model, FIRST_FRAME)
    opened = change(model)
    assert opened.shape == x.shape
    assert not torch.allclose(opened, closed)


@pytest.mark.parametrize("width", [-1, 1.5, True])
def test_the_width_must_be_a_non_negative_integer(width):
    with pytest.raises(ValueError, match="first_frame_query"):
        AIDConfig(first_frame_query=width)
