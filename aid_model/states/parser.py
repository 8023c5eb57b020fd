"""Turns a vision-language model's free-form answer into exactly S state sentences.

Models do not follow the answer format reliably: they add a preamble ("Sure! Here are…"),
bold labels ("**Initial state:**"), bullets instead of numbers, a closing remark, or
gibberish. The rules, in order (``docs/state-prompting.md`` has examples):

1. Each line is tested for an item marker: a number ("1.", "1)", "(1)", "1:", "1 -"),
   a state label ("State 1:", "Step 2 -", "Initial state:", "Final:"), or a bullet
   ("-", "*", "•"). If any line is numbered or labelled, those lines are the items and
   bullets below them continue the item above; otherwise bullets are the items.
2. A leading label ("Initial state:", "**Pouring**:") is removed from an item's text.
   An item that is only a label or a heading ("**State 1: Initial**", "### 2. Pouring")
   takes the next line as its text; an indented line continues the item above; any
   other unmarked line is prose and is dropped. A state must contain a letter.
3. No marked line: a one-line list ("1. … 2. … 3. …") is split at its numbers; failing
   that, two or more plain lines are taken one state each (with a warning).
4. Exactly S states come out. More items: S of them, evenly spread, first and last
   kept (S = 1 keeps the last, the goal state). Fewer: the nearest item repeats to fill
   (with a warning). None: the fallback (the instruction) fills all S (with a warning).

``parse_states`` never raises on model output; the only error is a bad ``num_states``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field

# Words that name a state in a label such as "Initial state:" or "Step 2 -".
_LABEL_NOUN = r"(?:state|step|stage|frame|moment|phase|scene|shot)"
_ORDINAL = (
    r"(?:initial|first|start(?:ing)?|beginning|intermediate|middle|mid|second|third|fourth|"
    r"fifth|sixth|next|later|final|last|end(?:ing)?|goal|target)"
)
# An ordinal that reads as a label on its own ("Initial: the cup is empty").
_BARE_ORDINAL = r"(?:initial|intermediate|middle|final|beginning|start|end)"
_SEPARATOR = r"[:.\-–—)]"

_NUMBERED = re.compile(
    # "1." "1)" "(1)" "[1]" "1:" — not "1.5 litres": a digit may not follow the dot.
    r"^(?:\(\s*\d{1,2}\s*\)|\[\s*\d{1,2}\s*\]|\d{1,2}\s*[.):](?!\d))"
    r"\s*(?P<text>.*)$"
    # "1 - text"
    r"|^\d{1,2}\s+[-–—]\s+(?P<text2>.*)$"
)
# Linear time on any line: in these label patterns every optional part begins with a
# character of its own ("#", a digit, "(", a separator) and whitespace follows the part it
# belongs to, so no two quantifiers can take the same spaces. ("State" + 500 spaces + "!"
# written as "\s*#?\s*\d{0,2}\s*" backtracks through every way to share the spaces.)
_LABELLED = re.compile(
    rf"^(?:the\s+)?(?:(?P<ordinal>{_ORDINAL})\s+)?(?P<noun>{_LABEL_NOUN})\s*(?:#\s*)?"
    rf"(?:(?P<num>\d{{1,2}})\s*)?(?:\([^)]{{0,40}}\)\s*)?(?:{_SEPARATOR}\s*(?P<text>.*)|$)"
    rf"|^(?P<bare>{_BARE_ORDINAL})\s*(?:(?P<num2>\d{{1,2}})\s*)?(?:\([^)]{{0,40}}\)\s*)?"
    rf"[:\-–—]\s*(?P<text2>.*)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^(?:[-*+]\s+|[•·‣◦▪▫●○■□➤►▶→]\s*|[–—]\s+)(?P<text>.*)$")
# A label with nothing after it, left once the separator is gone: "Initial state",
# "State 1 (initial)", "Final". The item's text then comes from the next line.
_LABEL_ONLY = re.compile(
    rf"^(?:the\s+)?(?:{_ORDINAL}\s+)?(?:{_LABEL_NOUN}\s*)?(?:#\s*)?(?:\d{{1,2}}\s*)?"
    rf"(?:\([^)]{{0,40}}\)\s*)?(?:{_SEPARATOR})?$"
    rf"|^{_BARE_ORDINAL}(?:\s+{_LABEL_NOUN})?\s*(?:\d{{1,2}}\s*)?(?:\([^)]{{0,40}}\)\s*)?"
    rf"(?:{_SEPARATOR})?$",
    re.IGNORECASE,
)
# A label at the start of an item's text: "1. Initial state: the cup…" → "the cup…".
_LABEL_PREFIX = re.compile(
    rf"^(?:the\s+)?(?:{_ORDINAL}\s+)?{_LABEL_NOUN}\s*(?:#\s*)?(?:\d{{1,2}}\s*)?"
    rf"(?:\([^)]{{0,40}}\)\s*)?[:\-–—]\s+"
    rf"|^{_BARE_ORDINAL}\s*(?:\d{{1,2}}\s*)?(?:\([^)]{{0,40}}\)\s*)?[:\-–—]\s+"
    rf"|^\((?:{_ORDINAL})[^)]{{0,30}}\)\s*",
    re.IGNORECASE,
)
# One-line lists: "1. The cup is empty. 2. Water flows in. 3. …"
_INLINE_NUMBER = re.compile(
    rf"(?:^|(?<=\s))(?:{_LABEL_NOUN}\s*)?\(?(?P<num>\d{{1,2}})\s*[.):](?!\d)\)?(?=\s)",
    re.IGNORECASE,
)
# A bold title between an item marker and the state: "1. **Pouring**: water flows…",
# "- **Initial state:** the glass…". The title goes; the marker and the state stay.
_BOLD_TITLE = re.compile(
    r"^(?P<marker>[-*+•]\s+(?:\(?\d{1,2}\s*[.):\]]\)?\s*)?|\(?\d{1,2}\s*[.):\]]\)?\s*)"
    r"\*\*[^*\n]{1,60}?(?::\s*\*\*|\*\*\s*[:\-–—])\s*(?=\S)"
)
_HEADER = re.compile(r"^(?:#{1,6}\s*|>\s*)+")
_EMPHASIS = re.compile(r"\*\*|__|`+")
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad]")
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "„": "“", "「": "」"}
# A state needs at least one letter, in any script: "...", "—", "**", "1. 2." and emoji
# alone are not states. ([^\W\d_] is "a word character that is not a digit or _".)
_HAS_LETTER = re.compile(r"[^\W\d_]")
_EXCERPT_CHARS = 80


@dataclass(frozen=True)
class ParsedStates:
    """What the parser made of one answer.

    ``states``: exactly ``num_states`` sentences, in video order. ``num_found``: how many
    items the answer held before resampling (0 means the fallback filled every state).
    ``warnings``: one line per repair, for the user to read; empty when the answer was
    a clean list of exactly S items.
    """

    states: list[str]
    num_found: int
    warnings: list[str] = field(default_factory=list)

    @property
    def used_fallback(self) -> bool:
        """True when nothing in the answer was usable and the fallback filled every state."""
        return self.num_found == 0


@dataclass
class _Line:
    indent: int
    kind: str  # "numbered", "bullet" or "plain"
    text: str  # after the item marker
    body: str  # the whole line, markers kept, markdown emphasis removed
    heading: bool  # a markdown heading or a line wholly in bold


def parse_states(text: object, num_states: int, fallback: str) -> ParsedStates:
    """Exactly ``num_states`` states from a model's answer ``text``.

    ``fallback`` (normally the instruction) fills every state when the answer holds no
    usable item. Never raises on ``text``, whatever it holds (``None`` and non-strings
    read as an empty answer); raises ``ValueError`` only for ``num_states < 1``.
    """
    if isinstance(num_states, bool) or not isinstance(num_states, int) or num_states < 1:
        raise ValueError(f"num_states must be an integer of at least 1, got {num_states!r}")
    fallback = " ".join(str(fallback).split()) if fallback is not None else ""
    answer = text if isinstance(text, str) else ""
    try:
        items, warnings = _extract_items(answer)
    except Exception as error:  # a parser bug must not stop a dataset run
        items, warnings = [], [f"parser error ({type(error).__name__}: {error})"]
    if not items:
        reason = "the answer was empty" if not answer.strip() else "no states found in the answer"
        warnings.append(
            f"{reason} ({_excerpt(answer)}); using the instruction for all {num_states} states"
        )
        return ParsedStates([fallback] * num_states, 0, warnings)
    states, resample_warning = resample_states(items, num_states)
    if resample_warning:
        warnings.append(resample_warning)
    return ParsedStates(states, len(items), warnings)


def _extract_items(answer: str) -> tuple[list[str], list[str]]:
    """The answer's items in order, before resampling, and any warnings about the form."""
    lines = [_classify(raw) for raw in _split_lines(answer)]
    items = _assemble(lines)
    if len(items) > 1:
        return items, []
    inline = _split_inline(" ".join(line.body for line in lines if line is not None))
    if len(inline) > len(items):
        return inline, []
    if items:
        return items, []
    plain = [
        _clean(line.text)
        for line in lines
        if line is not None and not line.text.rstrip().endswith(":")
    ]
    plain = [item for item in plain if _is_state(item)]
    if len(plain) > 1:
        return plain, [f"the answer had no numbered list; took its {len(plain)} lines as states"]
    return [], []


def _split_lines(answer: str) -> list[str]:
    """Lines of the answer, Unicode-normalised (full-width digits, odd spaces) and untabbed."""
    answer = unicodedata.normalize("NFKC", answer)
    answer = _INVISIBLE.sub("", answer).replace("\t", "    ")
    return answer.splitlines()


def _classify(raw: str) -> _Line | None:
    """One line's indentation, item kind and text; ``None`` for a blank line."""
    # Runs of spaces become one: the states are cleaned to single spaces anyway, and no
    # pattern below then has more than one space to try at any point.
    stripped = " ".join(raw.split())
    if not stripped:
        return None
    indent = len(raw) - len(raw.lstrip())
    # "### 2. Opening" or "**State 2: Opening**": a title; the state may be on the next line.
    heading = stripped.startswith("#") or (
        stripped.startswith("**") and stripped.rstrip(":").endswith("**") and len(stripped) > 4
    )
    body = _BOLD_TITLE.sub(r"\g<marker>", _HEADER.sub("", stripped))
    body = _EMPHASIS.sub("", body).strip()
    if not body:
        return None
    bullet = _BULLET.match(body)
    if bullet:
        inner = bullet.group("text").strip()
        # "- State 1: …" and "- 1. …" are numbered items written with a bullet.
        numbered = _match_numbered(inner)
        if numbered is not None:
            return _Line(indent, "numbered", numbered, body, heading)
        return _Line(indent, "bullet", inner, body, heading)
    numbered = _match_numbered(body)
    if numbered is not None:
        return _Line(indent, "numbered", numbered, body, heading)
    return _Line(indent, "plain", body, body, heading)


def _match_numbered(body: str) -> str | None:
    """The text after a number or state label at the start of ``body``, else ``None``."""
    match = _NUMBERED.match(body)
    if match:
        return match.group("text") if match.group("text") is not None else match.group("text2")
    match = _LABELLED.match(body)
    if match:
        if match.group("noun") and not (match.group("ordinal") or match.group("num")):
            return None  # "State: …" or "Scene: …" is a heading, not the n-th state.
        text = match.group("text") if match.group("text") is not None else match.group("text2")
        return text or ""  # "**State 3**" alone: a heading whose text is on the next line
    return None


def _assemble(lines: list[_Line | None]) -> list[str]:
    """Items from classified lines (rules 1 and 2 of the module docstring)."""
    kinds = {line.kind for line in lines if line is not None}
    primary = "numbered" if "numbered" in kinds else "bullet" if "bullet" in kinds else None
    if primary is None:
        return []
    # Each item as its parts, joined at the end: an answer of many continuation lines
    # would otherwise copy its growing item once per line.
    items: list[list[str]] = []
    # What the next unmarked line does to the last item: "fill" (the item was only a
    # label), "title" (the item was a heading, the line below is the state) or "extend".
    pending = "extend"
    after_blank = False
    for line in lines:
        if line is None:
            after_blank = True
            continue
        blank_before, after_blank = after_blank, False
        text = _strip_label(_clean(line.text))
        if line.kind == primary:
            items.append([text])
            pending = "fill" if not _is_state(text) else "title" if line.heading else "extend"
            continue
        if not items:
            continue  # preamble before the first item
        if pending == "fill" or (pending == "title" and not blank_before):
            items[-1] = [text]
            pending = "fill" if not _is_state(text) else "extend"
        elif line.indent > 0 or line.kind == "bullet":
            items[-1].append(text)
        # Otherwise: prose between or after the items ("These states show…"), dropped.
    joined = (" ".join(part for part in parts if part) for parts in items)
    return [item for item in joined if _is_state(item)]


def _split_inline(text: str) -> list[str]:
    """Items of a list written on one line, "1. … 2. … 3. …"; [] if there is no such list.

    Only a chain of markers numbered 1, 2, 3… in order counts, so a stray "at 3. The"
    inside prose does not split it.
    """
    chain: list[re.Match[str]] = []
    for match in _INLINE_NUMBER.finditer(text):
        if int(match.group("num")) == len(chain) + 1:
            chain.append(match)
    if len(chain) < 2:
        return []
    ends = [match.start() for match in chain[1:]] + [len(text)]
    pieces = [_strip_label(_clean(text[m.end() : end])) for m, end in zip(chain, ends, strict=True)]
    return [piece for piece in pieces if _is_state(piece)]


def _clean(text: str) -> str:
    """A state sentence without markdown, wrapping quotes, stray punctuation or runs of spaces."""
    text = _EMPHASIS.sub("", text)
    text = " ".join(text.split())
    text = text.strip(" -–—:;,*•|")
    for _ in range(2):  # '"The cup is empty."' and '**"…"**' both unwrap
        if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
            text = text[1:-1].strip()
    return text


def _strip_label(text: str) -> str:
    """``text`` without a leading "Initial state:" style label; "" if it was only a label."""
    if _LABEL_ONLY.match(text):
        return ""
    return _clean(_LABEL_PREFIX.sub("", text, count=1))


def _is_state(text: str) -> bool:
    return bool(text) and bool(_HAS_LETTER.search(text))


def resample_states(items: list[str], num_states: int) -> tuple[list[str], str | None]:
    """Exactly ``num_states`` of ``items``, evenly spread, first and last kept (rule 4)."""
    count = len(items)
    if count == num_states:
        return list(items), None
    if num_states == 1:
        return [items[-1]], f"the answer had {count} states; kept the last (the final state)"
    # Index i of num_states maps to the item at the same fraction of the way through.
    picks = [math.floor(i * (count - 1) / (num_states - 1) + 0.5) for i in range(num_states)]
    states = [items[index] for index in picks]
    shown = ", ".join(str(index + 1) for index in picks)
    if count > num_states:
        return states, f"the answer had {count} states, {num_states} wanted; kept {shown}"
    return states, (
        f"the answer had only {count} state{'s' if count != 1 else ''}, {num_states} wanted; "
        f"repeated to fill: {shown}"
    )


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    if not flat:
        return "''"
    if len(flat) > _EXCERPT_CHARS:
        flat = flat[: _EXCERPT_CHARS - 1] + "…"
    return repr(flat)
