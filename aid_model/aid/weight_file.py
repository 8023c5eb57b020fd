"""Reading an AID weight file without a model: metadata, config, tensors, and its checks.

The part of ``aid_model.aid.weights`` that needs no diffusers, so that a host other than the
library (the ComfyUI nodes) reads the same files through the same checks. File format:
``aid_model.aid.weights``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from aid_model.aid.adapters import bottleneck_width
from aid_model.aid.config import AIDConfig
from aid_model.safetensors_io import CheckpointError, check_safetensors_file, read_shapes

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


def json_field(metadata: dict[str, str], key: str, path: Path):
    """A metadata entry read as JSON, or an AIDWeightsError naming the file and the key."""
    try:
        return json.loads(metadata[key])
    except (KeyError, json.JSONDecodeError) as error:
        raise AIDWeightsError(
            f"{path}: metadata {key!r} is missing or not JSON ({error}); the file is damaged "
            "or was not written by save_aid_weights") from None


# --- the config against the header, before building -----------------------------------------

_LAYER = re.compile(r"^dqformer\.(multimodal|decomposed)_layers\.(\d+)\.")
_ADAPTERS = (("spatial_adapter", "without_sa", "use_sa"),
             ("short_term_adapter", "without_sta", "use_sta"),
             ("long_term_adapter", "without_lta", "use_lta"))


def check_config_against_header(config: AIDConfig, shapes: dict[str, tuple[int, ...]],
                                path: str | Path) -> None:
    """Raises AIDWeightsError (the file, the config key, both values) when a size in the
    file's ``aid_config`` disagrees with its tensors' shapes (read from the header only).

    Every size that decides how much the builder allocates is checked: the DQFormer's
    queries (num_frames × queries_per_frame × width), its width and layer count, which
    parts exist, and the adapters' bottleneck widths (adapter_ratio).
    """
    path = Path(path)

    def refuse(key: str, config_value, file_value, evidence: str) -> AIDWeightsError:
        return AIDWeightsError(
            f"{path}: its aid_config has {key}={config_value!r} but its tensors say "
            f"{key}={file_value!r} ({evidence}); the file is damaged or its metadata was "
            "edited: refusing to build a model from it"
        )

    parts = {
        "without_mcondition": any(name.startswith("dqformer.") for name in shapes),
        "without_me": any(name.startswith("dqformer.multimodal_layers.") for name in shapes),
        "without_de": "dqformer.queries" in shapes,
        "without_states": any(".state_attention." in name for name in shapes),
    }
    wanted = {"without_mcondition": config.use_mcondition, "without_me": config.use_me,
              "without_de": config.use_de, "without_states": config.use_states}
    for key, present in parts.items():
        if wanted[key] != present:
            raise refuse(key, getattr(config, key), not present,
                         "tensors of that part are " + ("present" if present else "absent"))
    if "dqformer.queries" in shapes:
        queries = shapes["dqformer.queries"]
        if len(queries) != 3:
            raise refuse("queries_per_frame", config.queries_per_frame, None,
                         f"tensor 'dqformer.queries' has shape {list(queries)}, not (T, N, width)")
        for key, value in zip(("num_frames", "queries_per_frame"), queries[:2], strict=True):
            if getattr(config, key) != value:
                raise refuse(key, getattr(config, key), value,
                             f"tensor 'dqformer.queries' has shape {list(queries)}")
    layers = {int(m.group(2)) for m in map(_LAYER.match, shapes) if m}
    if config.use_mcondition and max(layers, default=-1) + 1 != config.dqformer_layers:
        raise refuse("dqformer_layers", config.dqformer_layers, max(layers, default=-1) + 1,
                     "counted from the dqformer.*_layers.N tensors")
    norms = [(name, shape) for name, shape in shapes.items()
             if _LAYER.match(name) and name.endswith(".self_attention.norm.weight")]
    if norms:
        name, shape = norms[0]
        width = shape[0]
        if config.dqformer_width is not None and config.dqformer_width != width:
            raise refuse("dqformer_width", config.dqformer_width, width,
                         f"tensor '{name}' has shape {list(shape)}")
        if width % config.dqformer_heads:
            raise refuse("dqformer_heads", config.dqformer_heads, f"a divisor of {width}",
                         f"the DQFormer width from tensor '{name}'")
    for kind, key, use in _ADAPTERS:
        downs = [(n, s) for n, s in shapes.items() if n.endswith(f".{kind}.down.weight")]
        if getattr(config, use) != bool(downs):
            raise refuse(key, getattr(config, key), not downs,
                         f"{kind} tensors are {'present' if downs else 'absent'}")
        for name, shape in downs:
            hidden, channels = shape
            if bottleneck_width(channels, config.adapter_ratio) != hidden:
                raise refuse("adapter_ratio", config.adapter_ratio, round(hidden / channels, 6),
                             f"tensor '{name}' has shape {list(shape)}")
            if kind == "long_term_adapter" and hidden % config.adapter_attention_heads:
                raise refuse("adapter_attention_heads", config.adapter_attention_heads,
                             f"a divisor of {hidden}", f"tensor '{name}' has shape {list(shape)}")


# --- what it was trained with ---------------------------------------------------------------


def trained_with(path: str | Path, metadata: dict[str, str] | None = None) -> dict | None:
    """The file's ``aid_trained_with`` record, or None for files written before it."""
    metadata = read_aid_metadata(path) if metadata is None else metadata
    if "aid_trained_with" not in metadata:
        return None
    return json_field(metadata, "aid_trained_with", Path(path))


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
    check_config_against_header(config, read_shapes(path), path)
    with safe_open(str(path), framework="pt") as file:
        loaders = tensors_as_current_format(file, metadata["aid_format_version"])
        tensors = {name: load() for name, load in loaders.items()}
    return AIDFile(path, config, json_field(metadata, "aid_base_shapes", path), tensors)
