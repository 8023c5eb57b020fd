"""Checkpoint folders, written atomically, the last N kept.

    <output_dir>/checkpoints/step_00001000/
        aid.safetensors        the trained weights (``save_aid_weights``: loads for prediction)
        aid_ema.safetensors    the EMA weights, same format (when EMA is on)
        training_state.pt      optimizer, scheduler, grad scaler, EMA, RNG, step, data position

A folder is written under a temporary name (``.step_00001000.tmp-PID``), every file synced,
then renamed: a crash leaves either the complete folder or none (temporaries are ignored
and removed by the next run). A folder damaged afterwards (a disk filled up, a partial
copy) is found when resuming, and the previous checkpoint is used instead, saying so.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from aid_model.atomic import atomic_write_file, fsync_path  # noqa: F401 (atomic_write_file: its old home)

STATE_FILE = "training_state.pt"
WEIGHTS_FILE = "aid.safetensors"
EMA_WEIGHTS_FILE = "aid_ema.safetensors"
_NAME = re.compile(r"^step_(\d{8,})$")
_TEMPORARY = re.compile(r"^\.step_\d{8,}\.(tmp|old)-\d+$")


class CheckpointStateError(ValueError):
    """A checkpoint folder whose files cannot be read; the message names the file."""


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


def read_training_state(folder: str | Path) -> dict[str, Any]:
    """The folder's ``training_state.pt`` (weights_only), after checking that its weight
    files are complete; CheckpointStateError naming the file when one is damaged."""
    from aid_model.safetensors_io import CheckpointError, check_safetensors_file

    folder = Path(folder)
    for name in (WEIGHTS_FILE, EMA_WEIGHTS_FILE):
        if name == WEIGHTS_FILE or (folder / name).exists():
            try:
                check_safetensors_file(folder / name)
            except CheckpointError as error:
                raise CheckpointStateError(str(error)) from None
    path = folder / STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointStateError(
            f"{path} cannot be read ({reason}): it is truncated or damaged") from None
    if not isinstance(state, dict):
        raise CheckpointStateError(f"{path} holds a {type(state).__name__}, not a training state")
    return state


def read_resume_state(resume: str, checkpoints_root: str | Path,
                      say: Callable[[str], None] = print) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint ``--resume`` names and its training state; None for a fresh start.

    For ``auto`` or a run's folder, a newest checkpoint that cannot be read is skipped for
    the one before it, saying so; a checkpoint folder named explicitly is read or refused.
    """
    folder = resolve_resume(resume, checkpoints_root)
    if folder is None:
        return None
    named = Path(resume)
    explicit = resume != "auto" and (named == folder or named == folder / STATE_FILE)
    candidates = [folder]
    if not explicit:
        candidates = [path for _, path in reversed(list_checkpoints(folder.parent))
                      if path.name <= folder.name]
    for index, candidate in enumerate(candidates):
        try:
            return candidate, read_training_state(candidate)
        except CheckpointStateError as error:
            if index + 1 == len(candidates):
                older = [p.name for _, p in list_checkpoints(folder.parent)
                         if p.name < candidate.name]
                hint = f"; resume from an older one ({older[-1]})" if older and explicit else ""
                raise CheckpointStateError(f"{error}{hint}") from None
            say(f"warning: {error}; falling back to the previous checkpoint "
                f"{candidates[index + 1]}")
    return None
