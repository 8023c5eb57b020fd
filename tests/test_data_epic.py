"""Epic-Kitchens-100 on a tiny copy: narration CSV rows over a video and over RGB frames."""

from __future__ import annotations

import csv

import pytest
from test_data_decode import level_of, write_frames, write_video

from aid_model.data import ClipDataset, EmptyDatasetError, read_epic100
from aid_model.data.epic import rgb_frames_fps

COLUMNS = [
    "narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
    "stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun",
    "noun_class", "all_nouns", "all_noun_classes",
]  # fmt: skip


def row(narration_id, video_id, start, stop, narration):
    values = dict.fromkeys(COLUMNS, "")
    values.update(
        narration_id=narration_id,
        participant_id=video_id.split("_")[0],
        video_id=video_id,
        start_frame=str(start),
        stop_frame=str(stop),
        narration=narration,
    )
    return values


def write_csv(path, rows):
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def epic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("epic")
    write_video(root / "P01" / "videos" / "P01_01.MP4", 30, fps=25)
    # frame_0000000001.jpg … frame_0000000030.jpg: file n holds grey level of index n − 1
    write_frames(root / "P02" / "rgb_frames" / "P02_101", 30, "frame_{:010d}.jpg", first=1)
    annotations = root / "epic-kitchens-100-annotations"
    annotations.mkdir()
    write_csv(
        annotations / "EPIC_100_train.csv",
        [
            row("P01_01_0", "P01_01", 1, 12, "open door"),
            row("P01_01_1", "P01_01", 11, 28, "take plate"),
            row("P02_101_0", "P02_101", 5, 20, "wash  cup"),
            row("P03_01_0", "P03_01", 1, 30, "missing video"),
            row("P01_01_2", "P01_01", 20, 25, "too short a segment"),
        ],
    )
    write_csv(annotations / "EPIC_100_validation.csv", [row("P01_01_9", "P01_01", 3, 26, "stir")])
    return root


def test_segments_map_one_based_inclusive_frames_to_the_video(epic_root):
    dataset = ClipDataset(read_epic100(epic_root, "train"), size=16)
    assert [r.sample_id for r in dataset.records][:3] == [
        "epic100/P01_01_0",
        "epic100/P01_01_1",
        "epic100/P02_101_0",
    ]
    assert dataset.dropped == [("epic100/P03_01_0", "video missing")]
    first = dataset[0]  # CSV frames 1–12 = decoded frames 0–11, 12 frames: every one
    assert [level_of(f) for f in first["frames"]] == list(range(12))
    assert first["instruction"] == "open door" and first["fps"] == pytest.approx(25.0)
    second = dataset[1]  # frames 11–28 → decoded 10–27
    levels = [level_of(f) for f in second["frames"]]
    assert levels[0] == 10 and levels[-1] == 27 and second["num_reference_frames"] == 1


def test_rgb_frames_use_the_file_numbers_and_the_published_rate(epic_root):
    dataset = ClipDataset(read_epic100(epic_root, "train"), size=16)
    item = dataset[2]
    assert item["instruction"] == "wash cup"
    levels = [level_of(f) for f in item["frames"]]
    assert levels[0] == 4 and levels[-1] == 19  # files 5 … 20 hold indices 4 … 19
    assert item["fps"] == pytest.approx(50.0 * 11 / 15)
    assert rgb_frames_fps("P01_01") == 60.0 and rgb_frames_fps("P01_101") == 50.0


def test_short_segment_is_skipped_and_counted(epic_root):
    dataset = ClipDataset(read_epic100(epic_root, "train"), size=16)
    item = dataset[3]  # 6 frames < 12: replaced by the next one (wrapping to the first)
    assert item["sample_id"] == "epic100/P01_01_0"
    assert dataset.skipped.by_reason() == {"short": 1}


def test_validation_csv(epic_root):
    dataset = ClipDataset(read_epic100(epic_root, "validation"), size=16)
    assert len(dataset) == 1 and dataset[0]["instruction"] == "stir"


def test_missing_annotation_file_names_the_layout(tmp_path):
    with pytest.raises(EmptyDatasetError, match=r"EPIC_100_train\.csv") as caught:
        ClipDataset(read_epic100(tmp_path))
    assert "rgb_frames" in str(caught.value)
