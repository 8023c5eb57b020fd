"""AID weight files: safetensors with only what AID trains, and what it was trained on.

Tensors: ``trainable_parameters`` (adapters, MCondition attention, DQFormer, and the base's
spatial cross-attention, which training changes), named as in ``AIDModel``. Metadata
(strings):

    aid_format_version   "2" ("1": MCondition through a scalar gate; converted on load)
    aid_config           AIDConfig as JSON
    aid_base_shapes      JSON {base UNet tensor name: shape}, the base it was trained on
    aid_base_fingerprint sha256 of aid_base_shapes (a short id to compare bases by)

Loading checks the base (naming the first tensor that differs), the config (fields of
retired experiments load when off, ``AIDConfig.from_json``), and that the file's tensors
and the model's trained parameters are the same set with the same shapes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from aid_model.aid.config import AIDConfig
from aid_model.aid.model import AIDModel, SVDLike, attach_aid, base_unet_parameters
from aid_model.aid.model import trainable_parameters as _trainable
from aid_model.atomic import atomic_path
from aid_model.safetensors_io import CheckpointError, check_safetensors_file

FORMAT_VERSION = "2"
# Format 1 scaled the MCondition branch by a scalar gate through SVD's shared output
# projection; format 2 gives the branch its own zero-initialised projection
# (mcondition_attention.py says why). gate·(W x + b) = (gate·W) x + gate·b: exact.
READABLE_VERSIONS = ("1", FORMAT_VERSION)
_V1_GATE = "processor.mcondition_gate"


class AIDWeightsError(ValueError):
    """An AID weight file that does not fit the model or base it is loaded onto."""


def base_unet_shapes(model: AIDModel) -> dict[str, list[int]]:
    """{name: shape} of the base UNet's parameters and buffers (AID parts excluded)."""
    shapes = {n: list(p.shape) for n, p in base_unet_parameters(model).items()}
    shapes.update({n: list(b.shape) for n, b in model.unet.base.named_buffers()})
    return dict(sorted(shapes.items()))


def fingerprint(shapes: dict[str, list[int]]) -> str:
    return hashlib.sha256(json.dumps(shapes, sort_keys=True).encode()).hexdigest()


def save_aid_weights(model: AIDModel, path: str | Path) -> Path:
    """Writes the trained parameters and their metadata to ``path`` (.safetensors)."""
    path = Path(path)
    tensors = {n: p.detach().to("cpu").contiguous() for n, p in _trainable(model).items()}
    shapes = base_unet_shapes(model)
    metadata = {
        "aid_format_version": FORMAT_VERSION,
        "aid_config": model.config.to_json(),
        "aid_base_shapes": json.dumps(shapes),
        "aid_base_fingerprint": fingerprint(shapes),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:  # readable by others, never left half-written
        save_file(tensors, str(temporary), metadata=metadata)
    return path


def read_aid_metadata(path: str | Path) -> dict[str, str]:
    """The file's metadata, checked to be an AID weight file of a known format version."""
    path = Path(path)
    if not path.is_file():
        raise AIDWeightsError(f"AID weight file not found: {path}")
    try:
        check_safetensors_file(path)  # pickles and truncated files get their own errors
    except CheckpointError as error:
        raise AIDWeightsError(str(error)) from None
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata() or {}
    version = metadata.get("aid_format_version")
    if version is None:
        raise AIDWeightsError(
            f"{path} is not an AID weight file (no aid_format_version in its metadata); "
            "AID weights are written by save_aid_weights"
        )
    if version not in READABLE_VERSIONS:
        raise AIDWeightsError(
            f"{path} has AID format version {version}; this library reads "
            f"{' and '.join(READABLE_VERSIONS)}: update aid_model to read it"
        )
    return metadata


def read_aid_config(path: str | Path) -> AIDConfig:
    """The ``AIDConfig`` stored in an AID weight file."""
    return _stored_config(read_aid_metadata(path), Path(path))


def _stored_config(metadata: dict[str, str], path: Path) -> AIDConfig:
    try:
        return AIDConfig.from_json(metadata["aid_config"])
    except ValueError as error:  # a field of another version, a retired option turned on
        raise AIDWeightsError(f"{path}: {error}") from None


def load_aid_weights(model: AIDModel, path: str | Path) -> None:
    """Loads an AID weight file into ``model`` (built with the same config on the same base).

    Raises:
        AIDWeightsError: another base (names the first differing tensor), another config
            (names the fields), or tensors the model lacks / the file lacks / shaped
            differently.
    """
    path = Path(path)
    metadata = read_aid_metadata(path)
    _check_base(json.loads(metadata["aid_base_shapes"]), base_unet_shapes(model), path)
    stored = _stored_config(metadata, path)
    if stored != model.config:
        differing = {
            name: (getattr(stored, name), getattr(model.config, name))
            for name in stored.__dataclass_fields__
            if getattr(stored, name) != getattr(model.config, name)
        }
        raise AIDWeightsError(
            f"{path} was saved with another AIDConfig; differing fields (file, model): "
            f"{differing}. Build the model with read_aid_config(path) or attach_aid_from_file"
        )
    targets = _trainable(model)
    with safe_open(str(path), framework="pt") as file:
        tensors = _tensors_as_current_format(file, metadata["aid_format_version"])
        keys = set(tensors)
        unused = sorted(keys - set(targets))
        missing = sorted(set(targets) - keys)
        if unused or missing:
            raise AIDWeightsError(
                f"{path} does not match the model's trained parameters: "
                f"{len(unused)} tensors in the file are not used (first: {unused[:3]}), "
                f"{len(missing)} parameters are missing from the file (first: {missing[:3]})"
            )
        with torch.no_grad():
            for name, target in targets.items():
                tensor = tensors[name]()
                if tuple(tensor.shape) != tuple(target.shape):
                    raise AIDWeightsError(
                        f"{path}: tensor '{name}' has shape {list(tensor.shape)} in the file "
                        f"but {list(target.shape)} in the model"
                    )
                target.copy_(tensor.to(device=target.device, dtype=target.dtype))


def _tensors_as_current_format(file, version: str) -> dict[str, Callable[[], torch.Tensor]]:
    """{name: loader} of the file's tensors under this format's names (read lazily)."""
    names = file.keys()  # safe_open is not iterable
    tensors = {name: (lambda name=name: file.get_tensor(name)) for name in names}
    if version == FORMAT_VERSION:
        return tensors
    for gate_name in [name for name in tensors if name.endswith(_V1_GATE)]:
        attention = gate_name[: -len(_V1_GATE)]  # "…attn2."
        gate = tensors.pop(gate_name)
        for part in ("weight", "bias"):
            shared = tensors[f"{attention}to_out.0.{part}"]
            tensors[f"{attention}processor.to_out_mcondition.{part}"] = (
                lambda gate=gate, shared=shared: gate() * shared())
    return tensors


def attach_aid_from_file(components: SVDLike, path: str | Path) -> AIDModel:
    """``attach_aid`` with the file's config, then ``load_aid_weights``."""
    model = attach_aid(components, read_aid_config(path))
    try:
        load_aid_weights(model, path)
    except AIDWeightsError:
        model.detach()  # leave the caller's SVD as it was
        raise
    return model


def _check_base(stored: dict[str, list[int]], current: dict[str, list[int]], path: Path) -> None:
    if stored == current:
        return
    for name in sorted(set(stored) | set(current)):
        if stored.get(name) != current.get(name):
            raise AIDWeightsError(
                f"{path} was trained on another base UNet: tensor '{name}' has shape "
                f"{stored.get(name, 'absent')} in the file's base but "
                f"{current.get(name, 'absent')} in this one (base fingerprints "
                f"{fingerprint(stored)[:12]} vs {fingerprint(current)[:12]}); load it onto "
                "the SVD variant it was trained on"
            )
