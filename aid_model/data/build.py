"""``build_dataset(config)``: a dataset from a config dict, as the training and evaluation
configs give it."""

from __future__ import annotations

import inspect
from typing import Any

from aid_model.data.base import ClipDataset

# Options every dataset takes (ClipDataset's keyword arguments a loader passes through).
COMMON_OPTIONS = ("seed", "states_jsonl", "max_samples", "subset_seed")


def _registry() -> dict[str, type[ClipDataset]]:
    from aid_model.data.bridge import BridgeDataset
    from aid_model.data.epic import Epic100Dataset
    from aid_model.data.generic import GenericDataset
    from aid_model.data.ssv2 import SSv2Dataset
    from aid_model.data.ucf101 import UCF101Dataset

    return {
        "ssv2": SSv2Dataset,
        "bridge": BridgeDataset,
        "epic100": Epic100Dataset,
        "ucf101": UCF101Dataset,
        "generic": GenericDataset,
    }


DATASET_NAMES = ("ssv2", "bridge", "epic100", "ucf101", "generic")


def dataset_options(name: str) -> list[str]:
    """The config keys dataset ``name`` accepts (besides ``name``)."""
    cls = _registry()[name]
    own = [
        parameter.name
        for parameter in inspect.signature(cls.__init__).parameters.values()
        if parameter.kind is parameter.POSITIONAL_OR_KEYWORD
        or parameter.kind is parameter.KEYWORD_ONLY
    ]
    return [key for key in own if key != "self"] + list(COMMON_OPTIONS)


def build_dataset(config: dict[str, Any]) -> ClipDataset:
    """The dataset named by ``config["name"]`` ("ssv2", "bridge", "epic100", "ucf101",
    "generic"), built with the other keys as its options (root, split, num_frames, stride,
    size, num_reference_frames, states_jsonl, max_samples, seed, …).

    Raises ``ValueError`` for an unknown name or option, listing what is accepted.
    """
    if not isinstance(config, dict):
        raise TypeError(f"dataset config must be a dict, got {type(config).__name__}")
    options = dict(config)
    name = str(options.pop("name", "")).strip().lower()
    if name not in DATASET_NAMES:
        raise ValueError(
            f"dataset name must be one of {', '.join(DATASET_NAMES)}, got {config.get('name')!r}"
        )
    if "root" not in options:
        raise ValueError(f"dataset {name!r} needs 'root' (the dataset folder)")
    accepted = dataset_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"dataset {name!r} does not take option(s) {', '.join(unknown)}; it takes "
            f"{', '.join(accepted)}"
        )
    if isinstance(options.get("size"), list):
        options["size"] = tuple(options["size"])
    return _registry()[name](**options)
