"""Trajectories: where each object's box centre is at every frame.

A trajectory is a float array (T, N, 2) of box centres (x, y) in px. Motion is at constant
speed along a straight line and stops where the object's box meets the border; objects
never come closer than ``WorldConfig.gap`` to each other (callers check with
``trajectory_clear`` and draw again when they would).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aid_model.synthetic.scene import SceneObject, boxes_apart
from aid_model.synthetic.world import DIRECTIONS, WorldConfig

# Checks between frames: an object moves at most max_travel / (T − 1) ≈ 3.4 px a frame, and
# a diagonal path can clip a neighbour's corner between two frames that are both clear.
_SUBSTEPS = 4


def room(obj: SceneObject, direction: str, config: WorldConfig) -> float:
    """How far in px ``obj`` can move toward ``direction`` before its box meets the border."""
    half = obj.size / 2.0
    far = config.image_size - half
    return {
        "left": obj.x - half,
        "right": far - obj.x,
        "up": obj.y - half,
        "down": far - obj.y,
    }[direction]


def still_trajectory(objects: Sequence[SceneObject], num_frames: int) -> np.ndarray:
    """Every object at its place for ``num_frames`` frames: (T, N, 2)."""
    start = np.array([[obj.x, obj.y] for obj in objects], dtype=np.float64).reshape(-1, 2)
    return np.repeat(start[None], num_frames, axis=0)


def linear_trajectory(
    objects: Sequence[SceneObject],
    velocities: np.ndarray,
    config: WorldConfig,
) -> np.ndarray:
    """Constant-velocity motion stopped by the border, one axis at a time: (T, N, 2).

    ``velocities``: (N, 2) px per frame. A coordinate that reaches the border stays there
    while the other one goes on, so a diagonal mover slides along the edge it meets.
    """
    start = still_trajectory(objects, 1)[0]
    steps = np.arange(config.num_frames, dtype=np.float64)[:, None, None]
    positions = start[None] + steps * np.asarray(velocities, dtype=np.float64)[None]
    half = np.array([obj.size / 2.0 for obj in objects], dtype=np.float64)[None, :, None]
    return np.clip(positions, half, config.image_size - half)


def instructed_trajectory(
    objects: Sequence[SceneObject],
    target: int,
    direction: str,
    travel: float,
    config: WorldConfig,
) -> np.ndarray:
    """Object ``target`` moves ``travel`` px toward ``direction`` over the clip, the others stay.

    Speed is ``travel / (T − 1)`` px per frame, so the last frame is ``travel`` px away
    unless the border stops the object earlier. Returns (T, N, 2).
    """
    velocities = np.zeros((len(objects), 2), dtype=np.float64)
    velocities[target] = np.asarray(DIRECTIONS[direction], dtype=np.float64) * (
        travel / (config.num_frames - 1)
    )
    return linear_trajectory(objects, velocities, config)


def random_velocities(
    objects: Sequence[SceneObject], rng: np.random.Generator, config: WorldConfig
) -> np.ndarray:
    """Velocities (N, 2) for the random-motion mode, in px per frame.

    Each object moves with probability one half (at least one does), in a uniformly drawn
    direction, covering an integer distance in [min_travel, max_travel] over the clip.
    """
    count = len(objects)
    moving = rng.random(count) < 0.5
    if not moving.any():
        moving[int(rng.integers(count))] = True
    angles = rng.uniform(0.0, 2.0 * np.pi, size=count)
    travels = rng.integers(config.min_travel, config.max_travel + 1, size=count)
    speeds = np.where(moving, travels / (config.num_frames - 1), 0.0)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1) * speeds[:, None]


def trajectory_clear(objects: Sequence[SceneObject], trajectory: np.ndarray, gap: float) -> bool:
    """Whether all boxes stay ``gap`` px apart at every frame and between frames."""
    count = len(objects)
    if count < 2:
        return True
    fractions = np.arange(_SUBSTEPS, dtype=np.float64)[:, None, None, None] / _SUBSTEPS
    between = trajectory[:-1][None] + fractions * (trajectory[1:] - trajectory[:-1])[None]
    samples = np.concatenate([between.reshape(-1, count, 2), trajectory[-1:]], axis=0)
    for first in range(count):
        for second in range(first + 1, count):
            a, b = objects[first], objects[second]
            for step in samples:
                box_a = (step[first, 0], step[first, 1], a.size)
                box_b = (step[second, 0], step[second, 1], b.size)
                if not boxes_apart(box_a, box_b, gap):
                    return False
    return True
