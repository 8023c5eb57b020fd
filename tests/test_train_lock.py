"""One training per output folder: a second run is refused naming the first, a stale lock
(its process dead) is taken over saying so, the lock goes when the run ends, also on errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from test_train_support import SquareClips, tiny_config

from aid_model.train import build_config, train
from aid_model.train.lock import LOCK_FILE, RunLock, RunLockedError


def write_lock(folder, pid: int, host: str | None = None, started: str = "2025-01-02 03:04:05"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_FILE).write_text(json.dumps(
        {"pid": pid, "host": host or socket.gethostname(), "started": started}))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_lock_is_refused_naming_the_first(tmp_path):
    with RunLock(tmp_path):
        owner = json.loads((tmp_path / LOCK_FILE).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(RunLockedError) as error:
            RunLock(tmp_path).acquire()
        message = str(error.value)
        assert f"pid {os.getpid()}" in message and owner["started"] in message
        assert str(tmp_path) in message and "\n" not in message
    assert not (tmp_path / LOCK_FILE).exists()  # released


def test_a_stale_lock_is_taken_over_with_a_message(tmp_path):
    pid = dead_pid()
    write_lock(tmp_path, pid)
    said = []
    with RunLock(tmp_path, say=said.append):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert len(said) == 1 and "stale" in said[0] and f"pid {pid}" in said[0]
    assert not list(tmp_path.glob(".*stale*"))


def test_a_lock_of_another_host_is_never_taken_over(tmp_path):
    write_lock(tmp_path, dead_pid(), host="elsewhere.example")
    with pytest.raises(RunLockedError, match=r"on host elsewhere\.example.*delete the lock"):
        RunLock(tmp_path).acquire()


def test_an_unreadable_lock_is_refused_not_ignored(tmp_path):
    (tmp_path / LOCK_FILE).write_text("")
    with pytest.raises(RunLockedError, match="does not name its owner"):
        RunLock(tmp_path).acquire()


def test_a_training_into_a_folder_in_use_stops_before_writing(tmp_path):
    run = tmp_path / "run"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(run, sleeper.pid)
        with pytest.raises(RunLockedError, match=f"pid {sleeper.pid}"):
            train(build_config(tiny_config(run)), dataset=SquareClips())
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not (run / "resolved_config.json").exists()
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == sleeper.pid  # not ours to remove


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    run = tmp_path / "run"
    broken = tmp_path / "svd.safetensors"
    broken.write_bytes(b"not a checkpoint at all")
    values = tiny_config(run, model={"svd": str(broken)})
    with pytest.raises(ValueError, match=r"svd\.safetensors"):
        train(build_config(values), dataset=SquareClips())
    assert (run / "resolved_config.json").exists()  # it got the lock and started
    assert not (run / LOCK_FILE).exists()
