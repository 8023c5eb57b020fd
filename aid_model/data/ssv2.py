"""Something-Something v2: webm videos and the published label JSON files.

Each entry of ``something-something-v2-{train,validation}.json`` looks like
``{"id": "74225", "label": "spinning cube that quickly stops spinning", "template":
"Spinning [something] that quickly stops spinning", "placeholders": ["cube"]}``. The
instruction is the template with its bracketed slots ("[something]", "[number of]", …)
filled in order from ``placeholders``: "Spinning cube that quickly stops spinning".
"""

from __future__ import annotations

import json
import re
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

LAYOUT = """\
  <root>/20bn-something-something-v2/<id>.webm    (also accepted: <root>/videos/<id>.webm, <root>/<id>.webm)
  <root>/labels/something-something-v2-train.json
  <root>/labels/something-something-v2-validation.json
      (the JSON files may also sit in <root> itself; or pass labels_json= and video_dir=)"""  # noqa: E501

_SLOT = re.compile(r"\[[^\]]*\]")


def fill_template(template: str, placeholders: list[str]) -> str:
    """The template with each "[…]" slot replaced, in order, by the next placeholder.

    Raises ``ValueError`` when the counts differ.
    """
    slots = _SLOT.findall(template)
    if len(slots) != len(placeholders):
        raise ValueError(
            f"template {template!r} has {len(slots)} slot(s) but {len(placeholders)} "
            f"placeholder(s) {placeholders!r}"
        )
    fillers = iter(placeholders)
    return _SLOT.sub(lambda _: str(next(fillers)), template)


def ssv2_instruction(entry: dict) -> str:
    """The instruction of one label entry: the filled template, or the ``label`` text when
    the entry's template and placeholders do not agree."""
    template, placeholders = entry.get("template"), entry.get("placeholders")
    if isinstance(template, str) and isinstance(placeholders, list):
        try:
            return normalize_text(fill_template(template, placeholders))
        except ValueError:
            pass
    label = entry.get("label")
    if isinstance(label, str) and label.strip():
        return normalize_text(label)
    raise ValueError(f"label entry {entry.get('id')!r} has no usable template or label")


def find_labels_json(root: Path, split: str) -> Path:
    names = [f"something-something-v2-{split}.json", f"{split}.json"]
    for folder in (root / "labels", root, root / "annotations"):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise EmptyDatasetError(
        f"ssv2: no label file for split {split!r} under {str(root)!r} (looked for "
        f"labels/something-something-v2-{split}.json and the same in the root). Expected layout:"
        f"\n{LAYOUT}"
    )


def find_video_dir(root: Path) -> Path:
    for folder in (root / "20bn-something-something-v2", root / "videos", root):
        if folder.is_dir() and any(folder.glob("*.webm")):
            return folder
    raise EmptyDatasetError(
        f"ssv2: no .webm videos under {str(root)!r}. Expected layout:\n{LAYOUT}"
    )


def read_ssv2(
    root: str | Path,
    split: str = "train",
    *,
    labels_json: str | Path | None = None,
    video_dir: str | Path | None = None,
) -> RecordSet:
    """Something-Something v2 records; clips of T = 12 frames spread over each video, K = 2.

    Sample id ``ssv2/<id>``. ``split`` "train" or "validation"; for the paper's evaluation
    use split "validation" with ``max_samples=2048`` (the first 2,048 entries of the file).
    Videos missing from the video folder are left out (``dropped``).
    """
    root = Path(root)
    split = split_name(split, SPLITS)
    labels_path = Path(labels_json) if labels_json is not None else find_labels_json(root, split)
    videos = Path(video_dir) if video_dir is not None else find_video_dir(root)
    try:
        entries = json.loads(labels_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"ssv2: cannot read label file {labels_path}: {error}") from None
    except UnicodeDecodeError as error:
        raise not_text_error(labels_path, error, "the SSv2 label JSON") from None
    if not isinstance(entries, list):
        raise ValueError(
            f"ssv2: {labels_path} should hold a JSON list of {{id, template, placeholders}} "
            f"entries, found {type(entries).__name__}"
        )
    present = {path.stem for path in videos.glob("*.webm")}
    records, dropped = [], []
    for entry in entries:
        video_id = str(entry.get("id", "")) if isinstance(entry, dict) else ""
        if not video_id:
            dropped.append((repr(entry)[:60], "entry without id"))
            continue
        sample_id = f"ssv2/{video_id}"
        if video_id not in present:
            dropped.append((sample_id, "video missing"))
            continue
        try:
            instruction = ssv2_instruction(entry)
        except ValueError:
            dropped.append((sample_id, "no instruction"))
            continue
        records.append(ClipRecord(sample_id, instruction, videos / f"{video_id}.webm"))
    return RecordSet(
        name="ssv2",
        root=root,
        layout=LAYOUT,
        records=records,
        split=split,
        dropped=dropped,
        num_frames=12,
        stride="uniform",
        num_reference_frames=2,
    )
