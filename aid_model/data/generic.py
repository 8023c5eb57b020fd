"""Your own data: videos or frame folders listed in a CSV or JSONL annotation file.

Columns (CSV header or JSONL keys):

    path         required. A video file or a folder of frame images, relative to the
                 annotation file's folder (or absolute).
    instruction  required. The text instruction; may be empty (a clip without one, e.g.
                 the synthetic world's random motion: the null text when training).
    start, end   optional frame indices, 0-based, end exclusive (Python slicing): the
                 segment the clip is sampled from. Empty: the whole video.
    states       optional. A JSON list, or in a CSV one string with states separated by "|".
    fps          optional. Frame rate of a frame folder (videos report their own).
    sample_id    optional (or ``id``). Otherwise the path without its suffix, plus
                 "@<start>-<end>" when a segment is given, plus "#<line>" if still repeated.
    split        optional. With this column, only rows whose split equals the dataset's
                 ``split`` are used.

The synthetic demo world writes this format.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath

from aid_model.data.records import (
    VIDEO_SUFFIXES,
    ClipRecord,
    EmptyDatasetError,
    RecordSet,
    normalize_text,
    not_text_error,
)

ANNOTATION_NAMES = ("annotations.csv", "annotations.jsonl", "metadata.csv", "metadata.jsonl")
DEFAULT_FPS = 7.0  # SVD's usual fps conditioning; used for frame folders without an fps

LAYOUT = """\
  <root>/annotations.csv   (or annotations.jsonl, metadata.csv, metadata.jsonl; or pass
                            the file itself as root)
      columns: path, instruction[, start, end, states, fps, sample_id, split]
  <root>/<path>            a video file (.mp4, .webm, .avi, …) or a folder of frame images"""


def find_annotation_file(root: Path) -> Path:
    if root.is_file():
        return root
    for name in ANNOTATION_NAMES:
        if (root / name).is_file():
            return root / name
    raise EmptyDatasetError(
        f"generic: no annotation file at {str(root)!r} (looked for {', '.join(ANNOTATION_NAMES)})."
        f" Expected layout:\n{LAYOUT}"
    )


def read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row dict) of a CSV (header line) or JSONL annotation file."""
    try:
        yield from _read_rows(path)
    except UnicodeDecodeError as error:
        raise not_text_error(path, error, "a CSV or JSONL annotation file") from None


def _read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    if path.suffix.lower() == ".jsonl":
        with path.open(encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path} line {number} is not JSON: {error}") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path} line {number}: expected a JSON object")
                yield number, row
        return
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        for required in ("path", "instruction"):
            if required not in reader.fieldnames:
                raise ValueError(
                    f"{path} lacks the column {required!r}; its header has "
                    f"{reader.fieldnames or 'nothing'}. The first line must name the columns: "
                    f"path,instruction[,start,end,states,fps,sample_id,split]"
                )
        for row in reader:
            yield reader.line_num, row


def parse_states(value: object) -> tuple[str, ...]:
    """A states cell: a list, a JSON list string, or a "|"-separated string."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            return tuple(normalize_text(part) for part in text.split("|") if part.strip())
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"states must be a list of strings or a '|'-separated string: {value!r}")
    return tuple(normalize_text(v) for v in value if v.strip())


def _optional_int(value: object, name: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a frame index, got {value!r}")
    number = float(value)
    if number != int(number) or number < 0:
        raise ValueError(f"{name} must be a non-negative integer frame index, got {value!r}")
    return int(number)


def read_generic(
    root: str | Path,
    split: str | None = None,
    *,
    annotations: str | Path | None = None,
    fps: float = DEFAULT_FPS,
) -> RecordSet:
    """Records from an annotation file of (path, instruction[, start, end, states, …]) rows;
    clips of T = 16 consecutive frames (stride 1), K = 1 unless the caller says otherwise.

    ``root``: the annotation file, or its folder (see ``ANNOTATION_NAMES``). Malformed
    rows raise at once, naming the file and line; rows whose video or folder is missing are
    left out (``dropped``). ``split``: None uses every row; a name keeps the rows of that
    split when the file has a ``split`` column; ``ClipDataset`` draws random temporal offsets
    unless it is one scored on ("validation", "val", "test", "all": ``EVALUATION_SPLITS``).
    ``fps``: the frame rate of frame folders whose row gives none.
    """
    root = Path(root)
    annotation_file = Path(annotations) if annotations is not None else find_annotation_file(root)
    if not annotation_file.is_file():
        raise FileNotFoundError(f"generic: annotation file {str(annotation_file)!r} not found")
    records, dropped, problems = [], [], []
    seen: set[str] = set()
    for line, row in read_rows(annotation_file):
        try:
            record = row_record(row, annotation_file.parent, float(fps), split)
        except (ValueError, TypeError, json.JSONDecodeError) as error:
            problems.append(f"line {line}: {error}")
            continue
        if record is None:
            continue
        if record.sample_id in seen:
            record = replace(record, sample_id=f"{record.sample_id}#{line}")
        seen.add(record.sample_id)
        if not record.source.exists():
            dropped.append((record.sample_id, "video missing"))
            continue
        records.append(record)
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(f"generic: {annotation_file} has bad rows: {shown}{more}")
    return RecordSet(
        name="generic",
        root=annotation_file,
        layout=LAYOUT,
        records=records,
        split=split,
        dropped=dropped,
        num_frames=16,
        stride=1,
        num_reference_frames=1,
    )


def row_record(row: dict, base: Path, default_fps: float, split: str | None) -> ClipRecord | None:
    """The record of one annotation row (paths relative to ``base``); None when the row
    belongs to another split. Raises ``ValueError`` for a malformed row."""
    row_split = str(row.get("split") or "").strip().lower()
    if split is not None and row_split and row_split != str(split).strip().lower():
        return None
    path_text = str(row.get("path") or "").strip()
    if not path_text:
        raise ValueError("empty path")
    if "instruction" not in row:
        raise ValueError("no 'instruction' (give an empty string for a clip without one)")
    instruction = normalize_text(row["instruction"] or "")
    start = _optional_int(row.get("start"), "start")
    end = _optional_int(row.get("end"), "end")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"end ({end}) must be greater than start ({start})")
    source = Path(path_text).expanduser()
    if not source.is_absolute():
        source = base / source
    fps_value = row.get("fps")
    fps = float(fps_value) if fps_value not in (None, "") else default_fps
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps_value!r}")
    explicit = str(row.get("sample_id") or row.get("id") or "").strip()
    if explicit:
        sample_id = explicit
    else:
        posix = PurePosixPath(path_text.replace("\\", "/"))
        sample_id = str(posix.with_suffix("")) if posix.suffix else str(posix)
        if start is not None or end is not None:
            sample_id += f"@{start or 0}-{'' if end is None else end}"
    is_video = source.suffix.lower() in VIDEO_SUFFIXES or source.is_file()
    return ClipRecord(
        sample_id,
        instruction,
        source,
        kind="video" if is_video else "frame_folder",
        start=start or 0,
        end=end,
        fps=fps,
        states=parse_states(row.get("states")),
    )
