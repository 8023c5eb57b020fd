"""Finding the objects of a synthetic-world frame: colour, shape, size and centroid.

Works on rendered frames exactly and on a model's generated frames approximately:

0. The scene's palette: the world's exact one (``WorldConfig.palette == "exact"``), or,
   for the varied world, the background and primaries read from the frame
   (``palette.read_palette``), so any light-grey scene with saturated primaries is read
   by the nearest primary rather than by exact values.
1. Every pixel is read as the background blended toward one of the four primaries,
   ``pixel = background + a · (primary − background)``; for each primary, ``a`` is the
   least-squares blend and the residual says how far the pixel is from that line. A pixel
   belongs to the primary with the smallest residual if ``a ≥ 0.25`` and the residual is
   within ``RESIDUAL_TOLERANCE``.
2. Pixels of one colour are split into 8-connected blobs (objects keep 2 px apart, so
   two objects of one colour are two blobs); blobs smaller than ``MIN_AREA`` are noise.
3. The centroid is the blend-weighted mean over the blob grown by one pixel, which is
   where the anti-aliased rim lies, so it matches the shape's true centroid to a small
   fraction of a pixel.
4. The shape is the template (circle, square, triangle, rendered by ``render``) that best
   matches the blob's coverage, each sized to the blob's area.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from aid_model.synthetic.palette import ScenePalette, exact_palette, read_palette
from aid_model.synthetic.render import shape_coverage
from aid_model.synthetic.scene import NamedObject, SceneObject, centroid_offset
from aid_model.synthetic.world import COLOURS, SHAPES, WorldConfig

# Least blend toward a primary for a pixel to count as part of an object.
MIN_BLEND = 0.25
# Largest distance (uint8 units, RGB Euclidean) from the background–primary line; exact
# renders are within rounding (< 1), a generated frame's colours drift further.
RESIDUAL_TOLERANCE = 64.0
# Smallest blob, in covered pixels, taken as an object; the smallest object (a 10-px
# triangle) covers 50.
MIN_AREA = 20.0
# Shape area as a fraction of its bounding box's, to size each template from a blob's area.
_AREA_FRACTION = {"circle": np.pi / 4.0, "square": 1.0, "triangle": 0.5}
# Blurs a generated frame's edges may have suffered: none, binomial 3 and 5 taps.
_SOFTENING = (
    np.array([1.0]),
    np.array([1.0, 2.0, 1.0]) / 4.0,
    np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0,
)
_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)


@dataclass(frozen=True)
class DetectedObject(NamedObject):
    """One object found in a frame.

    ``x``, ``y``: area centroid in px (pixel (0, 0) spans [0, 1) × [0, 1)). ``size``: the
    side of the bounding box implied by the area and shape. ``area``: covered pixels.
    ``shape_error``: mean absolute coverage difference to the best template, per covered
    pixel (≈ 0 on rendered frames, higher on generated ones).
    """

    colour: str
    shape: str
    x: float
    y: float
    size: float
    area: float
    shape_error: float

    def as_scene_object(self) -> SceneObject:
        """The object as a scene would hold it: integer size, box centre rather than centroid."""
        dx, dy = centroid_offset(self.shape, self.size)
        return SceneObject(self.colour, self.shape, round(self.size), self.x - dx, self.y - dy)


def as_uint8_frame(frame: Any, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """One frame as uint8 (H, W, 3).

    Accepts a PIL image, or a numpy array / torch tensor laid out (H, W, 3) or (3, H, W);
    uint8 is taken as is, floats are mapped from ``value_range`` (the dataset's frames are
    in (−1, 1), decoded model outputs usually in (0, 1)).
    """
    if hasattr(frame, "mode") and hasattr(frame, "convert"):  # PIL, without importing it here
        return np.asarray(frame.convert("RGB"), dtype=np.uint8)
    if hasattr(frame, "detach"):  # a torch tensor
        frame = frame.detach().cpu().numpy()
    array = np.asarray(frame)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(
            f"expected one RGB frame (H, W, 3) or (3, H, W), got shape {tuple(array.shape)}; "
            f"index a clip (T, …) one frame at a time"
        )
    if array.dtype == np.uint8:
        return array
    low, high = value_range
    scaled = (array.astype(np.float64) - low) / (high - low) * 255.0
    return np.rint(scaled).clip(0, 255).astype(np.uint8)


def detect_objects(
    frame: Any,
    config: WorldConfig | None = None,
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    palette: ScenePalette | None = None,
) -> list[DetectedObject]:
    """The objects in one frame, sorted by (colour, shape, y, x).

    ``frame``: see ``as_uint8_frame``. ``config``: the world (default world otherwise);
    its palette decides the colours looked for unless ``palette`` gives them: exact,
    ``config.background`` and ``COLOURS``; varied, those ``scene_palette_of`` reads from
    this frame.
    """
    config = config or WorldConfig()
    levels = as_uint8_frame(frame, value_range)
    palette = palette or scene_palette_of(levels, config)
    image = levels.astype(np.float64)
    height, width, _ = image.shape
    blends, labels = _classify_pixels(image, palette)
    found: list[DetectedObject] = []
    for index, colour in enumerate(COLOURS):
        blend = blends[index]
        for pixels in _blobs(labels == index):
            grown = _grow(pixels, height, width)
            # Only pixels that are not another colour's add their blend to the centroid.
            weights = np.where(grown & ((labels == index) | (labels < 0)), blend, 0.0)
            area = float(weights.sum())
            if area < MIN_AREA:
                continue
            ys, xs = np.nonzero(weights)
            values = weights[ys, xs]
            cx = float(((xs + 0.5) * values).sum() / area)
            cy = float(((ys + 0.5) * values).sum() / area)
            # Templates are compared on a window around the blob, with room for softening.
            top, left = max(0, int(ys.min()) - 3), max(0, int(xs.min()) - 3)
            window = np.s_[top : int(ys.max()) + 4, left : int(xs.max()) + 4]
            shape, size, error = _match_shape(
                weights[window], grown[window], cx - left, cy - top, area, config
            )
            found.append(DetectedObject(colour, shape, cx, cy, size, area, error))
    found.sort(key=lambda obj: (obj.colour, obj.shape, obj.y, obj.x))
    return found


def scene_palette_of(
    frame: Any, config: WorldConfig | None = None, value_range: tuple[float, float] = (0.0, 1.0)
) -> ScenePalette:
    """The palette the detector reads ``frame`` with under ``config``: the exact one, or, in
    the varied world, the one the frame shows (``frame``, ``value_range``: as for
    ``as_uint8_frame``)."""
    config = config or WorldConfig()
    if config.palette == "exact":
        return exact_palette(config)
    return read_palette(as_uint8_frame(frame, value_range), config)


def _classify_pixels(image: np.ndarray, palette: ScenePalette) -> tuple[np.ndarray, np.ndarray]:
    """Per primary, each pixel's blend (K, H, W) in [0, 1]; per pixel, its colour index or −1."""
    background = np.asarray(palette.background, dtype=np.float64)
    primaries = np.asarray(  # (K, 3), in COLOURS' order
        [palette.colours[name] for name in COLOURS], dtype=np.float64
    ) - background
    offset = image - background  # (H, W, 3)
    blends = np.einsum("hwc,kc->khw", offset, primaries) / (primaries**2).sum(axis=1)[:, None, None]
    blends = blends.clip(0.0, 1.0)
    residuals = np.linalg.norm(
        offset[None] - blends[..., None] * primaries[:, None, None, :], axis=-1
    )  # (K, H, W)
    best = residuals.argmin(axis=0)
    best_blend = np.take_along_axis(blends, best[None], axis=0)[0]
    best_residual = np.take_along_axis(residuals, best[None], axis=0)[0]
    is_object = (best_blend >= MIN_BLEND) & (best_residual <= RESIDUAL_TOLERANCE)
    return blends, np.where(is_object, best, -1)


def _blobs(mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """8-connected components of a boolean (H, W) mask, as (rows, cols) index arrays."""
    height, width = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    blobs = []
    for start_y, start_x in zip(*np.nonzero(mask), strict=True):
        if seen[start_y, start_x]:
            continue
        seen[start_y, start_x] = True
        queue = deque([(int(start_y), int(start_x))])
        rows, cols = [], []
        while queue:
            y, x = queue.popleft()
            rows.append(y)
            cols.append(x)
            for dy, dx in _NEIGHBOURS:
                ny, nx = y + dy, x + dx
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        blobs.append((np.asarray(rows), np.asarray(cols)))
    return blobs


def _grow(pixels: tuple[np.ndarray, np.ndarray], height: int, width: int) -> np.ndarray:
    """Boolean (H, W) mask of the blob and its 8 neighbours (the anti-aliased rim)."""
    mask = np.zeros((height + 2, width + 2), dtype=bool)
    rows, cols = pixels
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            mask[rows + dy, cols + dx] = True
    return mask[1:-1, 1:-1]


def _match_shape(
    weights: np.ndarray, support: np.ndarray, cx: float, cy: float, area: float, config: WorldConfig
) -> tuple[str, float, float]:
    """The best-matching shape, its size, and its error (mean |coverage − template|).

    ``weights``: the blob's coverage (h, w) on a window of the frame, ``cx``, ``cy`` its
    centroid in window px; ``support``: the pixels it may cover. Each
    template is also tried softened by ``_SOFTENING`` kernels, because a generated frame's
    edges are blurred and a blurred square's corners look round to a sharp template.
    """
    height, width = weights.shape
    best: tuple[str, float, float] | None = None
    for shape in SHAPES:
        size = float(np.sqrt(area / _AREA_FRACTION[shape]))
        dx, dy = centroid_offset(shape, size)
        top, left, template = shape_coverage(
            shape, size, cx - dx, cy - dy, max(height, width), config.supersampling
        )
        template = template[: height - top, : width - left]  # a non-square window's overhang
        sharp = np.zeros_like(weights)
        sharp[top : top + template.shape[0], left : left + template.shape[1]] = template
        for kernel in _SOFTENING:
            expected = _soften(sharp, kernel)
            error = float(np.abs(weights - expected)[support].sum() / area)
            if best is None or error < best[2]:
                best = (shape, size, error)
    assert best is not None
    return best


def _soften(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``image`` (H, W) convolved with the separable ``kernel`` on both axes, zero-padded."""
    if len(kernel) == 1:
        return image
    reach = len(kernel) // 2
    padded = np.pad(image, reach)
    rows = sum(w * padded[:, i : i + image.shape[1]] for i, w in enumerate(kernel))
    return sum(w * rows[i : i + image.shape[0], :] for i, w in enumerate(kernel))
