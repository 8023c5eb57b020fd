"""BridgeData (v1 and v2) in its published raw layout: trajectory folders of JPEG frames.

The raw release (rail.eecs.berkeley.edu/datasets/bridge_release/raw/) nests every
trajectory as ``<scene>/<task>/<NN>/<date>/raw/traj_group<G>/traj<N>/``, with one folder
per camera (``images0`` … ``images4``, frames ``im_0.jpg``, ``im_1.jpg``, …) and the
language annotation in ``lang.txt`` (the instruction on the first line; later lines such
as "confidence: 1" are metadata). Trajectories without ``lang.txt`` carry no instruction
and are left out.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from aid_model.data.records import ClipRecord, RecordSet, normalize_text, split_name

SPLITS = ("train", "validation")
FPS = 5.0  # BridgeData is recorded at 5 Hz

LAYOUT = """\
  <root>/…/<date>/raw/traj_group<G>/traj<N>/images0/im_0.jpg, im_1.jpg, …
  <root>/…/<date>/raw/traj_group<G>/traj<N>/lang.txt    (instruction on the first line)
      (<root> may be any folder above the trajectories, e.g. raw/bridge_data_v2)"""

_TRAJ = re.compile(r"traj\d+")
_GROUP = re.compile(r"traj_group\d+")


def read_instruction(lang_file: Path) -> str | None:
    """The first line of ``lang.txt`` that is not metadata ("confidence: …"); None if none."""
    try:
        lines = lang_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        text = normalize_text(line)
        if text and not re.match(r"^confidence\s*:", text, re.IGNORECASE):
            return text
    return None


def in_train_split(split_key: str, train_fraction: float) -> bool:
    """Deterministic split by trajectory: a hash of the trajectory's path, so the split of
    a trajectory never depends on which others are present or on the file system's order."""
    digest = hashlib.sha256(split_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < train_fraction


def find_trajectories(root: Path) -> list[Path]:
    """Every ``traj<N>`` folder inside a ``traj_group<G>`` folder under ``root``, sorted."""
    found = []
    for folder, subfolders, _ in os.walk(root, followlinks=True):
        here = Path(folder)
        if _TRAJ.fullmatch(here.name) and _GROUP.fullmatch(here.parent.name):
            found.append(here)
            subfolders.clear()  # nothing to find inside a trajectory
            continue
        subfolders.sort()
    return sorted(found)


def read_bridge(
    root: str | Path,
    split: str = "train",
    *,
    camera: int = 0,
    train_fraction: float = 0.8,
    fps: float = FPS,
) -> RecordSet:
    """BridgeData records; clips of T = 16 frames spread over each trajectory, K = 1, at 5 fps.

    Sample id ``bridge/<trajectory path relative to root>``. Split: 80 % train / 20 %
    validation by a hash of the trajectory's last four path parts
    (``<date>/raw/traj_group<G>/traj<N>``), so it does not depend on the root chosen.
    ``camera`` picks the image folder (``images0`` is the fixed over-the-shoulder view).
    """
    root = Path(root)
    split = split_name(split, SPLITS)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    records, dropped = [], []
    for trajectory in find_trajectories(root):
        relative = trajectory.relative_to(root).as_posix()
        split_key = "/".join(trajectory.parts[-4:])
        if in_train_split(split_key, train_fraction) != (split == "train"):
            continue
        sample_id = f"bridge/{relative}"
        instruction = read_instruction(trajectory / "lang.txt")
        if instruction is None:
            dropped.append((sample_id, "no lang.txt instruction"))
            continue
        frames = trajectory / f"images{camera}"
        if not frames.is_dir():
            dropped.append((sample_id, f"no images{camera} folder"))
            continue
        records.append(
            ClipRecord(sample_id, instruction, frames, kind="frame_folder", fps=float(fps))
        )
    return RecordSet(
        name="bridge",
        root=root,
        layout=LAYOUT,
        records=records,
        split=split,
        dropped=dropped,
        num_frames=16,
        stride="uniform",
        num_reference_frames=1,
    )
