"""Reading an AID weight file without a model: metadata, config, tensors, base check.

The part of ``aid_model.aid.weights`` that needs no diffusers, so that a host other than the
library (the ComfyUI nodes) reads the same files through the same checks. File format:
``aid_model.aid.weights``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from aid_model.aid.config import AIDConfig
from aid_model.safetensors_io import CheckpointError, check_safetensors_file

FORMAT_VERSION = "2"
# Format 1 scaled the MCondition branch by a scalar gate through SVD's shared output
# projection; format 2 gives the branch its own zero-initialised projection
# (mcondition_attention.py says why). gate·(W x + b) = (gate·W) x + gate·b: exact.
READABLE_VERSIONS = ("1", FORMAT_VERSION)
_V1_GATE = "processor.mcondition_gate"
# Tensor names of the base UNet inside a file: "unet.base." + the diffusers name.
BASE_PREFIX = "unet.base."


class AIDWeightsError(ValueError):
    """An AID weight file that does not fit the model or base it is loaded onto."""


def fingerprint(shapes: dict[str, list[int]]) -> str:
    """sha256 of a base's {tensor name: shape} (a short id to compare bases by)."""
    return hashlib.sha256(json.dumps(shapes, sort_keys=True).encode()).hexdigest()


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


def stored_config(metadata: dict[str, str], path: Path) -> AIDConfig:
    """The ``AIDConfig`` in a file's metadata (``read_aid_metadata``)."""
    try:
        return AIDConfig.from_json(metadata["aid_config"])
    except ValueError as error:  # a field of another version, a retired option turned on
        raise AIDWeightsError(f"{path}: {error}") from None


def read_aid_config(path: str | Path) -> AIDConfig:
    """The ``AIDConfig`` stored in an AID weight file."""
    return stored_config(read_aid_metadata(path), Path(path))


def tensors_as_current_format(file, version: str) -> dict[str, Callable[[], torch.Tensor]]:
    """{name: loader} of an open file's tensors under this format's names (read lazily)."""
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


def check_base(stored: dict[str, list[int]], current: dict[str, list[int]], path: Path) -> None:
    """Raises AIDWeightsError naming the first base tensor whose shape differs."""
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


@dataclass(frozen=True)
class AIDFile:
    """Everything in an AID weight file, read once.

    Attributes:
        path: where it was read from.
        config: its ``AIDConfig``.
        base_shapes: {diffusers base UNet tensor name: shape} of the base it was trained on.
        tensors: {name: tensor} under this format's names (format-1 gates converted).
    """

    path: Path
    config: AIDConfig
    base_shapes: dict[str, list[int]]
    tensors: dict[str, torch.Tensor]

    def base_tensors(self) -> dict[str, torch.Tensor]:
        """The base UNet tensors AID trained (the spatial cross-attentions), by diffusers
        name (``down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.weight``)."""
        return {name[len(BASE_PREFIX):]: tensor for name, tensor in self.tensors.items()
                if name.startswith(BASE_PREFIX) and ".processor." not in name}


def read_aid_file(path: str | Path) -> AIDFile:
    """Reads and checks an AID weight file (format, config) into memory."""
    path = Path(path)
    metadata = read_aid_metadata(path)
    config = stored_config(metadata, path)
    with safe_open(str(path), framework="pt") as file:
        loaders = tensors_as_current_format(file, metadata["aid_format_version"])
        tensors = {name: load() for name, load in loaders.items()}
    return AIDFile(path, config, json.loads(metadata["aid_base_shapes"]), tensors)
