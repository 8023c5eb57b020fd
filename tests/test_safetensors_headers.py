"""Weight files judged by content: malformed safetensors headers named in one line, a
safetensors file named .ckpt read, and a pickle's conversion hint that runs as printed."""

from __future__ import annotations

import json
import shlex
import struct
import subprocess

import pytest
import torch
from safetensors.torch import load_file, save_file

from aid_model.safetensors_io import CheckpointError, check_safetensors_file, read_tensors


def with_header(path, header) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 64)


@pytest.mark.parametrize("header, expected", [
    ({"a": 5}, "the entry of tensor 'a' is 5"),
    ({"a": {"dtype": "F32", "shape": [2]}},
     "tensor 'a' lacks a valid dtype, shape or data_offsets"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, "tensor 'a' lacks"),
    ({"a": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}, "tensor 'a' lacks"),
    ({"__metadata__": {"k": 1}}, "__metadata__ is not a mapping of strings"),
])
def test_a_malformed_header_is_one_line_naming_the_file(tmp_path, header, expected):
    path = tmp_path / "w.safetensors"
    with_header(path, header)
    with pytest.raises(CheckpointError) as error:
        check_safetensors_file(path)
    message = str(error.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_a_safetensors_file_named_ckpt_is_read(tmp_path):
    path = tmp_path / "model.ckpt"
    save_file({"a": torch.arange(3.0)}, str(path))
    assert torch.equal(read_tensors(path)["a"], torch.arange(3.0))


@pytest.mark.parametrize("name", ["svd.safetensors", "my model's.ckpt"])
def test_the_conversion_hint_runs_and_never_overwrites_its_input(tmp_path, name):
    folder = tmp_path / "odd 'dir' $HOME"
    folder.mkdir()
    path = folder / name
    torch.save({"state_dict": {"a": torch.arange(4.0)}}, path)
    with pytest.raises(CheckpointError) as error:
        check_safetensors_file(path)
    message = str(error.value)
    assert "pickle" in message
    command = message.split("\n  ", 1)[1]
    assert shlex.split(command)[:2] == ["python", "-c"]
    subprocess.run(["bash", "-c", command.replace("python", shlex.quote(
        __import__("sys").executable), 1)], check=True, timeout=120)
    converted = sorted(p for p in folder.iterdir() if p != path)
    assert len(converted) == 1 and converted[0].suffix == ".safetensors"
    assert torch.equal(load_file(str(converted[0]))["a"], torch.arange(4.0))
    assert path.read_bytes()[:2] == b"PK"  # the input is still the pickle
