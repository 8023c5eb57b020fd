"""``report.json`` and ``samples.png``: what an evaluation leaves for people to read."""

from __future__ import annotations

import datetime
import json
import math
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from aid_model.evaluate.shards import ShardRows
from aid_model.train.checkpoint import atomic_write_file

REPORT_FILE = "report.json"
SAMPLES_FILE = "samples.png"
# Frames smaller than this are enlarged (nearest neighbour) in the contact sheet, so
# that test-sized 16 px clips stay visible.
_MIN_SHEET_SIZE = 64


def versions() -> dict[str, Any]:
    """Versions of what produced the numbers: Python, torch, the libraries, this code."""
    import aid_model

    found: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                             "aid_model": aid_model.__version__, "git_commit": _git_commit()}
    for name, distributions in (("diffusers", ["diffusers"]), ("transformers", ["transformers"]),
                                ("numpy", ["numpy"]), ("safetensors", ["safetensors"]),
                                ("opencv", ["opencv-python", "opencv-python-headless",
                                            "opencv-contrib-python"]),
                                ("av", ["av"])):
        found[name] = _distribution_version(distributions)
    found["cuda"] = torch.version.cuda
    return found


def _distribution_version(names: list[str]) -> str | None:
    """The version of the first installed distribution of ``names`` (None: none is)."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _git_commit() -> str | None:
    """The commit of the checkout this code runs from, when it is one (else None)."""
    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such floats become None (strings say why elsewhere)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def write_report(path: Path, report: dict[str, Any]) -> Path:
    """Writes the report as indented JSON, atomically."""
    report = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), **report}
    text = json.dumps(_finite(report), indent=2, ensure_ascii=False) + "\n"
    return atomic_write_file(path, lambda target: target.write_text(text, encoding="utf-8"))


def skipped_summary(rows: ShardRows, examples: int = 5) -> dict[str, Any]:
    """Unreadable records met while reading the N samples (each replaced by the next
    readable one, so those clips appear twice), with a few examples."""
    unique = list(dict.fromkeys(rows.skipped))
    return {"count": len(unique), "examples": unique[:examples]}


def write_samples_sheet(rows: ShardRows, path: Path) -> Path | None:
    """A contact sheet of the preview samples: per sample a row of the ground truth, then a
    row of the prediction, frames left to right (the K given frames first, equal in both).
    None when no preview was kept."""
    from aid_model.video_io import write_contact_sheet

    if rows.preview_indices is None or rows.preview_indices.numel() == 0:
        return None
    sheet_rows, labels = [], []
    for index, real, generated in zip(rows.preview_indices.tolist(), rows.preview_real,
                                      rows.preview_generated, strict=True):
        sheet_rows += [_enlarged(real), _enlarged(generated)]
        labels += [f"sample {index}: ground truth", f"sample {index}: prediction"]
    return write_contact_sheet(sheet_rows, path, gap=2, labels=labels)


def _enlarged(video: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) → float (T, H', W', 3) in [0, 1], enlarged by a whole factor when
    smaller than ``_MIN_SHEET_SIZE``."""
    factor = max(1, math.ceil(_MIN_SHEET_SIZE / min(video.shape[1], video.shape[2])))
    video = video.float() / 255.0
    if factor > 1:
        video = video.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)
    return video
