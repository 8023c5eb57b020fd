"""The MCondition query's neighbourhood **(ours, not the paper's)**: AIDConfig.query_neighbourhood.

In eq. 4 each frame token asks the MCondition with ``q = to_q(x)``, its own features only.
At SVD's ×8 latent grid a small object covers one or two tokens, and on the miniature a
linear probe read an object's shape from its own token 51–61 % of the time against 72–83 %
from the token with its 8 neighbours (docs/results.md, "Where the shape is lost"): with
two objects of one colour, a token could not tell whether "the red circle" meant it.
``QueryNeighbourhood`` gives the query that neighbourhood:

    q = to_q(x + Conv_k×k(x))

with the convolution (weight and bias) zero at initialisation, so a fresh model still
asks exactly as eq. 4 does and computes exactly what SVD computes. Only the MCondition
branch's query sees it; SVD's own cross-attention and the residual stream are unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn


class QueryNeighbourhood(nn.Module):
    """``x + Conv_k×k(x)`` on frame tokens, the convolution zero-initialised.

    Args:
        channels: c, the tokens' width.
        kernel_size: k, odd; the convolution is padded to keep the frame's size.
    """

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, tokens: Tensor, frame_size: tuple[int, int]) -> Tensor:
        """tokens: (B·T, h·w, c), rows ordered (y, x) as diffusers flattens a frame;
        frame_size: (h, w). Returns (B·T, h·w, c)."""
        height, width = frame_size
        rows, count, channels = tokens.shape
        if count != height * width:
            raise ValueError(
                f"query neighbourhood: {count} tokens per frame but the recorded frame size is "
                f"{height}×{width}; call the UNet, not its attention layers directly"
            )
        grid = tokens.transpose(1, 2).reshape(rows, channels, height, width)
        return tokens + self.conv(grid).flatten(2).transpose(1, 2)
