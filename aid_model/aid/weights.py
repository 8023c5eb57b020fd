"""AID weight files: safetensors with only what AID trains, and what it was trained on.

Tensors: ``trainable_parameters`` (adapters, MCondition attention, DQFormer, and the base's
spatial cross-attention, which training changes), named as in ``AIDModel``. Metadata
(strings):

    aid_format_version   "2" ("1": MCondition through a scalar gate; converted on load)
    aid_config           AIDConfig as JSON
    aid_base_shapes      JSON {base UNet tensor name: shape}, the base it was trained on
    aid_base_fingerprint sha256 of aid_base_shapes (a short id to compare bases by)
    aid_trained_with     JSON {"unet_attention_heads": [...], "unet_head_channels": c,
                         "text_encoder": text_encoder.identity record or absent}; files
                         written before it was added load as before

Before anything is built, the config's sizes are checked against the tensors' shapes in the
header (a crafted config cannot make the builder allocate what the file does not hold).
Loading checks the base (naming the first tensor that differs), the config (fields of
retired experiments load when off, ``AIDConfig.from_json``), that the file's tensors and the
model's trained parameters are the same set with the same shapes, and warns when the UNet's
attention heads differ from those it was trained with; ``check_text_encoder`` compares the
text encoder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from aid_model.aid.adapters import bottleneck_width
from aid_model.aid.config import AIDConfig
from aid_model.aid.model import AIDModel, SVDLike, attach_aid, base_unet_parameters
from aid_model.aid.model import trainable_parameters as _trainable
from aid_model.atomic import atomic_path
from aid_model.safetensors_io import CheckpointError, check_safetensors_file, read_shapes

logger = logging.getLogger(__name__)

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


def unet_heads(model: AIDModel) -> dict:
    """{"unet_attention_heads": heads per block, "unet_head_channels": channels per head}
    of the base UNet (what ``--unet-head-channels`` chose when it was loaded)."""
    config = model.unet.base.config
    channels = list(config.block_out_channels)
    heads = config.num_attention_heads
    heads = [heads] * len(channels) if isinstance(heads, int) else list(heads)
    return {"unet_attention_heads": heads, "unet_head_channels": channels[0] // heads[0]}


def save_aid_weights(model: AIDModel, path: str | Path, text_encoder=None) -> Path:
    """Writes the trained parameters and their metadata to ``path`` (.safetensors).

    Args:
        text_encoder: the ``TextEncoder`` trained with, or its identity record
            (``text_encoder.identity``); recorded so that loading can tell another one.
    """
    path = Path(path)
    tensors = {n: p.detach().to("cpu").contiguous() for n, p in _trainable(model).items()}
    shapes = base_unet_shapes(model)
    trained_with = unet_heads(model)
    if text_encoder is not None:
        if not isinstance(text_encoder, dict):
            from aid_model.text_encoder.identity import text_encoder_identity

            text_encoder = text_encoder_identity(text_encoder)
        trained_with["text_encoder"] = text_encoder
    metadata = {
        "aid_format_version": FORMAT_VERSION,
        "aid_config": model.config.to_json(),
        "aid_base_shapes": json.dumps(shapes),
        "aid_base_fingerprint": fingerprint(shapes),
        "aid_trained_with": json.dumps(trained_with),
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
    stored = _stored_config(metadata, path)
    check_config_against_header(stored, read_shapes(path), path)
    _check_base(_json_field(metadata, "aid_base_shapes", path), base_unet_shapes(model), path)
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
    _check_unet_heads(trained_with(path, metadata), unet_heads(model), path)


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
    """``attach_aid`` with the file's config, then ``load_aid_weights``; the config is
    checked against the tensors' shapes in the header before anything is built."""
    path = Path(path)
    config = read_aid_config(path)
    check_config_against_header(config, read_shapes(path), path)
    model = attach_aid(components, config)
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


def _json_field(metadata: dict[str, str], key: str, path: Path):
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
    return _json_field(metadata, "aid_trained_with", Path(path))


def _check_unet_heads(record: dict | None, current: dict, path: Path) -> None:
    if record is None or "unet_attention_heads" not in record:
        return
    if record["unet_attention_heads"] != current["unet_attention_heads"]:
        logger.warning(
            "%s was trained on a UNet with %s attention heads (unet_head_channels %s), this "
            "one has %s (unet_head_channels %s): its outputs will be wrong; load the SVD with "
            "--unet-head-channels %s", path, record["unet_attention_heads"],
            record.get("unet_head_channels"), current["unet_attention_heads"],
            current["unet_head_channels"], record.get("unet_head_channels"))


def check_text_encoder(path: str | Path, text_encoder) -> None:
    """Compares the text encoder with the one the AID file records (nothing for older files).

    Raises AIDWeightsError for another width (its embeddings cannot enter the DQFormer);
    warns (one line) for another vocabulary or token embedding of the same width, which
    runs but conditions on the wrong embeddings.
    """
    path = Path(path)
    record = (trained_with(path) or {}).get("text_encoder")
    if record is None or text_encoder is None:
        return
    from aid_model.text_encoder.identity import same_embedding, text_encoder_identity

    current = text_encoder_identity(text_encoder) if not isinstance(text_encoder, dict) \
        else text_encoder
    if record["width"] != current["width"]:
        raise AIDWeightsError(
            f"{path} was trained with a text encoder of width {record['width']}, this one has "
            f"width {current['width']}: its embeddings cannot be used; load the text encoder "
            "it was trained with (OpenCLIP ViT-H/14: 1024)"
        )
    if record["vocab_size"] != current["vocab_size"]:
        logger.warning(
            "%s was trained with a text encoder of vocabulary %d, this one has %d: the "
            "instructions will be read wrongly; load the text encoder it was trained with",
            path, record["vocab_size"], current["vocab_size"])
    elif not same_embedding(record, current):
        logger.warning(
            "%s was trained with another text encoder of the same size (its token embedding "
            "differs): the instructions will be read differently; load the text encoder it "
            "was trained with", path)
