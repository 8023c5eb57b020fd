"""A scene's palette: its background grey, its four primaries and its anti-aliasing.

``WorldConfig.palette`` picks one of two worlds:

- ``"exact"`` (the default, what the bundled miniature was trained on): the background is
  ``WorldConfig.background``, the primaries are ``COLOURS`` exactly, edges are rendered
  with ``WorldConfig.supersampling``.
- ``"varied"``: each clip draws its own palette within the ranges below, so a model trained
  on it meets any light-grey scene with saturated primaries: a grey from 150 to 240 (the
  channels at most ``BACKGROUND_TINT`` apart), each primary's channels within
  ``PRIMARY_JITTER`` of pure (255 stays ≥ 215, 0 stays ≤ 40, so every channel is
  plainly high or low and the four stay saturated and distinguishable), and a
  supersampling from ``SUPERSAMPLING_CHOICES`` (1: hard edges, 8: smooth).

The ranges are here and nowhere else. ``read_palette`` recovers a varied scene's palette
from one of its frames, which is how the detector classifies pixels without being told it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aid_model.synthetic.world import COLOURS, WorldConfig

BACKGROUND_RANGE = (150, 240)  # grey level, inclusive
BACKGROUND_TINT = 2  # largest offset of one channel from the grey level, uint8 levels
PRIMARY_JITTER = 40  # largest distance of a primary's channel from 0 or 255
SUPERSAMPLING_CHOICES = (1, 2, 4, 8)

# Salt that keeps a clip's palette stream apart from its scene stream: a varied clip has
# the same scene, motion, instruction and states as the exact clip of its seed.
PALETTE_SALT = 0xC010

# A pixel is read as "far from the background" when its distance from it (RGB Euclidean,
# uint8 levels) exceeds this; the nearest a jittered primary comes to a grey in range is
# about 150 (e.g. yellow (215, 215, 40) on grey 240), an anti-aliased rim pixel less.
_SATURATED_DISTANCE = 100.0
# Of a colour's far pixels, those within this share of its farthest pixel's distance are
# its interior; their per-channel median is the primary.
_INTERIOR_SHARE = 0.9


@dataclass(frozen=True)
class ScenePalette:
    """The colours one clip is drawn with.

    ``background``: RGB uint8 levels. ``colours``: colour name → RGB uint8 levels, one per
    name of ``COLOURS``. ``supersampling``: sample points per pixel side when rendering.
    ``kind``: "exact" or "varied", the world it was drawn from; "read" when
    ``read_palette`` took it from a frame.
    """

    background: tuple[int, int, int]
    colours: dict[str, tuple[int, int, int]]
    supersampling: int
    kind: str = "exact"

    def as_json(self) -> dict:
        """JSON-ready values, for the ground truth written next to a dataset."""
        return {
            "background": list(self.background),
            "colours": {name: list(rgb) for name, rgb in self.colours.items()},
            "supersampling": self.supersampling,
        }


def exact_palette(config: WorldConfig) -> ScenePalette:
    """The default world's palette: ``config.background``, ``COLOURS``, ``config.supersampling``."""
    return ScenePalette(tuple(config.background), dict(COLOURS), config.supersampling)


def scene_palette(clip_seed: int, salt: int, config: WorldConfig) -> ScenePalette:
    """The palette of the clip of ``clip_seed`` (``salt``: its mode's), per ``config.palette``.

    Exact: no randomness is drawn. Varied: drawn from a generator seeded by (clip seed,
    mode salt, ``PALETTE_SALT``), so the clip's scene stream is untouched.
    """
    if config.palette == "exact":
        return exact_palette(config)
    rng = np.random.default_rng([int(clip_seed), int(salt), PALETTE_SALT])
    grey = int(rng.integers(BACKGROUND_RANGE[0], BACKGROUND_RANGE[1] + 1))
    tint = rng.integers(-BACKGROUND_TINT, BACKGROUND_TINT + 1, size=3)
    background = tuple(int(v) for v in np.clip(grey + tint, 0, 255))
    colours = {}
    for name, pure in COLOURS.items():
        jitter = rng.integers(0, PRIMARY_JITTER + 1, size=3)
        # High channels come down from 255, low ones go up from 0.
        colours[name] = tuple(
            int(255 - j if level == 255 else j) for level, j in zip(pure, jitter, strict=True)
        )
    supersampling = int(SUPERSAMPLING_CHOICES[int(rng.integers(len(SUPERSAMPLING_CHOICES)))])
    return ScenePalette(background, colours, supersampling, kind="varied")


def read_palette(frame: np.ndarray, config: WorldConfig) -> ScenePalette:
    """A scene's palette as one of its frames shows it: uint8 or float (H, W, 3) levels.

    The background is the per-channel median of the near-grey pixels (objects cover at
    most a fifth of the canvas, and they are saturated). A primary is recognised by which
    channels are high (above the middle, 127.5) among the pixels far from the background —
    red: R; green: G; blue: B; yellow: R and G — and is the per-channel median of the
    farthest of them (its interior). A primary absent from the frame keeps its pure value.
    On an exactly rendered frame this returns the colours it was drawn with.
    ``supersampling`` is ``config.supersampling``, the detector's template resolution.
    """
    image = np.asarray(frame, dtype=np.float64).reshape(-1, 3)
    chroma = image.max(axis=1) - image.min(axis=1)
    greys = image[chroma <= 3 * BACKGROUND_TINT + 6]
    # A frame with no grey at all (not this world's) falls back on its median pixel.
    background = np.median(greys if len(greys) else image, axis=0)
    distance = np.linalg.norm(image - background, axis=1)
    high = image > 127.5
    colours = {}
    for name, pure in COLOURS.items():
        pattern = np.asarray(pure) == 255
        mine = (distance > _SATURATED_DISTANCE) & (high == pattern).all(axis=1)
        if not mine.any():
            colours[name] = pure
            continue
        interior = mine & (distance >= _INTERIOR_SHARE * distance[mine].max())
        colours[name] = tuple(int(v) for v in np.rint(np.median(image[interior], axis=0)))
    return ScenePalette(
        tuple(int(v) for v in np.rint(background)), colours, config.supersampling, kind="read"
    )
