"""``ClipDataset``: the map-style dataset every loader builds on.

A loader only finds its ``ClipRecord``s (one per sample: where the frames are, which
segment, the instruction, the sample id); reading, sampling, skipping and the state join
live here once. Items follow the contract of ``aid_model.data.sample``.

Determinism: item ``i`` in epoch ``e`` is a function of (seed, e, i) only: the random
temporal offset comes from a generator seeded by that triple, so a DistributedSampler (or
any sampler) gets the same clip for an index on every rank and worker. Call ``set_epoch``
before each epoch's DataLoader iterator is created (workers copy the dataset when the
iterator starts, so ``persistent_workers`` must stay False for the epoch to reach them).

Skipping: a record that cannot be read (corrupt, short, missing frames) is replaced by the
next readable one (index + 1, + 2, …, wrapping), deterministically, and counted in
``skipped`` for the epoch. Reads in DataLoader workers report through the item's
``"skipped"`` list; pass each batch to ``count_skips`` to bring those counts home.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aid_model.data.clips import (
    UNIFORM,
    choose_indices,
    clip_fps,
    frames_to_tensor,
    parse_size,
    parse_stride,
    sample_rng,
)
from aid_model.data.decode import (
    DecodedClip,
    DecodeError,
    read_image_clip,
    read_video_clip,
)
from aid_model.data.sample import SKIPPED_KEY, make_sample

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
VIDEO_SUFFIXES = (".webm", ".mp4", ".avi", ".mov", ".mkv", ".m4v", ".gif", ".mpg", ".mpeg")

# After this many unreadable records in a row, the data (or the decoder) is broken as a
# whole; going on would scan the entire dataset for nothing.
MAX_CONSECUTIVE_FAILURES = 64


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
class SkipReport:
    """Records skipped in one epoch, by sample id (a record skipped twice counts once)."""

    epoch: int = 0
    reasons: dict[str, str] = field(default_factory=dict)  # sample id → "reason: detail"

    def add(self, entry: str) -> None:
        sample_id, _, detail = entry.partition(": ")
        self.reasons.setdefault(sample_id, detail)

    @property
    def count(self) -> int:
        return len(self.reasons)

    def by_reason(self) -> Counter:
        return Counter(detail.partition(":")[0] for detail in self.reasons.values())

    def summary(self, total: int | None = None, examples: int = 3) -> str:
        """One line for the end-of-epoch log."""
        of = f" of {total:,}" if total is not None else ""
        if not self.reasons:
            return f"epoch {self.epoch}: no samples skipped"
        reasons = ", ".join(f"{n} {reason}" for reason, n in self.by_reason().most_common())
        shown = "; ".join(
            f"{sample_id} ({detail})" for sample_id, detail in list(self.reasons.items())[:examples]
        )
        more = ", …" if self.count > examples else ""
        return f"epoch {self.epoch}: {self.count:,}{of} samples skipped ({reasons}): {shown}{more}"


# Splits a model is scored on: their windows start at the segment's first frame by default,
# so that a score does not move with the epoch. "all" is UCF-101's zero-shot evaluation set.
EVALUATION_SPLITS = ("validation", "val", "test", "all")


class ClipDataset(torch.utils.data.Dataset):
    """Clips of T frames from ``records``; see the module docstring for the rules.

    Args:
        records: the samples, in the dataset's canonical order (``max_samples`` keeps the
            first N of it, or a random N with ``subset_seed``).
        name: short dataset name for messages ("ssv2").
        root: the folder the records were found under (for messages).
        layout: the expected on-disk layout, quoted in errors.
        num_frames: T.
        stride: a positive int or "uniform" (see ``aid_model.data.clips``).
        size: output height and width (int or (h, w)), multiples of 8.
        num_reference_frames: K, 1 ≤ K < T.
        split: the split the records were read for ("train", "validation"…; None: the
            whole source), kept as ``self.split``.
        random_offset: draw the window's start at random (training); else it starts at the
            segment's first frame. Only matters for an integer stride. None: on unless
            ``split`` is one that is evaluated on (``EVALUATION_SPLITS``).
        seed: the seed of the per-item generators.
        states_jsonl: a state cache (``python -m aid_model states --out``) joined by sample id
            (``aid_model.data.states``); None: every item has ``states == []`` unless its
            record carries states.
        max_samples: keep at most this many records.
        subset_seed: with ``max_samples``, a seeded random subset instead of the first N.
        dropped: records the loader could not use at all (missing files…), (sample id,
            reason) pairs; logged once and kept in ``self.dropped``.
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        *,
        name: str,
        root: str | Path,
        layout: str,
        num_frames: int,
        stride: int | str,
        size: int | Sequence[int] = 256,
        num_reference_frames: int = 1,
        split: str | None = None,
        random_offset: bool | None = None,
        seed: int = 0,
        states_jsonl: str | Path | None = None,
        max_samples: int | None = None,
        subset_seed: int | None = None,
        dropped: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.name = name
        self.root = Path(root)
        self.layout = layout
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 2:
            raise ValueError(f"num_frames must be an integer ≥ 2, got {num_frames!r}")
        self.num_frames = num_frames
        self.stride = parse_stride(stride)
        self.size = parse_size(tuple(size) if isinstance(size, list) else size)
        if not isinstance(num_reference_frames, int) or not 1 <= num_reference_frames < num_frames:
            raise ValueError(
                f"num_reference_frames must be an integer in [1, num_frames − 1] = "
                f"[1, {num_frames - 1}], got {num_reference_frames!r}"
            )
        self.num_reference_frames = num_reference_frames
        self.split = split
        self.random_offset = (
            split not in EVALUATION_SPLITS if random_offset is None else bool(random_offset)
        )
        self.seed = int(seed)
        self.epoch = 0
        self.dropped = list(dropped)
        if self.dropped:
            counts = Counter(reason for _, reason in self.dropped)
            logger.warning(
                "%s: %d record(s) under %s left out (%s), e.g. %s",
                name,
                len(self.dropped),
                self.root,
                ", ".join(f"{n} {reason}" for reason, n in counts.most_common()),
                self.dropped[0][0],
            )
        records = list(records)
        if max_samples is not None:
            if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
                raise ValueError(f"max_samples must be a positive integer, got {max_samples!r}")
            if subset_seed is not None and max_samples < len(records):
                order = np.random.default_rng(subset_seed).permutation(len(records))[:max_samples]
                records = [records[i] for i in sorted(order)]
            records = records[:max_samples]
        if not records:
            found = (
                f" ({len(self.dropped)} found but unusable, e.g. {self.dropped[0]})"
                if (self.dropped)
                else ""
            )
            raise EmptyDatasetError(
                f"{name}: no samples found under {str(self.root)!r}{found}. Expected layout:\n"
                f"{layout}"
            )
        self.records = records
        self.skipped = SkipReport(epoch=0)
        self._bad: dict[int, str] = {}  # record index → "reason: detail", in this process
        self.states_jsonl = Path(states_jsonl) if states_jsonl is not None else None
        self._states: dict[str, list[str]] = {}
        if self.states_jsonl is not None:
            from aid_model.data.states import join_states

            self._states = join_states(self.records, self.states_jsonl, name=name)

    # ----- the Dataset protocol -------------------------------------------------------

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} samples")
        index %= len(self)
        in_worker = torch.utils.data.get_worker_info() is not None
        skipped_here: list[str] = []
        for attempt in range(min(len(self), MAX_CONSECUTIVE_FAILURES)):
            position = (index + attempt) % len(self)
            record = self.records[position]
            problem = self._bad.get(position)
            if problem is None:
                try:
                    return self._item(position, record, skipped_here if in_worker else [])
                except DecodeError as error:
                    problem = f"{error.reason}: {error}"
                    self._bad[position] = problem
            entry = f"{record.sample_id}: {problem}"
            self.skipped.add(entry)
            skipped_here.append(entry)
        tried = min(len(self), MAX_CONSECUTIVE_FAILURES)
        examples = "; ".join(skipped_here[:3])
        raise RuntimeError(
            f"{self.name}: {tried} samples in a row from index {index} could not be read "
            f"({examples}). Check the files under {str(self.root)!r} (expected layout:\n"
            f"{self.layout}\n) and that OpenCV or PyAV can decode them."
        )

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: new random offsets, and a fresh ``skipped`` report."""
        self.epoch = int(epoch)
        self.skipped = SkipReport(epoch=self.epoch)

    def count_skips(self, batch_or_entries: dict[str, Any] | Iterable[str]) -> None:
        """Add skips reported by DataLoader workers (a batch from ``collate_clips``, or its
        ``"skipped"`` list) to ``self.skipped``. Reads in this process are counted already."""
        entries = (
            batch_or_entries.get(SKIPPED_KEY, ())
            if isinstance(batch_or_entries, dict)
            else batch_or_entries
        )
        for entry in entries:
            self.skipped.add(entry)

    def skip_summary(self) -> str:
        """The epoch's skip report as one line, for the log at the end of an epoch."""
        return self.skipped.summary(total=len(self))

    # ----- reading ----------------------------------------------------------------------

    def _item(self, position: int, record: ClipRecord, skipped: list[str]) -> dict[str, Any]:
        rng = sample_rng(self.seed, self.epoch, position) if self.random_offset else None

        def choose(available: int) -> list[int]:
            return choose_indices(available, self.num_frames, self.stride, rng)

        clip = read_record(record, choose)
        frames = frames_to_tensor(clip.frames, self.size)
        states = self._states.get(record.sample_id, list(record.states))
        return make_sample(
            frames,
            record.instruction,
            states,
            self.num_reference_frames,
            record.sample_id,
            clip_fps(clip.native_fps or record.fps, clip.indices),
            skipped=skipped,
        )

    def first_frame(self, index: int) -> Tensor:
        """The first frame of sample ``index``'s segment, as the model sees it: (3, H, W) in
        [−1, 1]. This is the frame the state prompter is shown (``export_first_frames``).
        Raises ``DecodeError`` when unreadable."""
        clip = read_record(self.records[index], lambda available: [0])
        return frames_to_tensor(clip.frames, self.size)[0]

    def describe(self) -> str:
        stride = "spread over the segment" if self.stride == UNIFORM else f"stride {self.stride}"
        return (
            f"{self.name}: {len(self):,} samples from {self.root}, {self.num_frames} frames "
            f"({stride}), {self.size[0]}×{self.size[1]}, K = {self.num_reference_frames}"
        )


def read_record(record: ClipRecord, choose) -> DecodedClip:
    """The chosen frames of one record, whatever its kind (raises ``DecodeError``)."""
    if record.kind == "video":
        return read_video_clip(record.source, choose, record.start, record.end)
    if record.kind == "frame_folder":
        frames = list_frame_files(record.source)
        if not frames:
            raise DecodeError(f"no image frames in {record.source}", reason="missing")
        return read_image_clip(frames[record.start : record.end], choose, record.fps)
    if record.kind == "numbered_frames":
        if record.end is None:
            raise ValueError(f"{record.sample_id}: numbered frames need an end")
        paths = [record.source / record.pattern.format(n) for n in range(record.start, record.end)]
        return read_image_clip(paths, choose, record.fps)
    raise ValueError(f"{record.sample_id}: unknown record kind {record.kind!r}")


_NUMBER = re.compile(r"(\d+)")


def natural_key(name: str) -> list:
    """Sort key that orders "im_2.jpg" before "im_10.jpg"."""
    return [int(part) if part.isdigit() else part.lower() for part in _NUMBER.split(name)]


def list_frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in natural order (missing folder: empty list)."""
    try:
        names = [
            entry.name
            for entry in folder.iterdir()
            if entry.suffix.lower() in IMAGE_SUFFIXES and entry.is_file()
        ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [folder / name for name in sorted(names, key=natural_key)]


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
