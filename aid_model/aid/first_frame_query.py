"""The given frame's objects in the MCondition query **(ours, not the paper's)**:
AIDConfig.first_frame_query.

In eq. 4 each frame token asks the MCondition with ``q = to_q(x)``, x being the frozen
base's features. On the miniature, with two objects of one colour, the model moved one of
them whichever shape was named: a linear probe read an object's shape from its token of
those features 51–61 % of the time (its colour 81–90 %), and giving the query a linear
3 × 3 neighbourhood of them made things worse (docs/results.md). Here a small nonlinear
encoder reads the last reference frame's concat latent, which is clean at every noise
level (the noisy half of the UNet's input is not), and its features join the query:

    f = Enc(z_ref)                          (B, w, h, w_lat), three 3 × 3 convolutions
    q = to_q(x + W_l · resize(f)_token)     per layer l, W_l zero at initialisation

``resize`` average-pools the latent grid to the layer's (a UNet's lower levels halve it).
With every W_l zero a fresh model asks exactly as eq. 4 does and computes exactly what SVD
computes. Only the MCondition branch's query sees f; SVD's own cross-attention and the
residual stream are unchanged. In the frame-dropped branch of dual CFG the concat latent
is zero and so is what the encoder sees. Measured on the miniature it made the model worse
and its features did not learn the shape (docs/results.md, "A first-frame encoder in the
query"); it stays, off by default, so that the run can be repeated.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FirstFrameEncoder(nn.Module):
    """Three 3 × 3 convolutions with GELU between them: (B, C, h, w) → (B, width, h, w).

    Args:
        latent_channels: C, the VAE latent's channels (the concat half of the UNet input).
        width: the features' width (``AIDConfig.first_frame_query``).
    """

    def __init__(self, latent_channels: int, width: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(latent_channels, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
        )

    def forward(self, reference_latent: Tensor) -> Tensor:
        """reference_latent: (B, C, h, w) unscaled concat latent → (B, width, h, w)."""
        return self.layers(reference_latent)


class FirstFrameQuery(nn.Module):
    """One layer's ``x + W_l · resize(f)``, W_l (c × width) and its bias zero-initialised.

    Args:
        width: the encoder's width.
        channels: c, the layer's token width.
    """

    def __init__(self, width: int, channels: int):
        super().__init__()
        self.projection = nn.Linear(width, channels)
        nn.init.zeros_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)

    def forward(self, tokens: Tensor, features: Tensor, frame_size: tuple[int, int]) -> Tensor:
        """
        Args:
            tokens: (B·T, h·w, c) frame tokens, rows ordered (y, x) as diffusers flattens
                a frame and batch-major (b·T + t).
            features: (B, width, H, W) the encoder's output, H ≥ h and W ≥ w.
            frame_size: (h, w) of this layer.
        Returns:
            (B·T, h·w, c).
        """
        height, width = frame_size
        rows, count, _ = tokens.shape
        batch = features.shape[0]
        if count != height * width or rows % batch:
            raise ValueError(
                f"first-frame query: {rows} frames of {count} tokens do not fit "
                f"{batch} clips of {height}×{width}; call the UNet, not its attention "
                "layers directly"
            )
        if features.shape[-2:] != (height, width):
            features = F.adaptive_avg_pool2d(features, (height, width))
        per_clip = self.projection(features.flatten(2).transpose(1, 2).to(tokens.dtype))
        return tokens + per_clip.repeat_interleave(rows // batch, dim=0)
