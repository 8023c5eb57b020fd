"""Epic-Kitchens-100: the action-segment narrations, read from the videos or the RGB frames.

``EPIC_100_train.csv`` / ``EPIC_100_validation.csv`` (github.com/epic-kitchens/
epic-kitchens-100-annotations) have one row per action segment with the columns
narration_id, participant_id, video_id, narration_timestamp, start_timestamp,
stop_timestamp, start_frame, stop_frame, narration, verb, verb_class, noun, noun_class,
all_nouns, all_noun_classes. ``start_frame``/``stop_frame`` count from 1 and include the
stop frame, numbering the published RGB frames ``frame_0000000001.jpg`` onwards; in the
video file, frame n of the CSV is decoded frame n − 1. The instruction is the narration
("open the fridge").
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from aid_model.data.records import (
    ClipRecord,
    EmptyDatasetError,
    RecordSet,
    normalize_text,
    not_text_error,
    split_name,
)

SPLITS = ("train", "validation")
FRAME_PATTERN = "frame_{:010d}.jpg"
REQUIRED_COLUMNS = (
    "narration_id",
    "participant_id",
    "video_id",
    "start_frame",
    "stop_frame",
    "narration",
)

LAYOUT = """\
  <root>/EPIC_100_train.csv, <root>/EPIC_100_validation.csv
      (also found in <root>/epic-kitchens-100-annotations/; or pass annotations=)
  <root>/<participant>/videos/<video_id>.MP4                    (e.g. P01/videos/P01_01.MP4)
    or <root>/<participant>/rgb_frames/<video_id>/frame_0000000001.jpg, …
      (<root> may also hold these under EPIC-KITCHENS/)"""


def rgb_frames_fps(video_id: str) -> float:
    """Frame rate of the published RGB frames: 50 for the EPIC-KITCHENS-100 extension
    videos (PXX_1YY), 60 for the EPIC-KITCHENS-55 ones (PXX_YY)."""
    number = video_id.rsplit("_", 1)[-1]
    return 50.0 if len(number) == 3 else 60.0


def find_annotations(root: Path, split: str) -> Path:
    names = {
        "train": ["EPIC_100_train.csv"],
        "validation": ["EPIC_100_validation.csv", "EPIC_100_val.csv"],
    }[split]
    for folder in (root, root / "epic-kitchens-100-annotations", root / "annotations"):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise EmptyDatasetError(
        f"epic100: no {names[0]} under {str(root)!r}. Expected layout:\n{LAYOUT}"
    )


def find_source(root: Path, participant: str, video_id: str) -> tuple[str, Path] | None:
    """("video", file) or ("numbered_frames", folder) for one video; None when absent."""
    for base in (root, root / "EPIC-KITCHENS"):
        for suffix in (".MP4", ".mp4"):
            video = base / participant / "videos" / f"{video_id}{suffix}"
            if video.is_file():
                return "video", video
        frames = base / participant / "rgb_frames" / video_id
        if frames.is_dir():
            return "numbered_frames", frames
    return None


def read_epic100(
    root: str | Path,
    split: str = "train",
    *,
    annotations: str | Path | None = None,
) -> RecordSet:
    """Epic-Kitchens-100 records; clips of T = 12 frames spread over each action segment, K = 1.

    Sample id ``epic100/<narration_id>`` (e.g. ``epic100/P01_01_0``). Split "train" or
    "validation" (the published validation CSV). Videos are preferred over RGB frames
    when both exist; segments whose video is absent are left out (``dropped``).
    """
    root = Path(root)
    split = split_name(split, SPLITS)
    csv_path = Path(annotations) if annotations is not None else find_annotations(root, split)
    try:
        file = io.StringIO(csv_path.read_text(encoding="utf-8-sig"), newline="")
    except OSError as error:
        raise ValueError(f"epic100: cannot read {csv_path}: {error}") from None
    except UnicodeDecodeError as error:
        raise not_text_error(csv_path, error, "the EPIC_100 annotation CSV") from None
    sources: dict[str, tuple[str, Path] | None] = {}
    records, dropped = [], []
    with file:
        reader = csv.DictReader(file)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"epic100: {csv_path} lacks column(s) {', '.join(missing)}; expected the "
                f"published EPIC_100 CSV with {', '.join(REQUIRED_COLUMNS)}"
            )
        for row in reader:
            sample_id = f"epic100/{row['narration_id']}"
            video_id, participant = row["video_id"], row["participant_id"]
            try:
                start, stop = int(row["start_frame"]), int(row["stop_frame"])
            except ValueError:
                dropped.append((sample_id, "bad start/stop frame"))
                continue
            if start < 1 or stop < start:
                dropped.append((sample_id, "bad start/stop frame"))
                continue
            if video_id not in sources:
                sources[video_id] = find_source(root, participant, video_id)
            source = sources[video_id]
            if source is None:
                dropped.append((sample_id, "video missing"))
                continue
            kind, path = source
            instruction = normalize_text(row["narration"])
            if kind == "video":
                # CSV frame n is decoded frame n − 1; the stop frame is included.
                records.append(ClipRecord(sample_id, instruction, path, start=start - 1, end=stop))
            else:
                records.append(
                    ClipRecord(
                        sample_id,
                        instruction,
                        path,
                        kind="numbered_frames",
                        start=start,
                        end=stop + 1,
                        fps=rgb_frames_fps(video_id),
                        pattern=FRAME_PATTERN,
                    )
                )
    return RecordSet(
        name="epic100",
        root=root,
        layout=LAYOUT,
        records=records,
        split=split,
        dropped=dropped,
        num_frames=12,
        stride="uniform",
        num_reference_frames=1,
    )
