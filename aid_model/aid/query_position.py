"""The tokens' places in the MCondition query **(ours, not the paper's)**: AIDConfig.query_position.

In eq. 4 the MCondition branch's query ``q = to_q(x)`` holds what a frame token shows, not
where it is: SVD's spatial attention has no positional encoding, so a place enters the
features only through the convolutions' borders. The states a VLM writes say where the
named object is ("the red circle is on the left"; on the miniature a 3 × 3 grid of the
canvas, ``aid_model.synthetic.states``), which tells it from another object of its colour
without the shape word; but on the miniature the same object moved whether the states
placed the instructed object or its look-alike (docs/results.md, "Look-alike scenes").
``QueryPosition`` gives the query each token's place:

    q = to_q(x + W·PE(y, x))

with PE the sines and cosines of the token's centre in frame coordinates (0 … 1 across
the frame, so the same place at any latent size) at F octaves, π·2^k for k < F, and W a
linear map zero at initialisation: a fresh model still asks exactly as eq. 4 does and
computes exactly what SVD computes. Only the MCondition branch's query sees it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def frame_position_encoding(height: int, width: int, octaves: int, device=None,
                            dtype: torch.dtype = torch.float32) -> Tensor:
    """(h·w, 4·F) sin and cos of each token's centre, (y + ½)/h and (x + ½)/w, at the angular
    frequencies π·2^k, k < F; rows in diffusers' token order (y, then x). The lowest octave's
    cosine runs once from +1 to −1 across the frame, so left and right, top and bottom
    differ at every octave count."""
    frequencies = math.pi * 2.0 ** torch.arange(octaves, device=device, dtype=torch.float32)
    rows = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    columns = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    y, x = torch.meshgrid(rows, columns, indexing="ij")  # (h, w) each
    angles = torch.cat([y[..., None] * frequencies, x[..., None] * frequencies], dim=-1)
    encoding = torch.cat([angles.sin(), angles.cos()], dim=-1)  # (h, w, 4·F)
    return encoding.flatten(0, 1).to(dtype)


class QueryPosition(nn.Module):
    """``x + W·PE(y, x)`` on frame tokens, W zero-initialised.

    Args:
        channels: c, the tokens' width.
        octaves: F, the encoding's frequency count (4·F features).
    """

    def __init__(self, channels: int, octaves: int):
        super().__init__()
        self.octaves = octaves
        self.projection = nn.Linear(4 * octaves, channels)
        nn.init.zeros_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)

    def forward(self, tokens: Tensor, frame_size: tuple[int, int]) -> Tensor:
        """tokens: (B·T, h·w, c), rows ordered (y, x) as diffusers flattens a frame;
        frame_size: (h, w). Returns (B·T, h·w, c)."""
        height, width = frame_size
        if tokens.shape[1] != height * width:
            raise ValueError(
                f"query position: {tokens.shape[1]} tokens per frame but the recorded frame "
                f"size is {height}×{width}; call the UNet, not its attention layers directly"
            )
        weight = self.projection.weight
        encoding = frame_position_encoding(height, width, self.octaves, weight.device,
                                           weight.dtype)
        return tokens + self.projection(encoding).to(tokens.dtype)[None]
