"""Writing synthetic clips to disk in the generic dataset format, with a preview.

Layout of ``out``:

    annotations.jsonl    one row per clip: {"path", "instruction", "states", "fps", "sample_id"}
    world.jsonl          ground truth per clip: seed, objects, trajectory, command (and
                         the palette, for clips of the varied world)
    clips/<sample_id>/frame_000.png … frame_{T−1}.png    lossless RGB frames
    contact_sheet.png    the first clips, one row each, frames left to right

``path`` is relative to ``out``. Random-motion clips have an empty instruction and no
states.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from aid_model.atomic import atomic_path
from aid_model.synthetic.clip import SyntheticClip
from aid_model.synthetic.dataset import FPS

# The name the generic loader (aid_model.data.generic) finds in a dataset folder by itself.
MANIFEST = "annotations.jsonl"
GROUND_TRUTH = "world.jsonl"
CONTACT_SHEET = "contact_sheet.png"
CLIPS_FOLDER = "clips"
FRAME_NAME = "frame_{index:03d}.png"


def write_clip_frames(clip: SyntheticClip, folder: Path) -> None:
    """The clip's frames as ``frame_000.png`` … in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(clip.frames):
        with atomic_path(folder / FRAME_NAME.format(index=index)) as temporary:
            Image.fromarray(frame).save(temporary, format="PNG")


def write_dataset(
    out: str | Path,
    clips: Iterable[SyntheticClip],
    *,
    fps: float = FPS,
    preview_clips: int = 8,
) -> Path:
    """Write ``clips`` under ``out`` (see the module docstring); returns the JSONL manifest.

    Files are written clip by clip, so a long run keeps what it has written when stopped;
    the manifests are complete only when it returns. ``preview_clips``: rows of the
    contact sheet (0: no sheet).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preview: list[SyntheticClip] = []
    with (
        atomic_path(out / MANIFEST) as manifest_path,
        atomic_path(out / GROUND_TRUTH) as truth_path,
        manifest_path.open("w", encoding="utf-8") as manifest,
        truth_path.open("w", encoding="utf-8") as truth,
    ):
        for clip in clips:
            relative = f"{CLIPS_FOLDER}/{clip.sample_id}"
            write_clip_frames(clip, out / relative)
            manifest.write(json.dumps(annotation(clip, relative, fps)) + "\n")
            truth.write(json.dumps({"path": relative, **ground_truth(clip)}) + "\n")
            if len(preview) < preview_clips:
                preview.append(clip)
    if preview:
        write_preview(preview, out / CONTACT_SHEET)
    return out / MANIFEST


def annotation(clip: SyntheticClip, path: str, fps: float = FPS) -> dict:
    """The clip's row in the generic format: what a generic-format reader needs to rebuild
    ``clip_to_sample(clip)`` from the frames at ``path``."""
    return {
        "path": path,
        "instruction": clip.instruction,
        "states": list(clip.states),
        "fps": float(fps),
        "sample_id": clip.sample_id,
    }


def ground_truth(clip: SyntheticClip) -> dict:
    """What generated the clip, as JSON-ready values (positions are box centres in px)."""
    truth = {
        "seed": clip.seed,
        "random_motion": clip.random_motion,
        "objects": [{"colour": o.colour, "shape": o.shape, "size": o.size} for o in clip.objects],
        "trajectory": np.round(clip.trajectory, 4).tolist(),
        "target": clip.target,
        "direction": clip.command.direction if clip.command else None,
        "travel": clip.travel,
    }
    if clip.palette.kind == "varied":
        truth["palette"] = clip.palette.as_json()
    return truth


def write_preview(clips: list[SyntheticClip], path: Path, scale: int = 2) -> Path:
    """A contact sheet of the clips' frames (uint8 (T, H, W, 3) each), one row each, enlarged
    ``scale`` times, labelled with the clip's id and instruction."""
    import torch

    from aid_model.video_io import write_contact_sheet

    rows = [
        torch.from_numpy(clip.frames.repeat(scale, axis=1).repeat(scale, axis=2)).float() / 255.0
        for clip in clips
    ]
    labels = [f"{clip.sample_id}: {clip.instruction}" for clip in clips]
    return write_contact_sheet(rows, path, labels=labels)
