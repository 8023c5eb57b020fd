"""The instruction grammar: "{verb} the {colour} {shape} {direction}", and its parser.

Generated instructions use one of ``TEMPLATES`` (the paraphrases); the parser is looser
than the generator, so hand-written instructions ("Please slide the red circle to the
left.") and a model's own wording still resolve to the same (colour, shape, direction).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from aid_model.synthetic.world import COLOURS, DIRECTIONS, SHAPES

# Paraphrases of the same command; the verb carries no meaning in this world.
TEMPLATES: tuple[str, ...] = (
    "move the {colour} {shape} {direction}",
    "push the {colour} {shape} {direction}",
    "slide the {colour} {shape} {direction}",
    "shift the {colour} {shape} {direction}",
    "drag the {colour} {shape} {direction}",
    "nudge the {colour} {shape} {direction}",
)

# Words the parser reads as a direction, beyond the four canonical ones.
_DIRECTION_WORDS: dict[str, str] = {
    "left": "left",
    "leftward": "left",
    "leftwards": "left",
    "right": "right",
    "rightward": "right",
    "rightwards": "right",
    "up": "up",
    "upward": "up",
    "upwards": "up",
    "down": "down",
    "downward": "down",
    "downwards": "down",
}


@dataclass(frozen=True)
class Instruction:
    """What an instruction asks for: move the ``colour`` ``shape`` toward ``direction``."""

    colour: str
    shape: str
    direction: str

    @property
    def target(self) -> tuple[str, str]:
        return (self.colour, self.shape)

    @property
    def step(self) -> tuple[int, int]:
        """Unit step (dx, dy) in image coordinates (y down)."""
        return DIRECTIONS[self.direction]

    def text(self, template: str = TEMPLATES[0]) -> str:
        return template.format(colour=self.colour, shape=self.shape, direction=self.direction)


def sample_instruction_text(instruction: Instruction, rng: np.random.Generator) -> str:
    """``instruction`` in one of the ``TEMPLATES``, drawn uniformly."""
    return instruction.text(TEMPLATES[int(rng.integers(len(TEMPLATES)))])


def parse_instruction(text: str) -> Instruction:
    """The (colour, shape, direction) an instruction names, whatever its verb and wording.

    Raises ``ValueError`` naming the text when a colour, shape or direction is missing or
    named twice with different values ("move the red circle left then right").
    """
    words = re.findall(r"[a-z]+", text.lower())
    colour = _only(text, "colour", [w for w in words if w in COLOURS], tuple(COLOURS))
    shape = _only(text, "shape", [w for w in words if w in SHAPES], SHAPES)
    direction = _only(
        text,
        "direction",
        [_DIRECTION_WORDS[w] for w in words if w in _DIRECTION_WORDS],
        tuple(DIRECTIONS),
    )
    return Instruction(colour, shape, direction)


def _only(text: str, kind: str, found: list[str], choices: tuple[str, ...]) -> str:
    values = sorted(set(found))
    if len(values) == 1:
        return values[0]
    what = "no" if not values else f"more than one ({', '.join(values)})"
    raise ValueError(
        f"instruction {text!r} names {what} {kind}; the synthetic world needs exactly one of "
        f"{', '.join(choices)}, as in 'move the red circle left'"
    )
