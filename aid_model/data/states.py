"""Cached future-state texts joined to dataset samples by sample id.

The state cache (``aid_model.states``, written by ``python -m aid_model states --dataset
CSV --out FILE.jsonl``) keys its rows by image content, not by sample. The join uses the
row's ``source``: the image path as written in the CSV the annotation ran on.
``export_first_frames`` writes that CSV with one first frame per sample, named
``<sample_id>.png``, so every row's ``source`` reads back as its sample id:

    source "ssv2/74225.png"  →  sample id "ssv2/74225"

A row may also carry an explicit ``"sample_id"`` field, which wins over ``source``. A row
joins a sample only when its instruction equals the sample's (whitespace-normalised), so
a cache made for other instructions is not used silently. When one sample id has several
rows (other models, other S), the last one in the file wins.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from aid_model.data.base import IMAGE_SUFFIXES, ClipRecord, normalize_text

if TYPE_CHECKING:
    from aid_model.data.base import ClipDataset

logger = logging.getLogger(__name__)

FIRST_FRAMES_CSV = "first_frames.csv"
# Characters that some file systems refuse in names; a sample id becomes a file name.
_UNSAFE = re.compile(r'[<>:"|?*\x00-\x1f]')


@dataclass(frozen=True)
class StateText:
    instruction: str
    states: list[str]


def state_image_name(sample_id: str) -> str:
    """The first-frame file name (relative) for ``sample_id``: ``<sample_id>.png``."""
    parts = PurePosixPath(sample_id).parts
    if not sample_id or _UNSAFE.search(sample_id) or ".." in parts or sample_id.startswith("/"):
        raise ValueError(
            f"sample id {sample_id!r} cannot be a relative file name (no '..', no leading '/', "
            f'none of <>:"|?*); give the rows plain ids'
        )
    return f"{sample_id}.png"


def sample_id_of_row(row: dict) -> str | None:
    """The sample id a cache row belongs to: its ``sample_id`` field, else its ``source``
    with the image suffix dropped ("ssv2/74225.png" → "ssv2/74225"); None when neither."""
    explicit = row.get("sample_id")
    if isinstance(explicit, str) and explicit.strip():
        return explicit.strip()
    source = row.get("source")
    if not isinstance(source, str) or not source.strip():
        return None
    text = source.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    path = PurePosixPath(text)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        text = str(path.with_suffix(""))
    return text


def read_state_texts(path: str | Path) -> dict[str, StateText]:
    """Sample id → (instruction, states) for every usable row of a state cache JSONL.

    Rows are validated as ``aid_model.states.CachedStates`` rows; unreadable lines (a torn
    last line) are skipped with a warning, as the cache itself does.
    """
    from aid_model.states.cache import CachedStates

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"state cache {str(path)!r} does not exist; make it with `python -m aid_model states "
            f"--model DIR --dataset {FIRST_FRAMES_CSV} --out {path.name}` (docs/datasets.md)"
        )
    texts: dict[str, StateText] = {}
    bad = 0
    with path.open(encoding="utf-8", errors="replace") as file:
        for line in file:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                cached = CachedStates.from_dict(row)
            except (ValueError, AttributeError, TypeError):
                bad += 1
                continue
            sample_id = sample_id_of_row(row)
            if sample_id is None:
                bad += 1
                continue
            texts[sample_id] = StateText(normalize_text(cached.instruction), list(cached.states))
    if bad:
        logger.warning("%s: %d line(s) are not state rows with a source, ignored", path, bad)
    return texts


def join_states(
    records: Sequence[ClipRecord], path: str | Path, name: str = "dataset"
) -> dict[str, list[str]]:
    """Sample id → states for the records that have a matching row in the cache at ``path``.

    Logs how many records have none. Raises ``ValueError`` when the file matches no record
    at all: the rows were made for other samples or named differently.
    """
    texts = read_state_texts(path)
    joined: dict[str, list[str]] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    # A clip without an instruction has no states to predict (and is never exported).
    records = [record for record in records if record.instruction]
    for record in records:
        text = texts.get(record.sample_id)
        if text is None:
            missing.append(record.sample_id)
        elif text.instruction != normalize_text(record.instruction):
            mismatched.append(record.sample_id)
        else:
            joined[record.sample_id] = text.states
    if records and not joined:
        example = next(iter(texts), None)
        raise ValueError(
            f"{name}: the state cache {str(path)!r} ({len(texts)} rows) matches none of the "
            f"{len(records)} samples (first sample id {records[0].sample_id!r}, first row's id "
            f"{example!r}; {len(mismatched)} ids matched with another instruction). Rows join "
            f"by sample id: annotate the CSV written by export_first_frames (docs/datasets.md)"
        )
    if missing or mismatched:
        logger.warning(
            "%s: %d of %d samples have no states in %s (%d without a row, %d with another "
            "instruction, e.g. %s); they get states = []",
            name,
            len(missing) + len(mismatched),
            len(records),
            path,
            len(missing),
            len(mismatched),
            (missing + mismatched)[0],
        )
    return joined


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
    (columns image, instruction, sample_id) for ``python -m aid_model states --dataset``.

    The frame is the first of the sample's segment, resized and cropped as the model sees
    it. Existing PNGs are kept (a rerun continues) unless ``overwrite``. Unreadable samples
    and samples without an instruction are left out of the CSV and listed in the result.
    """
    import numpy as np
    from PIL import Image
    from tqdm.auto import tqdm

    from aid_model.atomic import atomic_path
    from aid_model.data.decode import DecodeError

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
