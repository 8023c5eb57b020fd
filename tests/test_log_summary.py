"""The training-log summary that docs/results.md's loss and time figures come from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.log_summary import block_means, step_times, summarise, table


def write_log(folder: Path, losses: list[float], times: list[float]) -> Path:
    folder.mkdir(parents=True)
    lines = [json.dumps({"step": step, "loss": loss, "lr": 1e-4, "time": time})
             for step, (loss, time) in enumerate(zip(losses, times, strict=True), start=1)]
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_block_means_group_steps_by_number():
    records = [{"step": s, "loss": float(s)} for s in range(1, 6)]
    assert block_means(records, 2) == [1.5, 3.5, 5.0]
    with pytest.raises(ValueError, match="block 0"):
        block_means(records, 0)


def test_step_times_leave_out_a_resume_gap():
    records = [{"step": 1, "time": 0.0}, {"step": 2, "time": 1.5},
               {"step": 3, "time": 500.0}, {"step": 4, "time": 502.0}]
    assert step_times(records) == [1.5, 2.0]


def test_the_table_compares_each_run_with_the_first(tmp_path):
    first = write_log(tmp_path / "full", [1.0, 1.0, 0.5, 0.5], [0, 1, 2, 3])
    second = write_log(tmp_path / "ablated", [1.1, 1.1, 0.5], [0, 2, 4])
    text = table([summarise(first, 2), summarise(second, 2)], 2)
    assert "| full | 1.0000 | 0.5000 | 4 | 3 | 1.00 |" in text
    assert "| ablated | 1.1000 (+10.0 %) | 0.5000 (+0.0 %) | 3 | 4 | 2.00 |" in text


def test_the_command_names_a_folder_without_a_log(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run([sys.executable, "-m", "lab.log_summary",
                             str(tmp_path / "empty")], capture_output=True, text=True)
    assert result.returncode != 0
    assert "empty/log.jsonl: no training steps logged" in result.stderr
