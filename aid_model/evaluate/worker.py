"""One process's share of an evaluation: predict its clips, extract features, write a shard.

Process ``rank`` of ``world_size`` takes the dataset indices i < N with i ≡ rank (mod world
size). Every batch is written as a chunk file as soon as it is done, so an interrupted run
continues after its last finished batch; at the end the chunks (and rows reused from
earlier runs) become ``rank_XXXX.safetensors``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from aid_model.evaluate.features import FeatureNetworks
from aid_model.evaluate.predictors import ClipPredictor
from aid_model.evaluate.shards import (
    ShardHeader,
    ShardRows,
    assigned_indices,
    next_chunk_path,
    partial_dir,
    rank_file,
    write_rows,
)


@dataclass
class RankOutcome:
    """What ``run_rank`` did: its shard file, the samples it computed now and the ones
    reused from earlier runs, and its wall time in seconds."""

    rank: int
    path: Path
    computed: int
    reused: int
    seconds: float


def to_uint8_video(clip: Tensor) -> Tensor:
    """(T, 3, H, W) in [−1, 1] → uint8 (T, H, W, 3), the preview videos' layout."""
    return ((clip.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


class _SkipLog:
    """Skip entries of the records read so far (in this process and in DataLoader
    workers), each reported once."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.seen: set[str] = set()

    def new_entries(self, batch: dict[str, Any]) -> list[str]:
        report = getattr(self.dataset, "skipped", None)
        local = [f"{sample_id}: {detail}"
                 for sample_id, detail in getattr(report, "reasons", {}).items()]
        fresh = []
        for entry in [*batch.get("skipped", []), *local]:
            if entry not in self.seen:
                self.seen.add(entry)
                fresh.append(entry)
        return fresh


def run_rank(
    dataset: Dataset,
    predictor: ClipPredictor,
    networks: FeatureNetworks,
    *,
    num_samples: int,
    rank: int,
    world_size: int,
    shards_dir: Path,
    header: ShardHeader,
    reused: ShardRows | None = None,
    batch_size: int = 4,
    num_workers: int = 0,
    preview: int = 0,
    progress: Callable[[int], None] | None = None,
) -> RankOutcome:
    """Evaluates the rank's share and writes ``rank_XXXX.safetensors``.

    Args:
        dataset: map-style dataset of the sample contract (``aid_model.data``).
        predictor: batch → predicted clips (B, T, 3, H, W) in [−1, 1].
        networks: the checked feature networks.
        num_samples: N; the rank's indices are ``assigned_indices(N, rank, world_size)``.
        shards_dir: ``<out>/shards``.
        header: fingerprint and settings written into every file.
        reused: rows already computed for this rank's indices (same settings); only the
            others are predicted.
        batch_size: clips per sampling call.
        num_workers: DataLoader workers reading the clips.
        preview: samples with index < ``preview`` keep their videos (contact sheet).
        progress: called with the number of samples finished after each batch.
    """
    from aid_model.data import collate_clips

    started = time.perf_counter()
    assigned = assigned_indices(num_samples, rank, world_size)
    done = set(reused.indices.tolist()) if reused is not None else set()
    remaining = [index for index in assigned if index not in done]
    folder = partial_dir(shards_dir, rank)
    loader = DataLoader(Subset(dataset, remaining), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=collate_clips)
    skips = _SkipLog(dataset)
    new_rows: list[ShardRows] = []
    position = 0
    read_started = time.perf_counter()
    for batch in loader:
        indices = remaining[position:position + batch["frames"].shape[0]]
        position += len(indices)
        data_seconds = time.perf_counter() - read_started
        predict_started = time.perf_counter()
        generated = predictor(batch, indices)
        predict_seconds = time.perf_counter() - predict_started
        features_started = time.perf_counter()
        features = networks(batch["frames"], generated, batch["num_reference_frames"])
        features_seconds = time.perf_counter() - features_started
        rows = ShardRows(
            indices=torch.tensor(indices, dtype=torch.long),
            real_i3d=features.real_i3d, generated_i3d=features.generated_i3d,
            sample_ids=list(batch["sample_id"]), skipped=skips.new_entries(batch),
            timings={"data_s": data_seconds, "predict_s": predict_seconds,
                     "features_s": features_seconds, "samples": float(len(indices))},
        )
        if features.inception_owner is not None:
            rows.inception_owner = rows.indices[features.inception_owner]
            rows.real_inception = features.real_inception
            rows.generated_inception = features.generated_inception
        shown = [b for b, index in enumerate(indices) if index < preview]
        if shown:
            rows.preview_indices = rows.indices[shown]
            rows.preview_real = torch.stack([to_uint8_video(batch["frames"][b]) for b in shown])
            rows.preview_generated = torch.stack([to_uint8_video(generated[b]) for b in shown])
        write_rows(next_chunk_path(folder), rows, header)
        new_rows.append(rows)
        if progress is not None:
            progress(len(indices))
        read_started = time.perf_counter()
    merged = ShardRows.concat([reused, *new_rows])
    if merged is None:  # N < world size: this rank has nothing to do, its shard is empty
        merged = _empty_rows(networks)
    path = write_rows(rank_file(shards_dir, rank), merged.select(set(assigned)), header)
    _remove_folder(folder)
    return RankOutcome(rank, path, len(remaining), len(done), time.perf_counter() - started)


def _empty_rows(networks: FeatureNetworks) -> ShardRows:
    dim = networks.i3d.feature_dim
    return ShardRows(indices=torch.empty(0, dtype=torch.long),
                     real_i3d=torch.empty(0, dim, dtype=torch.float64),
                     generated_i3d=torch.empty(0, dim, dtype=torch.float64), sample_ids=[])


def _remove_folder(folder: Path) -> None:
    """The partial folder, once its rows are in the rank file."""
    if folder.is_dir():
        for path in folder.iterdir():
            path.unlink(missing_ok=True)
        folder.rmdir()
