"""Background drift: does a predicted clip leave the background alone?

The synthetic world's background is one flat grey; only the objects move. A generator
that repaints, brightens or smears the background frame after frame fails the world
without failing the direction check, so the benchmark measures it: the mean absolute
difference of the predicted frames 1…T−1 from predicted frame 0, in [0, 1] units, over
the pixels away from every object: those that are the flat background in every
ground-truth frame of the clip and at least ``MARGIN`` px from any pixel an object covers
in any of them (an object's blurred rim in a generated frame is not drift). Issue #37's
goal for the rebuilt miniature is ≤ 0.01.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import max_pool2d

# Px kept clear around every pixel an object covers in any ground-truth frame.
MARGIN = 2


def far_from_objects(truth: np.ndarray, background: tuple[int, int, int],
                     margin: int = MARGIN) -> Tensor:
    """Bool (H, W): the pixels that are exactly ``background`` (RGB uint8) in every frame
    of ``truth`` (uint8 (T, H, W, 3), a ground-truth clip) and at least ``margin`` px
    (chessboard distance) from every pixel that is not."""
    covered = (truth != np.asarray(background, dtype=truth.dtype)).any(axis=(0, 3))  # (H, W)
    near = max_pool2d(torch.from_numpy(covered).float()[None, None], 2 * margin + 1,
                      stride=1, padding=margin)[0, 0]
    return near == 0


def background_drift(video: Tensor, far: Tensor) -> float | None:
    """Mean |``video[t]`` − ``video[0]``| over t = 1…T−1, the ``far`` pixels (bool (H, W),
    ``far_from_objects``) and the channels; ``video``: (T, H, W, 3) in [0, 1], frame 0 the
    given one. None when no pixel is far from the objects."""
    if not far.any():
        return None
    change = (video[1:] - video[:1]).abs()  # (T − 1, H, W, 3)
    return change[:, far].mean().item()
