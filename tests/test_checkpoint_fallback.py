"""A damaged newest checkpoint: resuming falls back to the previous one, saying so; a
checkpoint named explicitly is refused naming the file (never a raw torch error)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from test_train_support import SquareClips, tiny_config

from aid_model.train import build_config, train
from aid_model.train.checkpoint import (
    STATE_FILE,
    WEIGHTS_FILE,
    CheckpointStateError,
    read_resume_state,
    write_checkpoint,
)


def checkpoints(root, steps=(2, 4)):
    for step in steps:
        def write(folder, step=step):
            save_file({"x": torch.zeros(3)}, str(folder / WEIGHTS_FILE))
            torch.save({"step": step, "optimizer": {"lr": torch.ones(100)}}, folder / STATE_FILE)
        write_checkpoint(root, step, write)
    return root


def truncate(path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def test_a_truncated_newest_state_falls_back_to_the_previous_checkpoint(tmp_path):
    root = checkpoints(tmp_path / "checkpoints")
    truncate(root / "step_00000004" / STATE_FILE)
    said = []
    folder, state = read_resume_state("auto", root, said.append)
    assert folder.name == "step_00000002" and state["step"] == 2
    assert len(said) == 1
    assert str(root / "step_00000004" / STATE_FILE) in said[0]
    assert "falling back to the previous checkpoint" in said[0] and "step_00000002" in said[0]
    # A run's output folder is read the same way.
    assert read_resume_state(str(tmp_path), root, said.append)[0].name == "step_00000002"


def test_truncated_weights_count_as_a_damaged_checkpoint(tmp_path):
    root = checkpoints(tmp_path / "checkpoints")
    truncate(root / "step_00000004" / WEIGHTS_FILE, keep=40)
    said = []
    assert read_resume_state("auto", root, said.append)[0].name == "step_00000002"
    assert WEIGHTS_FILE in said[0]


def test_an_explicit_damaged_checkpoint_is_refused_naming_file_and_an_older_one(tmp_path):
    root = checkpoints(tmp_path / "checkpoints")
    truncate(root / "step_00000004" / STATE_FILE)
    with pytest.raises(CheckpointStateError) as error:
        read_resume_state(str(root / "step_00000004"), root)
    message = str(error.value)
    assert str(root / "step_00000004" / STATE_FILE) in message and "truncated" in message
    assert "step_00000002" in message


def test_when_every_checkpoint_is_damaged_the_oldest_error_is_raised(tmp_path):
    root = checkpoints(tmp_path / "checkpoints")
    for step in (2, 4):
        (root / f"step_{step:08d}" / STATE_FILE).write_bytes(b"garbage, not a zip")
    with pytest.raises(CheckpointStateError, match="step_00000002"):
        read_resume_state("auto", root, lambda message: None)


def test_training_resumes_from_the_previous_checkpoint(tmp_path, capsys):
    values = tiny_config(tmp_path, optim={"max_steps": 4}, checkpoint={"every": 2})
    train(build_config(values), dataset=SquareClips())
    truncate(tmp_path / "checkpoints" / "step_00000004" / STATE_FILE, keep=1000)
    capsys.readouterr()
    more = tiny_config(tmp_path, optim={"max_steps": 5}, checkpoint={"every": 2})
    result = train(build_config(more), resume="auto", dataset=SquareClips())
    out = capsys.readouterr().out
    assert "falling back to the previous checkpoint" in out and "step_00000002" in out
    assert result.trainer.step == 5
