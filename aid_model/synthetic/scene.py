"""Scenes: which objects there are, how big, and where they start.

A scene is a tuple of ``SceneObject`` with distinct (colour, shape) pairs whose bounding
boxes lie inside the canvas and keep ``WorldConfig.gap`` px apart. Positions are box
centres in px; a trajectory (``motion``) moves these centres and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aid_model.synthetic.world import COLOURS, SHAPES, WorldConfig

# Placements tried for one object before the whole scene is drawn again; with at most three
# 16-px objects on a 64-px canvas almost every first try fits.
_PLACEMENT_TRIES = 200


class NamedObject:
    """What a drawn object and a detected one share: a colour and a shape, and so a name."""

    colour: str
    shape: str

    @property
    def name(self) -> str:
        """How instructions and states call it: "red circle"."""
        return f"{self.colour} {self.shape}"

    @property
    def identity(self) -> tuple[str, str]:
        """(colour, shape): unique within a scene."""
        return (self.colour, self.shape)


@dataclass(frozen=True)
class SceneObject(NamedObject):
    """One object: ``size`` is its bounding-box side in px, (``x``, ``y``) the box centre."""

    colour: str
    shape: str
    size: int
    x: float
    y: float

    def at(self, x: float, y: float) -> SceneObject:
        """The same object with its box centre at (x, y)."""
        return SceneObject(self.colour, self.shape, self.size, float(x), float(y))


def centroid_offset(shape: str, size: float) -> tuple[float, float]:
    """Offset (dx, dy) in px from the box centre to the shape's area centroid.

    Circles and squares are symmetric; the triangle (apex up, base at the bottom) has its
    centroid a third of the height above the base, i.e. size/6 below the box centre.
    """
    if shape == "triangle":
        return (0.0, size / 6.0)
    return (0.0, 0.0)


def boxes_apart(a: tuple[float, float, float], b: tuple[float, float, float], gap: float) -> bool:
    """Whether two boxes (centre x, centre y, side) are at least ``gap`` px apart on x or y."""
    ax, ay, a_size = a
    bx, by, b_size = b
    reach = (a_size + b_size) / 2.0 + gap
    return abs(ax - bx) >= reach or abs(ay - by) >= reach


def sample_scene(rng: np.random.Generator, config: WorldConfig) -> tuple[SceneObject, ...]:
    """A random scene: ``min_objects``..``max_objects`` objects, distinct colour-shape pairs,
    sizes in [min_size, max_size], boxes on whole pixels (crisp first frames), apart by gap.
    """
    pairs = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    while True:
        count = int(rng.integers(config.min_objects, config.max_objects + 1))
        chosen = rng.choice(len(pairs), size=count, replace=False)
        objects: list[SceneObject] = []
        for index in chosen:
            colour, shape = pairs[int(index)]
            size = int(rng.integers(config.min_size, config.max_size + 1))
            placed = _place(rng, config, size, objects)
            if placed is None:
                break
            objects.append(SceneObject(colour, shape, size, *placed))
        else:
            return tuple(objects)


def _place(
    rng: np.random.Generator, config: WorldConfig, size: int, others: list[SceneObject]
) -> tuple[float, float] | None:
    """A box centre for a new object of ``size`` clear of ``others``, or None if none is found."""
    last_corner = config.image_size - size
    for _ in range(_PLACEMENT_TRIES):
        left, top = (int(v) for v in rng.integers(0, last_corner + 1, size=2))
        x, y = left + size / 2.0, top + size / 2.0
        if all(boxes_apart((x, y, size), (o.x, o.y, o.size), config.gap) for o in others):
            return (x, y)
    return None
