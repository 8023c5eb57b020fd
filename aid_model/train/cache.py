"""Feature cache: a pre-pass writes one safetensors file per sample, training reads them.

    <cache dir>/
        manifest.json          what the features were computed with (checked on reuse)
        index.json             dataset index → file name
        null_text.safetensors  the null text's e_t and e_s (with cached text)
        <sample id>-<hash>.safetensors

A sample file holds, with ``cache.latents``: ``latents`` (T, C, h, w) unscaled VAE latent
modes, ``reference_latents`` (K, C, h, w) the concat latents with cond_aug noise drawn
once for the sample, ``image_embedding`` (1, d) and ``image_context`` (M, d_v); with
``cache.text``: ``instruction_embedding`` (77, d) and ``state_embeddings`` (S·77, d).
Its metadata carries the strings (sample id, instruction, states) and fps, K, cond_aug.

The clip of a sample is the one the dataset gives at epoch 0: per-epoch clip jitter is
frozen by caching. Each process encodes the indices i with i % world_size == rank; files
already present are kept, so an interrupted pre-pass continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset, Subset

from aid_model.train.checkpoint import atomic_write_file
from aid_model.train.config import ConfigError, TrainConfig, with_absolute_folders
from aid_model.train.data import set_dataset_epoch
from aid_model.train.distributed import DistributedContext
from aid_model.train.features import FeatureEncoder, check_frames
from aid_model.train.randomness import CACHE_STREAM, sample_generator

MANIFEST = "manifest.json"
INDEX = "index.json"
NULL_TEXT = "null_text.safetensors"
FORMAT_VERSION = 1
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def cache_settings(config: TrainConfig) -> dict[str, Any]:
    """Everything the cached features depend on; a cache made with other settings is
    refused rather than silently reused (folders compared by ``with_absolute_folders``)."""
    settings: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "data": config.data,
        "seed": config.seed,
        "dtype": config.cache.dtype,
        "latents": config.cache.latents,
        "text": config.cache.text,
        "num_frames": config.aid.num_frames,
    }
    if config.cache.latents:
        settings.update(svd=str(config.model.svd), model_dtype=config.model.dtype,
                        clip_num_heads=config.model.clip_num_heads,
                        image_context=config.aid.image_context,
                        cond_aug=config.conditioning.cond_aug.value)
    if config.cache.text:
        settings.update(text_encoder=str(config.text_encoder.source),
                        tokenizer_dir=config.text_encoder.tokenizer_dir,
                        text_dtype=config.model.dtype, num_states=config.aid.num_states)
    return settings


def sample_file_name(sample_id: str) -> str:
    """A file name for any sample id (ids may hold slashes): readable part + hash."""
    digest = hashlib.sha1(sample_id.encode("utf-8")).hexdigest()[:12]
    readable = _UNSAFE.sub("_", sample_id)[-80:].strip("._") or "sample"
    return f"{readable}-{digest}.safetensors"


def _identity(item: Any) -> Any:
    return item


class FeatureCache:
    """One cache folder for one set of ``cache_settings``."""

    def __init__(self, folder: str | Path, settings: dict[str, Any]):
        self.folder = Path(folder)
        self.settings = settings
        self.dtype = _DTYPES[settings["dtype"]]

    @property
    def complete(self) -> bool:
        """True when the manifest matches and every sample has a file (index written)."""
        self.check_manifest()
        return (self.folder / INDEX).is_file() and (
            not self.settings["text"] or (self.folder / NULL_TEXT).is_file())

    def check_manifest(self) -> None:
        """Raises ``ConfigError`` when the folder holds features made with other settings."""
        path = self.folder / MANIFEST
        if not path.is_file():
            return
        # Each side's local folders as absolute paths: one folder, two spellings, one cache.
        stored = with_absolute_folders(json.loads(path.read_text(encoding="utf-8")))
        expected = with_absolute_folders(self.settings)
        differing = sorted(k for k in set(stored) | set(expected)
                           if stored.get(k) != expected.get(k))
        if differing:
            shown = {k: (stored.get(k), expected.get(k)) for k in differing[:5]}
            raise ConfigError(
                f"the feature cache {self.folder} was made with other settings "
                f"(cached, wanted): {shown}; delete the folder or set cache.dir to a new one"
            )

    def prepare(self, dataset: Dataset, encoder: FeatureEncoder, context: DistributedContext,
                num_workers: int = 0, progress: bool = False) -> None:
        """The pre-pass: encodes this process's share of ``dataset`` (sample contract
        items); then rank 0 writes the index. All processes return together."""
        self.check_manifest()
        if context.is_main:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_file(self.folder / MANIFEST, lambda p: p.write_text(
                json.dumps(self.settings, indent=1, sort_keys=True), encoding="utf-8"))
            if self.settings["text"]:
                self._write_null_text(encoder)
        context.barrier()
        set_dataset_epoch(dataset, 0)
        mine = list(range(context.rank, len(dataset), context.world_size))
        loader = DataLoader(Subset(dataset, mine), batch_size=None, num_workers=num_workers,
                            collate_fn=_identity)
        names: dict[int, str] = {}
        iterator = loader
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(loader, total=len(mine), desc="caching features", unit="sample")
        for index, item in zip(mine, iterator, strict=True):
            name = sample_file_name(str(item["sample_id"]))
            names[index] = name
            if not (self.folder / name).is_file():
                self._write_sample(self.folder / name, index, item, encoder)
        part = self.folder / f"index.rank{context.rank}.json"
        atomic_write_file(part, lambda p: p.write_text(json.dumps(names), encoding="utf-8"))
        context.barrier()
        if context.is_main:
            merged: dict[int, str] = {}
            for rank in range(context.world_size):
                path = self.folder / f"index.rank{rank}.json"
                merged.update({int(k): v for k, v in json.loads(path.read_text()).items()})
                path.unlink()
            files = [merged[i] for i in range(len(dataset))]
            atomic_write_file(self.folder / INDEX, lambda p: p.write_text(
                json.dumps({"size": len(files), "files": files}), encoding="utf-8"))
        context.barrier()

    def _write_sample(self, path: Path, index: int, item: dict, encoder: FeatureEncoder) -> None:
        frames = torch.as_tensor(item["frames"])
        num_refs = int(item["num_reference_frames"])
        check_frames(frames[None], torch.tensor([num_refs]), encoder.model.config.num_frames)
        tensors: dict[str, torch.Tensor] = {}
        cond_aug = float(self.settings.get("cond_aug", 0.0))
        if self.settings["latents"]:
            tensors["latents"] = encoder.clip_latents(frames)
            generator = sample_generator(self.settings["seed"], 0, 0, index, CACHE_STREAM)
            tensors["reference_latents"] = encoder.reference_latents(
                frames[:num_refs], cond_aug, generator)
            token, context = encoder.image_features(frames[:1])
            tensors["image_embedding"] = token[0]
            tensors["image_context"] = context[0]
        if self.settings["text"]:
            e_t, e_s = encoder.text([item["instruction"]], [list(item["states"])])
            tensors["instruction_embedding"] = e_t[0]
            tensors["state_embeddings"] = e_s[0]
        metadata = {
            "sample_id": str(item["sample_id"]),
            "instruction": str(item["instruction"]),
            "states": json.dumps(list(item["states"])),
            "fps": repr(float(item["fps"])),
            "num_reference_frames": str(num_refs),
            "cond_aug": repr(cond_aug),
        }
        stored = {k: v.detach().to("cpu", self.dtype).contiguous() for k, v in tensors.items()}
        atomic_write_file(path, lambda p: save_file(stored, str(p), metadata=metadata))

    def _write_null_text(self, encoder: FeatureEncoder) -> None:
        from aid_model.text_condition import null_text_condition

        e_t, e_s = null_text_condition(encoder.text_encoder, 1, encoder.model.config.num_states)
        tensors = {"instruction_embedding": e_t[0].float().cpu().contiguous(),
                   "state_embeddings": e_s[0].float().cpu().contiguous()}
        atomic_write_file(self.folder / NULL_TEXT, lambda p: save_file(tensors, str(p)))

    def null_text(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(null e_t (77, d), null e_s (S·77, d)) from the cache."""
        with safe_open(str(self.folder / NULL_TEXT), framework="pt") as file:
            return (file.get_tensor("instruction_embedding"),
                    file.get_tensor("state_embeddings"))

    def dataset(self, source: Dataset | None = None) -> CachedDataset:
        """The training dataset: cached features, plus ``source`` items when the frames
        are not cached."""
        return CachedDataset(self.folder, self.settings["latents"], source)


class CachedDataset(Dataset):
    """Items from the cache files (with ``index``), in the dataset's index order.

    With cached latents no video is read; otherwise each item is ``source[index]`` (frames
    etc.) plus the cached text embeddings.
    """

    def __init__(self, folder: str | Path, with_latents: bool, source: Dataset | None = None):
        self.folder = Path(folder)
        index = json.loads((self.folder / INDEX).read_text(encoding="utf-8"))
        self.files: list[str] = index["files"]
        self.with_latents = with_latents
        self.source = source
        if not with_latents and source is None:
            raise ValueError("without cached latents the frames come from the source dataset")
        if source is not None and len(source) != len(self.files):
            raise ValueError(
                f"the feature cache {self.folder} indexes {len(self.files)} samples but the "
                f"dataset has {len(source)}; the dataset changed: delete the cache folder"
            )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.folder / self.files[index]
        with safe_open(str(path), framework="pt") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
            metadata = file.metadata()
        if self.with_latents:
            item: dict[str, Any] = {
                "sample_id": metadata["sample_id"],
                "instruction": metadata["instruction"],
                "states": json.loads(metadata["states"]),
                "fps": float(metadata["fps"]),
                "num_reference_frames": int(metadata["num_reference_frames"]),
                "cond_aug": float(metadata["cond_aug"]),
            }
        else:
            item = dict(self.source[index])
            if str(item["sample_id"]) != metadata["sample_id"]:
                raise ValueError(
                    f"dataset index {index} is sample {item['sample_id']!r} but the feature "
                    f"cache has {metadata['sample_id']!r} there; the dataset changed: delete "
                    f"{self.folder}"
                )
        item.update(tensors)
        item["index"] = index
        return item

    def set_epoch(self, epoch: int) -> None:
        if self.source is not None:
            set_dataset_epoch(self.source, epoch)
