"""The sample contract: what every dataset item is, and how items become a batch.

Every dataset in ``aid_model.data`` returns, for an index, a dict with exactly these keys
(the trainer and the evaluation rely on them):

    "frames":               float tensor (T, 3, H, W) in [−1, 1]
    "instruction":          str, the text instruction (whitespace-normalised)
    "states":               list[str], the cached future-state texts; [] when none
    "num_reference_frames": int K, how many leading frames are given (the rest are predicted)
    "sample_id":            str, stable across runs; the key of the state cache join
    "fps":                  float, frames per second of the sampled clip (after the stride)

plus one bookkeeping key, ``"skipped"``: list[str] of "sample_id: reason" for records that
could not be read inside a DataLoader worker and were replaced by this item (almost always
empty). Worker processes hold copies of the dataset, so their skip counts would be lost;
passing them along with the item lets ``ClipDataset.count_skips(batch)`` bring them home.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

SAMPLE_KEYS: tuple[str, ...] = (
    "frames",
    "instruction",
    "states",
    "num_reference_frames",
    "sample_id",
    "fps",
)
SKIPPED_KEY = "skipped"


def make_sample(
    frames: Tensor,
    instruction: str,
    states: Sequence[str],
    num_reference_frames: int,
    sample_id: str,
    fps: float,
    skipped: Sequence[str] = (),
) -> dict[str, Any]:
    """One item of the contract, checked: ``frames`` (T, 3, H, W) float in [−1, 1], 1 ≤ K < T."""
    if frames.ndim != 4 or frames.shape[1] != 3 or not frames.is_floating_point():
        raise ValueError(
            f"sample {sample_id!r}: frames must be a float tensor (T, 3, H, W), got "
            f"{frames.dtype} {tuple(frames.shape)}"
        )
    if not 1 <= num_reference_frames < frames.shape[0]:
        raise ValueError(
            f"sample {sample_id!r}: num_reference_frames must be in [1, T − 1] = "
            f"[1, {frames.shape[0] - 1}], got {num_reference_frames}"
        )
    return {
        "frames": frames,
        "instruction": str(instruction),
        "states": [str(state) for state in states],
        "num_reference_frames": int(num_reference_frames),
        "sample_id": str(sample_id),
        "fps": float(fps),
        SKIPPED_KEY: [str(entry) for entry in skipped],
    }


def collate_clips(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Items of the contract → a batch.

    Returns ``"frames"`` (B, T, 3, H, W), ``"fps"`` float32 (B,), ``"num_reference_frames"``
    int64 (B,), and lists (length B) for ``"instruction"``, ``"states"``, ``"sample_id"``;
    ``"skipped"`` is the flat list of every item's skip entries. All items must share
    T, H and W (one dataset config gives that).
    """
    if not items:
        raise ValueError("collate_clips needs at least one item")
    shapes = {tuple(item["frames"].shape) for item in items}
    if len(shapes) > 1:
        raise ValueError(
            f"cannot batch clips of different shapes {sorted(shapes)}; use one num_frames and "
            f"size per DataLoader"
        )
    return {
        "frames": torch.stack([item["frames"] for item in items]),
        "instruction": [item["instruction"] for item in items],
        "states": [list(item["states"]) for item in items],
        "num_reference_frames": torch.tensor(
            [item["num_reference_frames"] for item in items], dtype=torch.long
        ),
        "sample_id": [item["sample_id"] for item in items],
        "fps": torch.tensor([item["fps"] for item in items], dtype=torch.float32),
        SKIPPED_KEY: [entry for item in items for entry in item.get(SKIPPED_KEY, ())],
    }
