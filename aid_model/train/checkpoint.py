"""Checkpoint folders, written atomically, the last N kept.

    <output_dir>/checkpoints/step_00001000/
        aid.safetensors        the trained weights (``save_aid_weights``: loads for prediction)
        aid_ema.safetensors    the EMA weights, same format (when EMA is on)
        training_state.pt      optimizer, scheduler, grad scaler, EMA, RNG, step, data position

A folder is written under a temporary name (``.step_00001000.tmp-PID``), every file synced,
then renamed: a crash leaves either the complete folder or none (temporaries are ignored
and removed by the next run).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from aid_model.atomic import atomic_write_file, fsync_path  # noqa: F401 (atomic_write_file: its old home)

STATE_FILE = "training_state.pt"
WEIGHTS_FILE = "aid.safetensors"
EMA_WEIGHTS_FILE = "aid_ema.safetensors"
_NAME = re.compile(r"^step_(\d{8,})$")
_TEMPORARY = re.compile(r"^\.step_\d{8,}\.(tmp|old)-\d+$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def write_checkpoint(root: str | Path, step: int, write: Callable[[Path], None]) -> Path:
    """Calls ``write(folder)`` on a temporary folder, then renames it ``step_NNNNNNNN``.

    An existing folder of the same step is replaced (after the new one is complete).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    temporary = root / f".{final.name}.tmp-{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    try:
        write(temporary)
        for path in temporary.iterdir():
            fsync_path(path)
        fsync_path(temporary)
        if final.exists():
            old = root / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(temporary, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, final)
        fsync_path(root)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoint folders under ``root``, oldest first, as (step, path)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    checkpoints = list_checkpoints(root)
    return checkpoints[-1][1] if checkpoints else None


def prune_checkpoints(root: str | Path, keep_last: int) -> list[Path]:
    """Deletes all but the newest ``keep_last`` checkpoint folders; returns the deleted."""
    checkpoints = list_checkpoints(root)
    doomed = [path for _, path in checkpoints[: max(0, len(checkpoints) - keep_last)]]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def remove_temporaries(root: str | Path) -> list[Path]:
    """Deletes folders a crashed save left behind (``.step_*.tmp-PID``, ``.old-PID``)."""
    root = Path(root)
    if not root.is_dir():
        return []
    removed = [p for p in root.iterdir() if _TEMPORARY.match(p.name)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def resolve_resume(resume: str, checkpoints_root: str | Path) -> Path | None:
    """The checkpoint folder ``--resume`` names.

    ``auto``: the newest under ``checkpoints_root`` (None when there is none: a fresh
    start). A path: a checkpoint folder, its ``training_state.pt``, or a run's output folder
    or checkpoints folder (then its newest checkpoint).
    """
    if resume == "auto":
        return latest_checkpoint(checkpoints_root)
    path = Path(resume)
    if path.is_file() and path.name == STATE_FILE:
        return path.parent
    if path.is_dir() and (path / STATE_FILE).is_file():
        return path
    if path.is_dir():
        for root in (path, path / "checkpoints"):
            found = latest_checkpoint(root)
            if found is not None:
                return found
    raise FileNotFoundError(
        f"--resume {resume}: no checkpoint there (expected a step_NNNNNNNN folder with "
        f"{STATE_FILE}, a run's output folder, or 'auto')"
    )
