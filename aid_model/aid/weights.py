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

import json
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
    fingerprint,
    read_aid_config,
    read_aid_metadata,
    stored_config,
    tensors_as_current_format,
)
from aid_model.atomic import atomic_path

__all__ = ["AIDWeightsError", "attach_aid_from_file", "base_unet_shapes", "fingerprint",
           "load_aid_weights", "read_aid_config", "read_aid_metadata", "save_aid_weights"]


def base_unet_shapes(model: AIDModel) -> dict[str, list[int]]:
    """{name: shape} of the base UNet's parameters and buffers (AID parts excluded)."""
    shapes = {n: list(p.shape) for n, p in base_unet_parameters(model).items()}
    shapes.update({n: list(b.shape) for n, b in model.unet.base.named_buffers()})
    return dict(sorted(shapes.items()))


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


def load_aid_weights(model: AIDModel, path: str | Path) -> None:
    """Loads an AID weight file into ``model`` (built with the same config on the same base).

    Raises:
        AIDWeightsError: another base (names the first differing tensor), another config
            (names the fields), or tensors the model lacks / the file lacks / shaped
            differently.
    """
    path = Path(path)
    metadata = read_aid_metadata(path)
    check_base(json.loads(metadata["aid_base_shapes"]), base_unet_shapes(model), path)
    stored = stored_config(metadata, path)
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


def attach_aid_from_file(components: SVDLike, path: str | Path) -> AIDModel:
    """``attach_aid`` with the file's config, then ``load_aid_weights``."""
    model = attach_aid(components, read_aid_config(path))
    try:
        load_aid_weights(model, path)
    except AIDWeightsError:
        model.detach()  # leave the caller's SVD as it was
        raise
    return model
