"""AID weight files: safetensors with only what AID trains, and what it was trained on.

Writing, and loading into the library's ``AIDModel``; reading a file and its checks that
need no model live in ``weight_file`` (the ComfyUI nodes read files through it).

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

import json
import logging
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from aid_model.aid.model import AIDModel, SVDLike, attach_aid, base_unet_parameters
from aid_model.aid.model import trainable_parameters as _trainable
from aid_model.aid.weight_file import (
    FORMAT_VERSION,
    AIDWeightsError,
    check_base,
    check_config_against_header,
    fingerprint,
    json_field,
    read_aid_config,
    read_aid_metadata,
    stored_config,
    tensors_as_current_format,
    trained_with,
)
from aid_model.atomic import atomic_path
from aid_model.safetensors_io import read_shapes

logger = logging.getLogger(__name__)

__all__ = ["AIDWeightsError", "attach_aid_from_file", "base_unet_shapes",
           "check_config_against_header", "check_text_encoder", "fingerprint",
           "load_aid_weights", "read_aid_config", "read_aid_metadata", "save_aid_weights",
           "trained_with"]

def base_unet_shapes(model: AIDModel) -> dict[str, list[int]]:
    """{name: shape} of the base UNet's parameters and buffers (AID parts excluded)."""
    shapes = {n: list(p.shape) for n, p in base_unet_parameters(model).items()}
    shapes.update({n: list(b.shape) for n, b in model.unet.base.named_buffers()})
    return dict(sorted(shapes.items()))


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


def load_aid_weights(model: AIDModel, path: str | Path) -> None:
    """Loads an AID weight file into ``model`` (built with the same config on the same base).

    Raises:
        AIDWeightsError: another base (names the first differing tensor), another config
            (names the fields), or tensors the model lacks / the file lacks / shaped
            differently.
    """
    path = Path(path)
    metadata = read_aid_metadata(path)
    stored = stored_config(metadata, path)
    check_config_against_header(stored, read_shapes(path), path)
    check_base(json_field(metadata, "aid_base_shapes", path), base_unet_shapes(model), path)
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
        tensors = tensors_as_current_format(file, metadata["aid_format_version"])
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


# --- what it was trained with ---------------------------------------------------------------


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
