"""The synthetic world as a torch dataset, on disk in the generic format, and its CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aid_model.cli import COMMAND_MODULES
from aid_model.cli import synthetic as synthetic_command
from aid_model.data import SAMPLE_KEYS, build_dataset
from aid_model.synthetic import SyntheticClipDataset, clip_seeds, generate_clip, write_dataset


def test_items_follow_the_sample_contract():
    dataset = SyntheticClipDataset(4, seed=10)
    sample = dataset[1]
    assert set(sample) == {*SAMPLE_KEYS, "skipped"} and sample["skipped"] == []
    frames = sample["frames"]
    assert frames.shape == (8, 3, 64, 64) and frames.dtype == torch.float32
    assert frames.min() >= -1 and frames.max() <= 1
    assert isinstance(sample["instruction"], str) and sample["instruction"]
    assert isinstance(sample["states"], list) and len(sample["states"]) == 4
    assert sample["num_reference_frames"] == 1 and sample["fps"] == 8.0
    # The frames are the clip's, scaled from uint8 to [−1, 1] with nothing else done.
    clip = dataset.clip(1)
    assert clip.seed == 11 and sample["sample_id"] == clip.sample_id
    back = ((frames + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(back, clip.frames)


def test_items_depend_only_on_split_seed_and_index():
    a, b = SyntheticClipDataset(5, seed=3), SyntheticClipDataset(8, seed=3)
    for index in (4, 0, 2):  # any reading order
        assert torch.equal(a[index]["frames"], b[index]["frames"])
        assert a[index]["states"] == b[index]["states"]
    assert not torch.equal(a[0]["frames"], a[1]["frames"])
    assert a[-1]["sample_id"] == a[4]["sample_id"]
    with pytest.raises(IndexError):
        a[5]


def test_splits_use_disjoint_seeds():
    train, heldout = clip_seeds("train", 0, 1000), clip_seeds("heldout", 0, 1000)
    assert not set(train) & set(heldout)
    assert SyntheticClipDataset(2, split="heldout").clip(0).seed == heldout[0]
    with pytest.raises(ValueError, match="inside the 'train' split"):
        clip_seeds("train", 999_999_999, 2)
    with pytest.raises(ValueError, match="unknown split"):
        SyntheticClipDataset(2, split="test")


def test_random_motion_items_have_no_words():
    sample = SyntheticClipDataset(2, random_motion=True)[0]
    assert sample["instruction"] == "" and sample["states"] == []
    assert sample["frames"].shape == (8, 3, 64, 64)
    assert "random" in sample["sample_id"]


def _read_annotations(folder: Path) -> list[dict]:
    """The generic format as a minimal reader sees it: rows, and each clip's PNG frames."""
    rows = []
    for line in (folder / "annotations.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        paths = sorted((folder / row["path"]).glob("*.png"))
        row["frames"] = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
        rows.append(row)
    return rows


def test_written_dataset_reads_back_identically(tmp_path):
    clips = [generate_clip(seed) for seed in range(5)] + [generate_clip(9, random_motion=True)]
    manifest = write_dataset(tmp_path, clips, preview_clips=3)
    assert manifest == tmp_path / "annotations.jsonl"
    rows = _read_annotations(tmp_path)
    assert len(rows) == len(clips)
    for row, clip in zip(rows, clips, strict=True):
        assert np.array_equal(row["frames"], clip.frames)  # PNG is lossless
        assert row["instruction"] == clip.instruction and row["states"] == clip.states
        assert row["sample_id"] == clip.sample_id and row["fps"] == 8.0
    truth = [json.loads(line) for line in (tmp_path / "world.jsonl").read_text().splitlines()]
    assert truth[0]["seed"] == 0 and np.allclose(truth[0]["trajectory"], clips[0].trajectory)
    assert truth[-1]["random_motion"] and truth[-1]["direction"] is None
    with Image.open(tmp_path / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.height > 3 * 64


def test_generic_loader_reads_the_same_items_as_the_memory_dataset(tmp_path):
    write_dataset(tmp_path, [generate_clip(seed) for seed in range(3, 7)], preview_clips=0)
    on_disk = build_dataset(
        {"name": "generic", "root": str(tmp_path), "num_frames": 8, "size": 64, "split": "test"}
    )
    in_memory = SyntheticClipDataset(4, seed=3)
    assert len(on_disk) == len(in_memory)
    for index in range(len(in_memory)):
        read, made = on_disk[index], in_memory[index]
        assert torch.equal(read["frames"], made["frames"])
        assert {key: read[key] for key in SAMPLE_KEYS if key != "frames"} == {
            key: made[key] for key in SAMPLE_KEYS if key != "frames"
        }


def main(argv: list[str]) -> int:
    """``python -m aid_model`` with only this command registered: the full parser imports
    every command's module, some of them heavy, which this test has no need to pay for."""
    assert "synthetic" in COMMAND_MODULES
    parser = argparse.ArgumentParser(prog="python -m aid_model")
    synthetic_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_the_same_dataset_twice(tmp_path, capsys):
    for name in ("a", "b"):
        argv = ["synthetic", "--out", str(tmp_path / name), "--num-clips", "3", "--seed", "7"]
        assert main([*argv, "--split", "heldout"]) == 0
    printed = capsys.readouterr().out
    assert "3 instructed clip(s), seeds 1000000007..1000000009" in printed
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))
    assert files_a == files_b and len([p for p in files_a if p.suffix == ".png"]) == 3 * 8 + 1
    for relative in files_a:
        a, b = tmp_path / "a" / relative, tmp_path / "b" / relative
        assert not a.is_file() or a.read_bytes() == b.read_bytes()
    rows = _read_annotations(tmp_path / "a")
    heldout = SyntheticClipDataset(10, split="heldout")
    assert np.array_equal(rows[0]["frames"], heldout.clip(7).frames)


def test_cli_random_motion_and_bad_arguments(tmp_path, capsys):
    argv = ["synthetic", "--out", str(tmp_path), "--num-clips", "2", "--random-motion"]
    assert main([*argv, "--preview-clips", "0"]) == 0
    rows = _read_annotations(tmp_path)
    assert [row["instruction"] for row in rows] == ["", ""]
    assert not (tmp_path / "contact_sheet.png").exists()
    assert main(["synthetic", "--out", str(tmp_path), "--num-clips", "0"]) == 2
    assert "--num-clips must be at least 1" in capsys.readouterr().err
