"""Reading the multi-line text widgets: one item a line, blocks separated by blank lines."""

from __future__ import annotations

import re

_BLANK_LINE = re.compile(r"\n\s*\n")


def lines(text: str) -> list[str]:
    """Non-empty, stripped lines ("a\\n\\n b " → ["a", "b"])."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def blocks(text: str) -> list[list[str]]:
    """Groups of lines separated by one or more blank lines; empty text → []."""
    normalized = (text or "").replace("\r\n", "\n").strip()
    if not normalized:
        return []
    return [lines(block) for block in _BLANK_LINE.split(normalized)]
