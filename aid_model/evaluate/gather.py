"""Rank 0's part after the barrier: read every rank's shard and compute the numbers once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aid_model.evaluate.shards import ShardError, ShardRows, rank_file, read_rows
from aid_model.metrics import frechet_distance_from_features, video_metrics


def gather_shards(shards_dir: Path, world_size: int, fingerprint: str,
                  num_samples: int) -> ShardRows:
    """The rows of ``rank_0000`` … ``rank_{world_size − 1}``, sorted by index.

    Raises ``ShardError`` when a file is missing, was written for other settings, or the
    files together do not hold each index 0 … N − 1 exactly once.
    """
    parts = []
    for rank in range(world_size):
        path = rank_file(shards_dir, rank)
        if not path.is_file():
            raise ShardError(
                f"{path} is missing: process {rank} of {world_size} did not finish its share "
                "(see its error); run the same command again to complete it"
            )
        rows, header = read_rows(path)
        if header.fingerprint != fingerprint:
            raise ShardError(f"{path} was written for other settings than this run's; rerun "
                             "with --overwrite")
        parts.append(rows)
    merged = ShardRows.concat(parts)
    indices = sorted(merged.indices.tolist())
    if indices != list(range(num_samples)):
        missing = sorted(set(range(num_samples)) - set(indices))
        repeated = len(indices) - len(set(indices))
        raise ShardError(
            f"the shards in {shards_dir} hold {len(set(indices))} of the {num_samples} samples "
            f"(missing e.g. {missing[:5]}, {repeated} repeated); rerun the same command"
        )
    return merged.select(set(indices))


def compute_metrics(rows: ShardRows, kvd_subset_size: int | None = None,
                    kvd_num_subsets: int = 100, seed: int = 0) -> dict[str, Any]:
    """FVD and KVD on the I3D features (``video_metrics``), FID when the rows hold
    Inception features. Keys: fvd, kvd, fid (None without Inception), num_real,
    num_generated, feature_dim, kvd_subsets, warnings, fid_frames."""
    metrics = video_metrics(rows.real_i3d, rows.generated_i3d, kvd_subset_size=kvd_subset_size,
                            kvd_num_subsets=kvd_num_subsets, seed=seed)
    metrics["fid"] = None
    metrics["fid_frames"] = None
    if rows.real_inception is not None:
        metrics["fid"] = frechet_distance_from_features(rows.real_inception,
                                                        rows.generated_inception)
        metrics["fid_frames"] = {"count": int(rows.real_inception.shape[0]),
                                 "which": "predicted frames (t >= K) of every clip",
                                 "feature_dim": int(rows.real_inception.shape[1])}
    return metrics
