"""``ClipDataset``: the one map-style dataset, reading T-frame clips from a ``RecordSet``.

A dataset reader (``aid_model.data.ssv2.read_ssv2``, …) only finds the records (one per
sample: where the frames are, which segment, the instruction, the sample id); reading,
sampling, resizing, skipping and the state join live here once. Items follow the contract
of ``aid_model.data.sample``.

    dataset = ClipDataset(read_ssv2("data/ssv2", "validation"), size=256, max_samples=2048)

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

import csv
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
from aid_model.data.records import (
    IMAGE_SUFFIXES,
    ClipRecord,
    EmptyDatasetError,
    RecordSet,
    normalize_text,
)
from aid_model.data.sample import SKIPPED_KEY, make_sample
from aid_model.data.states import FIRST_FRAMES_CSV, join_states, state_image_name

logger = logging.getLogger(__name__)

# After this many unreadable records in a row, the data (or the decoder) is broken as a
# whole; going on would scan the entire dataset for nothing.
MAX_CONSECUTIVE_FAILURES = 64


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
    """Clips of T frames from the records a reader found; see the module docstring for the
    rules.

    Args:
        found: the reader's ``RecordSet`` (records in the dataset's canonical order, its
            name, root, layout, split, dropped records and clip defaults).
        num_frames: T (None: the dataset's default, ``found.num_frames``).
        stride: a positive int or "uniform" (see ``aid_model.data.clips``; None:
            ``found.stride``).
        size: output height and width (int or (h, w)), multiples of 8.
        num_reference_frames: K, 1 ≤ K < T (None: ``found.num_reference_frames``).
        random_offset: draw the window's start at random (training); else it starts at the
            segment's first frame. Only matters for an integer stride. None: on unless
            ``found.split`` is one that is evaluated on (``EVALUATION_SPLITS``).
        seed: the seed of the per-item generators.
        states_jsonl: a state cache (``python -m aid_model states --out``) joined by sample id
            (``aid_model.data.states``); None: every item has ``states == []`` unless its
            record carries states.
        max_samples: keep at most this many records (the first N, or a random N with
            ``subset_seed``).
        subset_seed: with ``max_samples``, a seeded random subset instead of the first N.

    The reader's name, root, layout, split and dropped records are kept as ``self.name``,
    ``self.root``, ``self.layout``, ``self.split`` and ``self.dropped`` (logged once).
    """

    def __init__(
        self,
        found: RecordSet,
        *,
        num_frames: int | None = None,
        stride: int | str | None = None,
        size: int | Sequence[int] = 256,
        num_reference_frames: int | None = None,
        random_offset: bool | None = None,
        seed: int = 0,
        states_jsonl: str | Path | None = None,
        max_samples: int | None = None,
        subset_seed: int | None = None,
    ) -> None:
        self.name = name = found.name
        self.root = Path(found.root)
        self.layout = found.layout
        num_frames = found.num_frames if num_frames is None else num_frames
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 2:
            raise ValueError(f"num_frames must be an integer ≥ 2, got {num_frames!r}")
        self.num_frames = num_frames
        self.stride = parse_stride(found.stride if stride is None else stride)
        self.size = parse_size(tuple(size) if isinstance(size, list) else size)
        if num_reference_frames is None:
            num_reference_frames = found.num_reference_frames
        if not isinstance(num_reference_frames, int) or not 1 <= num_reference_frames < num_frames:
            raise ValueError(
                f"num_reference_frames must be an integer in [1, num_frames − 1] = "
                f"[1, {num_frames - 1}], got {num_reference_frames!r}"
            )
        self.num_reference_frames = num_reference_frames
        self.split = found.split
        self.random_offset = (
            self.split not in EVALUATION_SPLITS if random_offset is None else bool(random_offset)
        )
        self.seed = int(seed)
        self.epoch = 0
        self.dropped = list(found.dropped)
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
        records = list(found.records)
        if max_samples is not None:
            if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
                raise ValueError(f"max_samples must be a positive integer, got {max_samples!r}")
            if subset_seed is not None and max_samples < len(records):
                order = np.random.default_rng(subset_seed).permutation(len(records))[:max_samples]
                records = [records[i] for i in sorted(order)]
            records = records[:max_samples]
        if not records:
            found_text = (
                f" ({len(self.dropped)} found but unusable, e.g. {self.dropped[0]})"
                if self.dropped
                else ""
            )
            raise EmptyDatasetError(
                f"{name}: no samples found under {str(self.root)!r}{found_text}. Expected "
                f"layout:\n{self.layout}"
            )
        self.records = records
        self.skipped = SkipReport(epoch=0)
        self._bad: dict[int, str] = {}  # record index → "reason: detail", in this process
        self.states_jsonl = Path(states_jsonl) if states_jsonl is not None else None
        self._states: dict[str, list[str]] = {}
        if self.states_jsonl is not None:
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


@dataclass
class ExportResult:
    """What ``export_first_frames`` did: the CSV for the state annotation and the counts."""

    csv_path: Path
    written: int = 0
    reused: int = 0
    skipped: list[str] = field(default_factory=list)  # "sample_id: reason"


def export_first_frames(
    dataset: ClipDataset,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> ExportResult:
    """Each sample's first frame as ``out_dir/<sample_id>.png`` plus ``out_dir/first_frames.csv``
    (columns image, instruction, sample_id) for ``python -m aid_model states --dataset``; the
    state cache it makes joins back by sample id (``aid_model.data.states``).

    The frame is the first of the sample's segment, resized and cropped as the model sees
    it. Existing PNGs are kept (a rerun continues) unless ``overwrite``. Unreadable samples
    and samples without an instruction are left out of the CSV and listed in the result.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from aid_model.atomic import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult(csv_path=out_dir / FIRST_FRAMES_CSV)
    rows: list[tuple[str, str, str]] = []
    for index in tqdm(range(len(dataset)), desc="first frames", disable=not progress):
        record = dataset.records[index]
        if not record.instruction:
            result.skipped.append(f"{record.sample_id}: no instruction")
            continue
        name = state_image_name(record.sample_id)
        target = out_dir / name
        if target.is_file() and not overwrite:
            result.reused += 1
        else:
            try:
                frame = dataset.first_frame(index)
            except DecodeError as error:
                result.skipped.append(f"{record.sample_id}: {error.reason}: {error}")
                continue
            image = ((frame.permute(1, 2, 0).numpy() + 1.0) * 127.5).round().clip(0, 255)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as temporary:
                Image.fromarray(image.astype(np.uint8)).save(temporary)
            result.written += 1
        rows.append((name, normalize_text(record.instruction), record.sample_id))
    # Written last and whole, so an interrupted export never leaves a half CSV behind.
    partial = result.csv_path.with_suffix(".csv.partial")
    with partial.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["image", "instruction", "sample_id"])
        writer.writerows(rows)
    partial.replace(result.csv_path)
    return result
