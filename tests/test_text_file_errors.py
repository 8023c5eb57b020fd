"""Binary or wrongly encoded text inputs (annotation CSVs, jobs CSVs, configs) are named in a
one-line error, never a bare UnicodeDecodeError."""

from __future__ import annotations

import pytest

from aid_model.data.generic import read_rows
from aid_model.train.config import ConfigError, read_config_file
from comfy_batch.jobs import JobsError, read_jobs

BINARY = b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary"


def test_a_binary_annotation_csv_is_named(tmp_path):
    path = tmp_path / "clips.csv"
    path.write_bytes(b"path,instruction\n" + BINARY)
    with pytest.raises(ValueError, match=rf"{path} is not UTF-8 text \(byte 0x") as error:
        list(read_rows(path))
    assert not isinstance(error.value, UnicodeDecodeError)


def test_a_binary_jobs_csv_is_named(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_bytes(BINARY)
    with pytest.raises(JobsError, match=rf"jobs file {path} is not UTF-8 text"):
        read_jobs(path, {})


def test_a_binary_config_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes(BINARY)
    with pytest.raises(ConfigError, match=rf"{path} is not UTF-8 text"):
        read_config_file(path)


def test_a_binary_state_dataset_csv_is_named(tmp_path):
    from aid_model.states.annotate import read_csv_samples

    path = tmp_path / "frames.csv"
    path.write_bytes(b"image,instruction\n" + BINARY)
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        read_csv_samples(path)
