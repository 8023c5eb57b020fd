"""AIDConfig.query_neighbourhood: the MCondition query sees each token's k × k neighbourhood."""

from __future__ import annotations

import pytest
import torch

from aid_model.aid import AIDConfig
from aid_model.aid.query_neighbourhood import QueryNeighbourhood


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


@pytest.mark.parametrize("size", [0, 2, 1.5])
def test_the_kernel_size_must_be_a_positive_odd_integer(size):
    with pytest.raises(ValueError, match="query_neighbourhood"):
        AIDConfig(query_neighbourhood=size)
