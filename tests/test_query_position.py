"""AIDConfig.query_position: each token's place in its frame joins the MCondition query."""

from __future__ import annotations

import math

import pytest
import torch

from aid_model.aid import AIDConfig
from aid_model.aid.query_position import QueryPosition, frame_position_encoding


def test_the_encoding_follows_diffusers_token_order_and_frame_coordinates():
    """Rows are (y, x) row-major; features are sin then cos of y then x at π·2^k."""
    height, width, octaves = 3, 5, 2
    encoding = frame_position_encoding(height, width, octaves)
    assert encoding.shape == (height * width, 4 * octaves)
    row, column = 1, 4
    y, x = (row + 0.5) / height, (column + 0.5) / width
    angles = [math.pi * y, 2 * math.pi * y, math.pi * x, 2 * math.pi * x]
    expected = [math.sin(a) for a in angles] + [math.cos(a) for a in angles]
    torch.testing.assert_close(encoding[row * width + column], torch.tensor(expected))


def test_places_mirrored_across_the_frame_are_told_apart_at_one_octave():
    encoding = frame_position_encoding(4, 4, 1)
    left, right = encoding[1 * 4 + 0], encoding[1 * 4 + 3]  # same row, mirrored columns
    top, bottom = encoding[0 * 4 + 2], encoding[3 * 4 + 2]
    assert not torch.allclose(left, right) and not torch.allclose(top, bottom)
    assert len({tuple(row.tolist()) for row in encoding}) == 16  # every cell its own


def test_the_same_place_has_the_same_encoding_at_any_latent_size():
    coarse, fine = frame_position_encoding(4, 4, 3), frame_position_encoding(12, 12, 3)
    # The centre of coarse cell (1, 2) is the centre of fine cell (4, 7).
    torch.testing.assert_close(coarse[1 * 4 + 2], fine[4 * 12 + 7])


def test_a_fresh_query_position_adds_exact_zeros_and_checks_the_frame_size():
    torch.manual_seed(0)
    module = QueryPosition(6, 2)
    tokens = torch.randn(2, 15, 6)
    assert torch.equal(module(tokens, (3, 5)), tokens)
    torch.nn.init.normal_(module.projection.weight)
    expected = module.projection(frame_position_encoding(3, 5, 2))
    torch.testing.assert_close(module(tokens, (3, 5)) - tokens, expected[None].expand(2, -1, -1))
    with pytest.raises(ValueError, match=r"15 tokens per frame but the recorded frame size is 4×4"):
        module(tokens, (4, 4))


@pytest.mark.parametrize("octaves", [-1, 1.5, True])
def test_the_octave_count_must_be_a_non_negative_integer(octaves):
    with pytest.raises(ValueError, match="query_position must be a non-negative integer"):
        AIDConfig(query_position=octaves)
