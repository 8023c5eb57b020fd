"""``build_dataset(config)``: a dataset from a config dict, as the training and evaluation
configs give it: the named reader finds the records, one ``ClipDataset`` reads them."""

from __future__ import annotations

import inspect
from typing import Any

from aid_model.data.base import ClipDataset
from aid_model.data.bridge import read_bridge
from aid_model.data.epic import read_epic100
from aid_model.data.generic import read_generic
from aid_model.data.ssv2 import read_ssv2
from aid_model.data.ucf101 import read_ucf101

READERS = {
    "ssv2": read_ssv2,
    "bridge": read_bridge,
    "epic100": read_epic100,
    "ucf101": read_ucf101,
    "generic": read_generic,
}
DATASET_NAMES = tuple(READERS)


def _keywords(function) -> list[str]:
    return [
        parameter.name
        for parameter in inspect.signature(function).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    ]


# ClipDataset's own options (the clip: frames, size, offsets, states, subsets).
CLIP_OPTIONS = tuple(key for key in _keywords(ClipDataset.__init__) if key not in ("self", "found"))


def dataset_options(name: str) -> list[str]:
    """The config keys dataset ``name`` accepts (besides ``name``): its reader's, then the
    clip options every dataset takes."""
    return _keywords(READERS[name]) + list(CLIP_OPTIONS)


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
    clip_options = {key: options.pop(key) for key in CLIP_OPTIONS if key in options}
    return ClipDataset(READERS[name](**options), **clip_options)
