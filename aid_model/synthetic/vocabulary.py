"""Every word the synthetic world writes, for a word-level tokenizer of its instructions
and states. ``split_words`` is the one rule that cuts text into those words.
"""

from __future__ import annotations

import re

from aid_model.synthetic.instructions import TEMPLATES
from aid_model.synthetic.world import COLOURS, DIRECTIONS, SHAPES

# The words of ``states`` sentences beyond names and directions.
_POSITION_WORDS = ("near", "centre", "on", "in", "at", "edge", "corner", "top", "bottom")
_SENTENCE_WORDS = ("the", "is", "moves", "now", "stops", "stays", "has", "moved", "and", ",")


def split_words(text: str) -> list[str]:
    """``text`` as lower-case words and punctuation marks: "Move the red circle, now!" →
    ["move", "the", "red", "circle", ",", "now", "!"]."""
    return re.findall(r"[a-z]+|[^\sa-z]", text.lower())


def vocabulary() -> list[str]:
    """The sorted words of every instruction and state the world generates."""
    words = {*_POSITION_WORDS, *_SENTENCE_WORDS} | set(COLOURS) | set(SHAPES) | set(DIRECTIONS)
    for template in TEMPLATES:
        words.update(split_words(re.sub(r"\{\w+\}", " ", template)))
    return sorted(words)
