"""Batches for training: the dataset, sharded and shuffled per epoch, resumable mid-epoch.

Items follow the sample contract of ``aid_model.data``: ``frames`` (T, 3, H, W) in
[−1, 1], ``instruction``, ``states`` (list, may be empty), ``num_reference_frames`` K,
``sample_id``, ``fps``. Items read from the feature cache carry tensors instead of frames
(``cache.py``). Every item is tagged with its dataset ``index``, which keys its random
streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

# The data package's bookkeeping key: records skipped by a DataLoader worker.
SKIPPED_KEY = "skipped"
# Keys stacked into one tensor when every item has them; anything else stays a list.
_STACKED = ("frames", "latents", "image_embedding", "image_context", "instruction_embedding",
            "state_embeddings")


def build_training_dataset(data_config: dict[str, Any]) -> Dataset:
    """``aid_model.data.build_dataset(data_config)``, imported when first needed."""
    try:
        from aid_model.data import build_dataset
    except ImportError as error:
        raise ImportError(
            f"training needs aid_model.data.build_dataset for data.name={data_config.get('name')!r}"
            f", which could not be imported ({error}); pass a dataset object to train() instead"
        ) from error
    return build_dataset(data_config)


def set_dataset_epoch(dataset: Dataset, epoch: int) -> None:
    """Tells a dataset with per-epoch randomness (clip offsets) which epoch it is."""
    set_epoch = getattr(dataset, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)


class IndexedDataset(Dataset):
    """Adds ``index`` (the dataset index) to every item of ``dataset``."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        item["index"] = index
        return item

    def set_epoch(self, epoch: int) -> None:
        set_dataset_epoch(self.dataset, epoch)


def collate_training(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacks a list of items: tensors of ``_STACKED`` → (B, …); ``fps``, ``cond_aug`` →
    float (B,); ``num_reference_frames``, ``index`` → long (B,); strings, state lists and
    ``reference_latents`` (K differs per sample) → lists."""
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key in _STACKED:
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                ids = [item.get("sample_id") for item in items]
                raise ValueError(f"items of one batch have different '{key}' shapes {shapes} "
                                 f"(samples {ids}); the dataset must give equal-sized clips")
            batch[key] = torch.stack([torch.as_tensor(v) for v in values])
        elif key in ("fps", "cond_aug"):
            batch[key] = torch.tensor([float(v) for v in values], dtype=torch.float32)
        elif key in ("num_reference_frames", "index"):
            batch[key] = torch.tensor([int(v) for v in values], dtype=torch.long)
        elif key == SKIPPED_KEY:  # records a worker replaced, flattened as collate_clips does
            batch[key] = [entry for entries in values for entry in entries]
        else:
            batch[key] = values
    return batch


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled by seed + epoch, sharded by rank, drop_last) that
    can start an epoch after its first ``start`` indices (a resumed run)."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=True)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)

    @property
    def full_length(self) -> int:
        return self.num_samples


class BatchStream:
    """Endless batches over epochs; ``position`` (epoch, batches taken this epoch) is
    what a checkpoint stores and what ``seek`` restores.

    Args:
        dataset: map-style dataset (with ``index`` tags).
        batch_size: per process.
        num_replicas, rank: the process group.
        seed: shuffling seed (the run's).
        num_workers: DataLoader workers.
        collate: batch builder.
        pin_memory: for CUDA.
        on_batch: called with every batch (skip accounting).
        on_epoch_end: called with the number of an epoch that has just ended.
    """

    def __init__(self, dataset: Dataset, batch_size: int, num_replicas: int, rank: int,
                 seed: int, num_workers: int = 0,
                 collate: Callable[[list], dict] = collate_training, pin_memory: bool = False,
                 on_batch: Callable[[dict], None] | None = None,
                 on_epoch_end: Callable[[int], None] | None = None):
        size = len(dataset)
        if size < batch_size * num_replicas:
            raise ValueError(
                f"the dataset has {size} samples, fewer than one global batch "
                f"({num_replicas} process(es) × loader.batch_size {batch_size}); lower the "
                "batch size or add data"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = ResumableDistributedSampler(dataset, num_replicas, rank, seed)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler,
                                 num_workers=num_workers, collate_fn=collate, drop_last=True,
                                 pin_memory=pin_memory)
        self.batches_per_epoch = self.sampler.full_length // batch_size
        self.epoch = 0
        self.taken = 0
        self._iterator: Iterator | None = None
        self.on_batch = on_batch
        self.on_epoch_end = on_epoch_end

    @property
    def position(self) -> tuple[int, int]:
        return self.epoch, self.taken

    def seek(self, epoch: int, taken: int) -> None:
        """Continue at batch ``taken`` of ``epoch`` (no item before it is loaded)."""
        self.epoch, self.taken = epoch, taken
        self._iterator = None

    def _start_epoch(self) -> None:
        self.sampler.set_epoch(self.epoch)
        self.sampler.start = min(self.taken, self.batches_per_epoch) * self.batch_size
        set_dataset_epoch(self.dataset, self.epoch)
        self._iterator = iter(self.loader)

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> dict[str, Any]:
        while True:
            if self._iterator is None:
                self._start_epoch()
            try:
                batch = next(self._iterator)
            except StopIteration:
                if self.on_epoch_end is not None:
                    self.on_epoch_end(self.epoch)
                self.epoch, self.taken = self.epoch + 1, 0
                self._iterator = None
                continue
            self.taken += 1
            if self.on_batch is not None:
                self.on_batch(batch)
            return batch
