"""Future states of a clip in words: where the named object is at S evenly spaced frames.

The stand-in for the vision-language model's states (paper §3.3): short sentences, one
per state, in video order: the initial state, S − 2 intermediate ones, the final state.

    the red circle is near the centre
    the red circle moves left, now near the centre
    the red circle moves left, now on the left
    the red circle has moved left and is at the left edge

A position is named on a 3 × 3 grid of the canvas by the object's box centre, unless its
box touches an edge (within ``EDGE_TOLERANCE``), which wins: "at the left edge", "in the
top left corner".
"""

from __future__ import annotations

import numpy as np

from aid_model.synthetic.scene import SceneObject
from aid_model.synthetic.world import WorldConfig

# A box this close to the border (px) is "at the … edge". Not a whole number: first frames
# put boxes on whole pixels, so no box sits exactly on the boundary, where the detector's
# hundredths of a pixel would decide.
EDGE_TOLERANCE = 1.5
# Moves shorter than this (px) between two state frames read as standing still.
MIN_VISIBLE_MOVE = 0.5


def describe_position(obj: SceneObject, config: WorldConfig) -> str:
    """Where ``obj`` (its box centre and size) is on the canvas, as a phrase.

    "near the centre", "on the left", "near the top", "in the top left" (3 × 3 grid of
    the box centre); "at the left edge", "at the left edge, near the top", "in the top
    left corner" (the box touches the border, which wins over the grid on its axis).
    """
    half, size = obj.size / 2.0, config.image_size
    column = "left" if obj.x < size / 3.0 else "right" if obj.x > 2.0 * size / 3.0 else ""
    row = "top" if obj.y < size / 3.0 else "bottom" if obj.y > 2.0 * size / 3.0 else ""
    at_side = obj.x - half <= EDGE_TOLERANCE or obj.x + half >= size - EDGE_TOLERANCE
    at_end = obj.y - half <= EDGE_TOLERANCE or obj.y + half >= size - EDGE_TOLERANCE
    side = "left" if obj.x < size / 2.0 else "right"
    end = "top" if obj.y < size / 2.0 else "bottom"
    if at_side and at_end:
        return f"in the {end} {side} corner"
    if at_side:
        return f"at the {side} edge" + (f", near the {row}" if row else "")
    if at_end:
        return f"at the {end} edge" + (f", near the {column}" if column else "")
    if column and row:
        return f"in the {row} {column}"
    if column:
        return f"on the {column}"
    if row:
        return f"near the {row}"
    return "near the centre"


def describe_motion(displacement: np.ndarray) -> str:
    """The direction of a displacement (dx, dy) in px, y down: "left", "up and right", …

    A minor axis is named too when it is at least half the major one.
    """
    dx, dy = float(displacement[0]), float(displacement[1])
    horizontal = "left" if dx < 0 else "right"
    vertical = "up" if dy < 0 else "down"
    if abs(dx) >= abs(dy):
        return f"{vertical} and {horizontal}" if abs(dy) >= abs(dx) / 2.0 else horizontal
    return f"{vertical} and {horizontal}" if abs(dx) >= abs(dy) / 2.0 else vertical


def state_frames(num_frames: int, num_states: int) -> list[int]:
    """The frames the S states describe: evenly spaced from the first to the last frame.

    T = 8, S = 4 gives [0, 2, 5, 7]. One state is the final one, the goal.
    """
    if num_states < 1:
        raise ValueError(f"num_states must be at least 1, got {num_states}")
    if num_states == 1:
        return [num_frames - 1]
    return [round(i * (num_frames - 1) / (num_states - 1)) for i in range(num_states)]


def trajectory_states(
    obj: SceneObject, path: np.ndarray, num_states: int, config: WorldConfig
) -> list[str]:
    """S sentences on ``obj`` following ``path`` (T, 2) box centres, in video order."""
    path = np.asarray(path, dtype=np.float64)
    frames = state_frames(len(path), num_states)
    states = []
    for number, frame in enumerate(frames):
        where = describe_position(obj.at(*path[frame]), config)
        so_far = path[frame] - path[0]
        if frame == 0:
            states.append(f"the {obj.name} is {where}")
        elif number == len(frames) - 1:
            if np.abs(so_far).max() < MIN_VISIBLE_MOVE:
                states.append(f"the {obj.name} stays {where}")
            else:
                states.append(f"the {obj.name} has moved {describe_motion(so_far)} and is {where}")
        else:
            lately = path[frame] - path[frames[number - 1]]
            if np.abs(lately).max() >= MIN_VISIBLE_MOVE:
                states.append(f"the {obj.name} moves {describe_motion(lately)}, now {where}")
            elif np.abs(so_far).max() >= MIN_VISIBLE_MOVE:
                states.append(f"the {obj.name} stops {where}")
            else:
                states.append(f"the {obj.name} stays {where}")
    return states
