"""The generic format: videos or frame folders listed in a CSV or JSONL file."""

from __future__ import annotations

import json

import pytest
from test_data_decode import level_of, write_corrupt, write_frames, write_video

from aid_model.data import ClipDataset, EmptyDatasetError, read_generic


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("generic")
    write_video(root / "clips" / "a.mp4", 24, fps=8)
    write_frames(root / "frames" / "b", 16, "{:04d}.png")
    write_corrupt(root / "clips" / "broken.mp4")
    return root


def test_csv_rows_with_segments_states_and_frame_folders(media):
    (media / "annotations.csv").write_text(
        "path,instruction,start,end,states,fps\n"
        'clips/a.mp4,move the red square left,4,20,"red square at right|red square at left",\n'
        "frames/b,push the blue circle up,,,,10\n"
        "clips/a.mp4,another segment,0,16,,\n"
    )
    dataset = ClipDataset(read_generic(media), size=16, num_frames=8, stride=2, random_offset=False)
    assert [r.sample_id for r in dataset.records] == ["clips/a@4-20", "frames/b", "clips/a@0-16"]
    first = dataset[0]
    assert first["states"] == ["red square at right", "red square at left"]
    assert [level_of(f) for f in first["frames"]] == [4, 6, 8, 10, 12, 14, 16, 18]
    assert first["fps"] == pytest.approx(4.0)  # 8 fps video, stride 2
    folder = dataset[1]
    assert folder["states"] == [] and folder["fps"] == pytest.approx(5.0)  # 10 fps, stride 2
    assert [level_of(f) for f in folder["frames"]][:2] == [0, 2]


def test_jsonl_rows_ids_splits_and_missing_files(media, tmp_path):
    annotations = tmp_path / "data.jsonl"
    rows = [
        {"path": str(media / "clips" / "a.mp4"), "instruction": "x", "split": "train",
         "states": ["s1", "s2", "s3", "s4"], "sample_id": "demo/0"},
        {"path": str(media / "clips" / "a.mp4"), "instruction": "y", "split": "validation"},
        {"path": str(media / "clips" / "a.mp4"), "instruction": "z", "split": "validation"},
        {"path": "nowhere.mp4", "instruction": "gone", "split": "train"},
    ]  # fmt: skip
    annotations.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    train = ClipDataset(read_generic(annotations, "train"), size=16, num_frames=4)
    assert [r.sample_id for r in train.records] == ["demo/0"]
    assert train.dropped == [("nowhere", "video missing")]
    assert train[0]["states"] == ["s1", "s2", "s3", "s4"] and train.random_offset
    validation = ClipDataset(read_generic(annotations, "validation"), size=16, num_frames=4)
    ids = [r.sample_id for r in validation.records]
    assert len(set(ids)) == 2 and ids[1].endswith("#3") and not validation.random_offset
    everything = ClipDataset(read_generic(annotations), size=16, num_frames=4)
    assert len(everything) == 3 and everything.random_offset  # no split: all rows, training
    forced = ClipDataset(
        read_generic(annotations, "validation"), size=16, num_frames=4, random_offset=True
    )
    assert forced.split == "validation" and forced.random_offset  # the caller's word wins


def test_the_synthetic_world_layout_with_an_empty_instruction(media, tmp_path):
    # What aid_model.synthetic writes: frame folders, JSONL rows, random motion without text.
    write_frames(tmp_path / "clips" / "s0", 16, "frame_{:03d}.png")
    write_frames(tmp_path / "clips" / "s1", 16, "frame_{:03d}.png")
    rows = [
        {"path": "clips/s0", "instruction": "move the red square left",
         "states": ["a", "b"], "fps": 8.0, "sample_id": "s0"},
        {"path": "clips/s1", "instruction": "", "states": [], "fps": 8.0, "sample_id": "s1"},
    ]  # fmt: skip
    (tmp_path / "annotations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = ClipDataset(read_generic(tmp_path), num_frames=16, size=16)
    first, second = dataset[0], dataset[1]
    assert first["states"] == ["a", "b"] and first["fps"] == pytest.approx(8.0)
    assert second["instruction"] == "" and second["states"] == []
    assert [level_of(f) for f in second["frames"]] == list(range(16))


def test_corrupt_video_in_a_generic_dataset_is_skipped(media, tmp_path):
    annotations = tmp_path / "annotations.csv"
    annotations.write_text(
        f"path,instruction\n{media / 'clips' / 'broken.mp4'},a\n{media / 'clips' / 'a.mp4'},b\n"
    )
    dataset = ClipDataset(read_generic(tmp_path), size=16, num_frames=4, random_offset=False)
    assert dataset[0]["instruction"] == "b"
    assert dataset.skipped.by_reason() == {"unreadable": 1}


def test_bad_rows_raise_naming_file_and_line(tmp_path):
    annotations = tmp_path / "annotations.csv"
    annotations.write_text("path,instruction,start,end\n,go,,\nb.mp4,go,9,3\n")
    with pytest.raises(ValueError, match="line 2: empty path") as caught:
        ClipDataset(read_generic(tmp_path))
    assert "line 3: end (3) must be greater than start (9)" in str(caught.value)
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"path": "b.mp4", "text": "go"}\n')
    with pytest.raises(ValueError, match="line 1: no 'instruction'"):
        ClipDataset(read_generic(jsonl))
    annotations.write_text("video,text\na.mp4,go\n")
    with pytest.raises(ValueError, match="lacks the column 'path'"):
        ClipDataset(read_generic(tmp_path))


def test_no_annotation_file_is_an_error_naming_the_layout(tmp_path):
    with pytest.raises(EmptyDatasetError, match=r"annotations\.csv") as caught:
        ClipDataset(read_generic(tmp_path))
    assert "path, instruction" in str(caught.value)
