"""The rules of the synthetic world: canvas, palette, shapes, sizes, motion ranges.

Everything that decides what a clip may look like is a field of ``WorldConfig`` or a
constant here, so a reader finds the world's rules in one file (docs/synthetic-world.md
states them in prose). Positions are in pixels: x grows to the right, y grows down, and
(0, 0) is the top-left corner of the top-left pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

# Saturated primaries on 8 bits; yellow is red + green. Object interiors carry exactly these
# values, which is what lets the detector find objects by colour alone.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# The two worlds' palettes (``palette.py`` holds the varied one's ranges).
PALETTES: tuple[str, ...] = ("exact", "varied")

# Unit steps in image coordinates (y grows down, so "up" is −y).
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}
OPPOSITE: dict[str, str] = {"left": "right", "right": "left", "up": "down", "down": "up"}


@dataclass(frozen=True)
class WorldConfig:
    """Canvas, objects and motion of the synthetic world (defaults: issue 7).

    Canvas:
        image_size: frames are ``image_size × image_size`` RGB.
        background: the plain light-grey background, RGB uint8.
        num_frames: T, frames per clip.
    Objects:
        min_objects, max_objects: objects per scene, inclusive.
        min_size, max_size: side of an object's bounding box in px, inclusive (a circle's
            diameter, a square's side, a triangle's base and height).
        gap: the least distance in px between any two bounding boxes, at every frame, so
            objects never touch and each one stays a separate blob for the detector.
    Motion:
        min_travel, max_travel: distance in px an instructed object is asked to move over
            the clip (an integer drawn uniformly), at constant speed.
        min_room: an instruction is only given if the object can move at least this far
            before the border stops it, so every ground-truth clip shows a visible move.
        supersampling: samples per pixel side when rendering; edges are anti-aliased by
            coverage, interiors keep the exact colour.
    Palette:
        palette: "exact" (``background``, ``COLOURS`` and ``supersampling`` as given) or
            "varied" (each clip draws its own grey, primaries and supersampling within
            the ranges of ``palette.py``; the detector then reads them from the frame).
    """

    image_size: int = 64
    background: tuple[int, int, int] = (200, 200, 200)
    num_frames: int = 8
    min_objects: int = 1
    max_objects: int = 3
    min_size: int = 10
    max_size: int = 16
    gap: float = 2.0
    min_travel: int = 12
    max_travel: int = 24
    min_room: float = 6.0
    supersampling: int = 8
    palette: str = "exact"

    def __post_init__(self) -> None:
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be at least 2 to show motion, got {self.num_frames}")
        if not 1 <= self.min_objects <= self.max_objects <= len(COLOURS) * len(SHAPES):
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= {len(COLOURS) * len(SHAPES)} "
                f"(distinct colour-shape pairs), got {self.min_objects}..{self.max_objects}"
            )
        if not 3 <= self.min_size <= self.max_size < self.image_size:
            raise ValueError(
                f"need 3 <= min_size <= max_size < image_size ({self.image_size}), got "
                f"{self.min_size}..{self.max_size}"
            )
        if not 0 < self.min_travel <= self.max_travel:
            raise ValueError(
                f"need 0 < min_travel <= max_travel, got {self.min_travel}..{self.max_travel}"
            )
        if self.supersampling < 1:
            raise ValueError(f"supersampling must be at least 1, got {self.supersampling}")
        if self.palette not in PALETTES:
            raise ValueError(
                f"unknown palette {self.palette!r}; expected one of {', '.join(PALETTES)}"
            )
