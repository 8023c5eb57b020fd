"""What a dataset reader produces: ``ClipRecord``s (one per sample, before any frame is read)
gathered in a ``RecordSet`` with the dataset's name, layout, split and clip defaults.

Every reader (``read_ssv2``, ``read_bridge``, ``read_epic100``, ``read_ucf101``,
``read_generic``) turns one dataset's annotation files into a ``RecordSet``;
``aid_model.data.base.ClipDataset`` reads clips from it. This module is the layer both the
readers and the state join (``aid_model.data.states``) stand on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
VIDEO_SUFFIXES = (".webm", ".mp4", ".avi", ".mov", ".mkv", ".m4v", ".gif", ".mpg", ".mpeg")


def not_text_error(path: str | Path, error: UnicodeDecodeError, expected: str) -> ValueError:
    """The one-line error for a file that should be UTF-8 text and is not (a binary file,
    another encoding): names the file and the first bad byte."""
    byte = error.object[error.start:error.start + 1].hex()
    return ValueError(f"{path} is not UTF-8 text (byte 0x{byte}: {error.reason}); expected "
                      f"{expected}")


class EmptyDatasetError(ValueError):
    """A dataset that yields nothing; the message names the path and the expected layout."""


@dataclass(frozen=True)
class ClipRecord:
    """One sample before reading.

    ``kind``:
      - ``"video"``: ``source`` is a video file; frames [start, end) (0-based, end exclusive,
        None: to the end of the video).
      - ``"frame_folder"``: ``source`` is a folder of image files, one per frame, in
        natural order of the numbers in their names; frames [start, end) of that list.
      - ``"numbered_frames"``: frame n is ``source / pattern.format(n)`` for n in
        [start, end) (the numbers in the file names; Epic-Kitchens counts from 1).
    ``fps``: the frame rate where the files cannot tell (image frames); videos report theirs.
    ``states``: state texts that came with the annotation (generic datasets).
    """

    sample_id: str
    instruction: str
    source: Path
    kind: str = "video"
    start: int = 0
    end: int | None = None
    fps: float = 0.0
    pattern: str = ""
    states: tuple[str, ...] = ()


@dataclass
class RecordSet:
    """The records one reader found, in the dataset's canonical order, and how to speak of them.

    ``name``: short dataset name for messages ("ssv2"). ``root``: the folder (or file) the
    records were found under. ``layout``: the expected on-disk layout, quoted in errors.
    ``split``: the split read ("train", "validation"…; None: the whole source).
    ``dropped``: records the reader could not use at all (missing files…), as (sample id,
    reason) pairs. ``num_frames``, ``stride``, ``num_reference_frames``: the clip the paper
    samples from this dataset, used where the caller gives none.
    """

    name: str
    root: Path
    layout: str
    records: list[ClipRecord]
    split: str | None = None
    dropped: list[tuple[str, str]] = field(default_factory=list)
    num_frames: int = 16
    stride: int | str = 1
    num_reference_frames: int = 1


def normalize_text(text: str) -> str:
    """Whitespace collapsed to single spaces, ends trimmed (as the state CSV reader does)."""
    return " ".join(str(text).split())


def split_name(split: str, allowed: Sequence[str]) -> str:
    """``split`` with its aliases resolved ("val", "valid" → "validation"), or a clear error."""
    aliases = {"val": "validation", "valid": "validation", "eval": "validation"}
    name = aliases.get(str(split).strip().lower(), str(split).strip().lower())
    if name not in allowed:
        raise ValueError(f"split must be one of {', '.join(allowed)}, got {split!r}")
    return name
