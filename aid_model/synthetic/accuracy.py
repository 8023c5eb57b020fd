"""Direction accuracy: did the clip do what the instruction said? (issue 7's benchmark)

A clip passes when, between its first and last frame, the named object's centroid moves
at least ``MIN_MOVE`` px toward the stated direction and every other object's centroid
moves less than ``MAX_STILL_MOVE`` px. Objects are found by ``detect_objects`` in both
frames and paired by colour and shape; an object whose shape the detector reads
differently in the last frame (a blurry generated square taken for a circle) is still
paired when its colour is unique among the unpaired objects of both frames.

It fails, with a reason, when the instruction names no object of the first frame, when
any object of the first frame cannot be found in the last, or when the moves are wrong.
Objects that appear only in the last frame do not count against it.

In the varied world (``WorldConfig(palette="varied")``) the palette is read from the
first frame, the given one, and the last frame is read with it too, so a model that
fades a colour is judged against the scene's own colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aid_model.synthetic.detect import DetectedObject, detect_objects, scene_palette_of
from aid_model.synthetic.instructions import parse_instruction
from aid_model.synthetic.world import WorldConfig

MIN_MOVE = 4.0
MAX_STILL_MOVE = 3.0

# The ways a clip fails, in the order they are checked: the instruction names no object of
# the first frame; an object of the first frame is not found in the last; the named object
# moves less than MIN_MOVE the instructed way (or the wrong way); another object moves.
FAILURES = ("no target", "lost", "short move", "other moved")


@dataclass(frozen=True)
class DirectionCheck:
    """The verdict on one clip and why.

    ``moved``: the named object's displacement along the instructed direction in px
    (negative: the wrong way; None: not found). ``largest_other_move``: the largest
    displacement of another object in px (0 when there is none). ``lost``: the objects of
    the first frame not found in the last (a model that drops or recolours objects), named
    when the clip fails for it. ``first_objects``: the objects found in the first frame;
    ``kept_objects``: how many of them are found in the last, counted whatever the verdict
    (a benchmark's per-object share of objects kept).
    """

    passed: bool
    reason: str
    moved: float | None = None
    largest_other_move: float = 0.0
    lost: tuple[str, ...] = ()
    first_objects: int = 0
    kept_objects: int = 0

    @property
    def failure(self) -> str | None:
        """Which of ``FAILURES`` the clip failed by; None when it passed. The checks run in
        that order, so a clip that lost an object counts as "lost" whatever else it did."""
        if self.passed:
            return None
        if self.lost:
            return "lost"
        if self.moved is None:
            return "no target"
        if self.moved < MIN_MOVE:
            return "short move"
        return "other moved"


def check_direction(
    first_frame: Any,
    last_frame: Any,
    instruction: str,
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    config: WorldConfig | None = None,
) -> DirectionCheck:
    """The direction-accuracy verdict for one clip, given its first and last frames.

    Frames: uint8, or float in ``value_range``; (H, W, 3) or (3, H, W) arrays or tensors,
    or PIL images. Raises ``ValueError`` if the instruction is not one of this world's.
    """
    command = parse_instruction(instruction)
    palette = scene_palette_of(first_frame, config, value_range=value_range)
    before = detect_objects(first_frame, config, value_range=value_range, palette=palette)
    after = detect_objects(last_frame, config, value_range=value_range, palette=palette)
    pairs = pair_objects(before, after)
    counts = {"first_objects": len(before), "kept_objects": len(pairs)}
    named = [obj for obj in before if obj.identity == command.target]
    if len(named) != 1:
        return DirectionCheck(
            False,
            f"the first frame has {len(named)} {command.colour} {command.shape}(s), expected one",
            **counts,
        )
    lost = [obj.name for obj in before if id(obj) not in pairs]
    if lost:
        return DirectionCheck(
            False, f"not found in the last frame: {', '.join(lost)}", lost=tuple(lost), **counts
        )
    step = np.asarray(command.step, dtype=np.float64)
    moved = 0.0
    largest_other = 0.0
    for obj in before:
        partner = pairs[id(obj)]
        displacement = np.array([partner.x - obj.x, partner.y - obj.y])
        if obj is named[0]:
            moved = float(displacement @ step)
        else:
            largest_other = max(largest_other, float(np.linalg.norm(displacement)))
    if moved < MIN_MOVE:
        return DirectionCheck(
            False,
            f"the {command.colour} {command.shape} moved {moved:.1f} px "
            f"{command.direction}, needs {MIN_MOVE:g}",
            moved,
            largest_other,
            **counts,
        )
    if largest_other >= MAX_STILL_MOVE:
        return DirectionCheck(
            False,
            f"another object moved {largest_other:.1f} px, allowed < {MAX_STILL_MOVE:g}",
            moved,
            largest_other,
            **counts,
        )
    return DirectionCheck(True, "ok", moved, largest_other, **counts)


def direction_accuracy(
    first_frame: Any,
    last_frame: Any,
    instruction: str,
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    config: WorldConfig | None = None,
) -> bool:
    """Whether the clip from ``first_frame`` to ``last_frame`` carries out ``instruction``."""
    return check_direction(
        first_frame, last_frame, instruction, value_range=value_range, config=config
    ).passed


def direction_accuracy_batch(
    first_frames: Sequence[Any] | Any,
    last_frames: Sequence[Any] | Any,
    instructions: Sequence[str],
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    config: WorldConfig | None = None,
) -> list[bool]:
    """``direction_accuracy`` per clip; frames may be stacked (B, H, W, 3) / (B, 3, H, W).

    The accuracy of a set is ``sum(result) / len(result)``.
    """
    if not len(first_frames) == len(last_frames) == len(instructions):
        raise ValueError(
            f"got {len(first_frames)} first frames, {len(last_frames)} last frames and "
            f"{len(instructions)} instructions; pass one of each per clip"
        )
    return [
        direction_accuracy(first, last, text, value_range=value_range, config=config)
        for first, last, text in zip(first_frames, last_frames, instructions, strict=True)
    ]


def pair_objects(
    before: Sequence[DetectedObject], after: Sequence[DetectedObject]
) -> dict[int, DetectedObject]:
    """``id(first-frame object) → last-frame object``: by colour and shape, then by colour.

    A (colour, shape) pair that occurs once in each frame is paired; of the rest, a colour
    that occurs once among the unpaired objects of each frame is paired too.
    """
    pairs: dict[int, DetectedObject] = {}
    used: set[int] = set()
    for obj in before:
        same = [other for other in after if other.identity == obj.identity]
        twins = [other for other in before if other.identity == obj.identity]
        if len(same) == 1 and len(twins) == 1:
            pairs[id(obj)] = same[0]
            used.add(id(same[0]))
    left_before = [obj for obj in before if id(obj) not in pairs]
    left_after = [obj for obj in after if id(obj) not in used]
    for obj in left_before:
        same_colour = [other for other in left_after if other.colour == obj.colour]
        twins = [other for other in left_before if other.colour == obj.colour]
        if len(same_colour) == 1 and len(twins) == 1:
            pairs[id(obj)] = same_colour[0]
    return pairs
