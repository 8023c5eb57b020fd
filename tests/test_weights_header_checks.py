"""A crafted AID weight file cannot make the builder allocate: the config in its metadata is
checked against its tensors' shapes (header only) before anything is built."""

from __future__ import annotations

import json
import time

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_aid_weights import CONFIG, tiny_unet, trained

from aid_model.aid import AIDWeightsError, attach_aid, attach_aid_from_file, save_aid_weights
from aid_model.aid.model import has_aid_attached


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("aid") / "aid.safetensors"
    return save_aid_weights(trained(attach_aid(tiny_unet(), CONFIG)), path)


def with_config(saved, tmp_path, **changes):
    """A copy of the file whose aid_config has ``changes`` (the tensors are untouched)."""
    with safe_open(str(saved), framework="pt") as file:
        metadata = dict(file.metadata())
    metadata["aid_config"] = json.dumps({**json.loads(metadata["aid_config"]), **changes})
    path = tmp_path / "crafted.safetensors"
    save_file(load_file(str(saved)), str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("key, value, file_value", [
    ("queries_per_frame", 10**9, 4),        # asked for 1.5 TB before the check
    ("num_frames", 100_000, 3),
    ("dqformer_layers", 10**6, 1),
    ("dqformer_width", 2**20, 32),
    ("adapter_ratio", 1.0, 0.25),
    ("without_sa", True, False),
    ("without_states", True, False),
])
def test_a_config_its_tensors_contradict_is_refused_before_building(saved, tmp_path, key,
                                                                      value, file_value):
    crafted = with_config(saved, tmp_path, **{key: value})
    components = tiny_unet()
    started = time.perf_counter()
    with pytest.raises(AIDWeightsError) as error:
        attach_aid_from_file(components, crafted)
    message = str(error.value)
    assert "\n" not in message and str(crafted) in message
    assert f"{key}={value!r}" in message and f"{key}={file_value!r}" in message
    assert time.perf_counter() - started < 5
    assert not has_aid_attached(components.unet)  # nothing was built onto the caller's SVD


def test_heads_that_do_not_divide_the_file_width_are_named(saved, tmp_path):
    crafted = with_config(saved, tmp_path, dqformer_heads=3)
    with pytest.raises(AIDWeightsError, match=r"dqformer_heads=3.*a divisor of 32"):
        attach_aid_from_file(tiny_unet(), crafted)


def test_an_honest_file_still_loads(saved):
    assert attach_aid_from_file(tiny_unet(), saved).config == CONFIG
