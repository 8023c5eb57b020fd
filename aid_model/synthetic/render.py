"""Drawing scenes with numpy: exact colours inside objects, anti-aliased edges.

Each pixel is cut into ``supersampling²`` sample points; an object's coverage of a pixel
is the share of its points inside the shape, and the pixel is the background blended
toward the object's colour by that share. Fully covered pixels therefore carry the exact
primary (the scene palette's, ``palette.py``), and a half-pixel shift of an object changes
its edge pixels smoothly, so motion at constant sub-pixel speed looks like motion rather
than jumps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from aid_model.synthetic.palette import ScenePalette, exact_palette
from aid_model.synthetic.scene import SceneObject
from aid_model.synthetic.world import WorldConfig


def shape_coverage(
    shape: str, size: float, x: float, y: float, image_size: int, supersampling: int
) -> tuple[int, int, np.ndarray]:
    """Coverage of one shape on the pixel grid, over the pixels its box touches.

    Returns ``(top, left, coverage)``: ``coverage`` is float32 (h, w) in [0, 1] for the
    pixel rows ``top..top+h`` and columns ``left..left+w``, clipped to the canvas.
    The shape's box has side ``size`` px and centre (x, y); a circle's diameter, a
    square's side and the (apex-up, isosceles) triangle's base and height equal ``size``.
    """
    half = size / 2.0
    top = max(0, math.floor(y - half))
    left = max(0, math.floor(x - half))
    bottom = min(image_size, math.ceil(y + half))
    right = min(image_size, math.ceil(x + half))
    if bottom <= top or right <= left:
        return top, left, np.zeros((0, 0), dtype=np.float32)
    offsets = (np.arange(supersampling, dtype=np.float64) + 0.5) / supersampling
    # Sample-point coordinates, pixel-major: (rows, ss) and (cols, ss).
    ys = (np.arange(top, bottom, dtype=np.float64)[:, None] + offsets[None, :]).reshape(-1)
    xs = (np.arange(left, right, dtype=np.float64)[:, None] + offsets[None, :]).reshape(-1)
    dy = ys[:, None] - y
    dx = xs[None, :] - x
    if shape == "circle":
        inside = dx * dx + dy * dy <= half * half
    elif shape == "square":
        inside = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    elif shape == "triangle":
        depth = dy + half  # distance below the apex
        inside = (depth >= 0) & (depth <= size) & (np.abs(dx) <= depth / 2.0)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected circle, square or triangle")
    height, width = bottom - top, right - left
    coverage = inside.reshape(height, supersampling, width, supersampling).mean(axis=(1, 3))
    return top, left, coverage.astype(np.float32)


def render_frame(
    objects: Sequence[SceneObject], config: WorldConfig, palette: ScenePalette | None = None
) -> np.ndarray:
    """One frame of ``objects`` at their own positions: uint8 (H, W, 3).

    ``palette``: the scene's colours and supersampling (default: the exact palette).
    """
    palette = palette or exact_palette(config)
    size = config.image_size
    background = np.asarray(palette.background, dtype=np.float32)
    frame = np.broadcast_to(background, (size, size, 3)).copy()
    for obj in objects:
        top, left, coverage = shape_coverage(
            obj.shape, obj.size, obj.x, obj.y, size, palette.supersampling
        )
        height, width = coverage.shape
        if height == 0:
            continue
        colour = np.asarray(palette.colours[obj.colour], dtype=np.float32)
        patch = frame[top : top + height, left : left + width]
        # Blend over what is there: objects never overlap, so this is the background.
        patch += coverage[:, :, None] * (colour - patch)
    return np.rint(frame).clip(0, 255).astype(np.uint8)


def render_clip(
    objects: Sequence[SceneObject],
    trajectory: np.ndarray,
    config: WorldConfig,
    palette: ScenePalette | None = None,
) -> np.ndarray:
    """All frames of a clip: ``trajectory`` (T, N, 2) box centres → uint8 (T, H, W, 3)."""
    if trajectory.ndim != 3 or trajectory.shape[1:] != (len(objects), 2):
        raise ValueError(
            f"expected a trajectory (T, {len(objects)}, 2) for {len(objects)} objects, got "
            f"shape {tuple(trajectory.shape)}"
        )
    frames = [
        render_frame(
            [obj.at(*centre) for obj, centre in zip(objects, step, strict=True)], config, palette
        )
        for step in trajectory
    ]
    return np.stack(frames)
