"""Shard files: what one process computed for its share of the samples.

    <out>/shards/rank_0000.safetensors          a finished rank's rows (gathered by rank 0)
    <out>/shards/rank_0000.partial/chunk_*.safetensors
                                                its batches while it runs (resume from here)

Every file holds rows keyed by dataset index:

    indices              int64 (n,)
    real_i3d             float64 (n, D)   I3D features of the ground-truth clips
    generated_i3d        float64 (n, D)   I3D features of the predictions (references included)
    inception_owner      int64 (m,)       with FID: the sample index of each frame row
    real_inception       float32 (m, D₂)  Inception features of frames t ≥ K of the real clip
    generated_inception  float32 (m, D₂)  and of the same frames of the prediction
    preview_indices      int64 (p,)       samples kept as videos for the contact sheet
    preview_real         uint8 (p, T, H, W, 3)
    preview_generated    uint8 (p, T, H, W, 3)

and metadata: the format, the settings fingerprint and what it was made of, the rank and
world size that wrote it, the sample ids (JSON), skipped records and timings. Features, not
videos, are kept: 2,048 SSv2 samples are 13 MB of I3D features.

Files are written through a temporary name and renamed, so a crash leaves whole files only.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from aid_model.train.checkpoint import atomic_write_file

SHARD_FORMAT = "1"
SHARDS_FOLDER = "shards"
_OPTIONAL = ("inception_owner", "real_inception", "generated_inception", "preview_indices",
             "preview_real", "preview_generated")


class ShardError(ValueError):
    """A shard file that cannot be used; the message names the file and the way out."""


def rank_file(shards_dir: Path, rank: int) -> Path:
    return shards_dir / f"rank_{rank:04d}.safetensors"


def partial_dir(shards_dir: Path, rank: int) -> Path:
    return shards_dir / f"rank_{rank:04d}.partial"


def assigned_indices(num_samples: int, rank: int, world_size: int) -> list[int]:
    """The dataset indices process ``rank`` of ``world_size`` evaluates: i ≡ rank (mod
    world size). Interleaved rather than contiguous so every rank gets a similar mix."""
    return list(range(rank, num_samples, world_size))


@dataclass
class ShardRows:
    """Rows of results keyed by dataset index (shapes in the module docstring)."""

    indices: Tensor
    real_i3d: Tensor
    generated_i3d: Tensor
    sample_ids: list[str]
    inception_owner: Tensor | None = None
    real_inception: Tensor | None = None
    generated_inception: Tensor | None = None
    preview_indices: Tensor | None = None
    preview_real: Tensor | None = None
    preview_generated: Tensor | None = None
    skipped: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @staticmethod
    def concat(parts: list[ShardRows]) -> ShardRows | None:
        """All parts' rows in order (None when there are none); timings are summed."""
        parts = [part for part in parts if part is not None]
        if not parts:
            return None
        timings: dict[str, float] = {}
        for part in parts:
            for key, value in part.timings.items():
                timings[key] = timings.get(key, 0.0) + value
        values = {}
        for name in ("indices", "real_i3d", "generated_i3d", *_OPTIONAL):
            present = [getattr(part, name) for part in parts if getattr(part, name) is not None]
            values[name] = torch.cat(present) if present else None
        return ShardRows(sample_ids=[s for part in parts for s in part.sample_ids],
                         skipped=[s for part in parts for s in part.skipped],
                         timings=timings, **values)

    def select(self, keep: set[int]) -> ShardRows:
        """The rows whose index is in ``keep``, sorted by index (indices must be unique:
        callers take each index from one source only)."""
        index_list = self.indices.tolist()
        if len(set(index_list)) != len(index_list):
            raise ValueError("shard rows hold an index twice; merge sources with disjoint indices")
        chosen_rows = sorted((index, row) for row, index in enumerate(index_list) if index in keep)
        rows = torch.tensor([row for _, row in chosen_rows], dtype=torch.long)
        chosen = ShardRows(
            indices=self.indices[rows], real_i3d=self.real_i3d[rows],
            generated_i3d=self.generated_i3d[rows],
            sample_ids=[self.sample_ids[row] for _, row in chosen_rows],
            skipped=list(self.skipped), timings=dict(self.timings),
        )
        chosen_set = {index for index, _ in chosen_rows}
        if self.inception_owner is not None:
            owner = self.inception_owner.tolist()
            # Frame rows grouped by sample in index order, each sample's frames in time order.
            frames = sorted((r for r, i in enumerate(owner) if i in chosen_set),
                            key=lambda r: owner[r])
            frames = torch.tensor(frames, dtype=torch.long)
            chosen.inception_owner = self.inception_owner[frames]
            chosen.real_inception = self.real_inception[frames]
            chosen.generated_inception = self.generated_inception[frames]
        if self.preview_indices is not None:
            shown = sorted((i, r) for r, i in enumerate(self.preview_indices.tolist())
                           if i in chosen_set)
            rows = torch.tensor([r for _, r in shown], dtype=torch.long)
            chosen.preview_indices = self.preview_indices[rows]
            chosen.preview_real = self.preview_real[rows]
            chosen.preview_generated = self.preview_generated[rows]
        return chosen

    def tensors(self) -> dict[str, Tensor]:
        values = {"indices": self.indices.long(), "real_i3d": self.real_i3d.double(),
                  "generated_i3d": self.generated_i3d.double()}
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                values[name] = value.contiguous()
        return {name: value.contiguous() for name, value in values.items()}


@dataclass
class ShardHeader:
    """Who wrote a shard and for which settings."""

    fingerprint: str
    settings: dict[str, Any]
    rank: int
    world_size: int


def write_rows(path: Path, rows: ShardRows, header: ShardHeader) -> Path:
    """Writes ``rows`` to ``path`` atomically (temporary file, then rename)."""
    metadata = {
        "aid_evaluation_format": SHARD_FORMAT,
        "fingerprint": header.fingerprint,
        "settings": json.dumps(header.settings, sort_keys=True),
        "rank": str(header.rank),
        "world_size": str(header.world_size),
        "sample_ids": json.dumps(rows.sample_ids),
        "skipped": json.dumps(rows.skipped),
        "timings": json.dumps(rows.timings),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = rows.tensors()
    return atomic_write_file(path, lambda target: save_file(tensors, str(target), metadata))


def read_header(path: Path) -> tuple[ShardHeader, dict[str, str]]:
    """The header and raw metadata of a shard file; ``ShardError`` when it is not one."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
    except Exception as error:  # safetensors raises several kinds for foreign or cut files
        raise ShardError(
            f"{path} is not a readable shard ({type(error).__name__}: {error}); delete it, or "
            "rerun with --overwrite"
        ) from None
    if metadata.get("aid_evaluation_format") != SHARD_FORMAT:
        raise ShardError(
            f"{path} is not an evaluation shard of format {SHARD_FORMAT} (found "
            f"{metadata.get('aid_evaluation_format')!r}); delete it, or rerun with --overwrite"
        )
    header = ShardHeader(metadata["fingerprint"], json.loads(metadata["settings"]),
                         int(metadata["rank"]), int(metadata["world_size"]))
    return header, metadata


def read_rows(path: Path) -> tuple[ShardRows, ShardHeader]:
    """The rows and header of a shard file."""
    header, metadata = read_header(path)
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    rows = ShardRows(
        indices=tensors["indices"], real_i3d=tensors["real_i3d"],
        generated_i3d=tensors["generated_i3d"], sample_ids=json.loads(metadata["sample_ids"]),
        skipped=json.loads(metadata["skipped"]), timings=json.loads(metadata["timings"]),
        **{name: tensors.get(name) for name in _OPTIONAL},
    )
    return rows, header


def shard_files(shards_dir: Path) -> list[Path]:
    """Every rank file and chunk file under ``shards_dir``, in name order."""
    if not shards_dir.is_dir():
        return []
    files = sorted(shards_dir.glob("rank_*.safetensors"))
    for folder in sorted(shards_dir.glob("rank_*.partial")):
        files.extend(sorted(folder.glob("chunk_*.safetensors")))
    return files


def reusable_rows(shards_dir: Path, fingerprint: str, settings: dict[str, Any],
                  keep: set[int]) -> ShardRows | None:
    """Rows for the indices of ``keep`` found in any shard file of the same settings,
    whichever rank or world size wrote them (each index taken from the first file that
    has it).

    Raises ``ShardError`` for a shard of other settings, naming the differing keys: mixing
    two evaluations in one folder would silently mix their numbers.
    """
    from aid_model.nested_diff import differing_keys

    found, wanted = [], set(keep)
    for path in shard_files(shards_dir):
        header, _ = read_header(path)
        if header.fingerprint != fingerprint:
            keys = differing_keys(header.settings, settings) or ["(format)"]
            raise ShardError(
                f"{path} holds results of other settings (differing: {', '.join(keys[:8])}). "
                f"Use another --out, or --overwrite to discard {shards_dir}"
            )
        if not wanted:
            continue
        rows, _ = read_rows(path)
        if set(rows.indices.tolist()) & wanted:
            part = rows.select(wanted)
            found.append(part)
            wanted -= set(part.indices.tolist())
    return ShardRows.concat(found)


def next_chunk_path(folder: Path) -> Path:
    """A new chunk file name after the existing ones."""
    numbers = [int(path.stem.split("_")[1]) for path in folder.glob("chunk_*.safetensors")
               if path.stem.split("_")[1].isdigit()]
    return folder / f"chunk_{max(numbers, default=-1) + 1:06d}.safetensors"


def remove_rank_files(shards_dir: Path, rank: int) -> None:
    """Deletes rank ``rank``'s finished file and its partial folder (``--overwrite``)."""
    rank_file(shards_dir, rank).unlink(missing_ok=True)
    shutil.rmtree(partial_dir(shards_dir, rank), ignore_errors=True)


def ranks_present(shards_dir: Path) -> list[int]:
    """Ranks with a finished file or a partial folder in ``shards_dir``."""
    ranks = set()
    for path in [*shards_dir.glob("rank_*.safetensors"), *shards_dir.glob("rank_*.partial")]:
        number = path.name[len("rank_"):].split(".")[0]
        if number.isdigit():
            ranks.add(int(number))
    return sorted(ranks)
