"""Something-Something v2 on a tiny copy of its layout; the sample contract and skipping."""

from __future__ import annotations

import json

import pytest
import torch
from test_data_decode import level_of, write_corrupt, write_video

from aid_model.data import SAMPLE_KEYS, ClipDataset, EmptyDatasetError, collate_clips, read_ssv2
from aid_model.data.ssv2 import fill_template, ssv2_instruction

TRAIN = [
    {
        "id": "101",
        "label": "putting cup on table",
        "template": "Putting [something] on [something]",
        "placeholders": ["cup", "table"],
    },
    {
        "id": "102",
        "label": "putting 3 pens onto book",
        "template": "Putting [number of] [something] onto [something]",
        "placeholders": ["3", "pens", "book"],
    },
    {  # corrupt video
        "id": "103",
        "label": "pushing box from left to right",
        "template": "Pushing [something] from left to right",
        "placeholders": ["box"],
    },
    {  # no video file at all
        "id": "104",
        "label": "opening drawer",
        "template": "Opening [something]",
        "placeholders": ["drawer"],
    },
    {
        "id": "105",
        "label": "lifting a bottle up",
        "template": "Lifting [something] up",
        "placeholders": ["a bottle"],
    },
]
VALIDATION = [
    {"id": str(200 + i), "label": f"x {i}", "template": "Moving [something] down",
     "placeholders": [f"thing {i}"]}
    for i in range(4)
]  # fmt: skip


@pytest.fixture(scope="module")
def ssv2_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssv2")
    (root / "labels").mkdir()
    (root / "labels" / "something-something-v2-train.json").write_text(json.dumps(TRAIN))
    (root / "labels" / "something-something-v2-validation.json").write_text(json.dumps(VALIDATION))
    videos = root / "20bn-something-something-v2"
    for entry in TRAIN + VALIDATION:
        if entry["id"] == "103":
            write_corrupt(videos / "103.webm")
        elif entry["id"] != "104":
            write_video(videos / f"{entry['id']}.webm", 23)
    return root


def test_instruction_is_the_template_with_the_objects_filled_in():
    assert fill_template("Putting [something] on [something]", ["cup", "table"]) == (
        "Putting cup on table"
    )
    entry = TRAIN[1]
    assert ssv2_instruction(entry) == "Putting 3 pens onto book"
    broken = {"id": "9", "template": "Moving [something]", "placeholders": [], "label": "moving x"}
    assert ssv2_instruction(broken) == "moving x"  # counts disagree: the label text
    with pytest.raises(ValueError, match="1 slot"):
        fill_template("Moving [something]", [])


def test_items_follow_the_sample_contract(ssv2_root):
    dataset = ClipDataset(read_ssv2(ssv2_root, "train"), size=16)
    assert len(dataset) == 4  # 104 has no video
    assert dataset.dropped == [("ssv2/104", "video missing")]
    item = dataset[0]
    assert set(SAMPLE_KEYS) <= set(item)
    assert item["frames"].shape == (12, 3, 16, 16) and item["frames"].dtype == torch.float32
    assert item["frames"].min() >= -1.0 and item["frames"].max() <= 1.0
    assert item["instruction"] == "Putting cup on table"
    assert item["states"] == [] and item["num_reference_frames"] == 2
    assert item["sample_id"] == "ssv2/101"
    # 12 frames spread over 23 at 12 fps: 22 / 11 = 2 frames apart → 6 fps
    assert item["fps"] == pytest.approx(6.0)
    assert [level_of(frame) for frame in item["frames"]] == list(range(0, 23, 2))


def test_corrupt_video_is_skipped_counted_and_reported(ssv2_root):
    dataset = ClipDataset(read_ssv2(ssv2_root, "train"), size=16)
    ids = [record.sample_id for record in dataset.records]
    corrupt = ids.index("ssv2/103")
    item = dataset[corrupt]
    assert item["sample_id"] == ids[corrupt + 1]  # replaced by the next readable sample
    assert item["skipped"] == []  # read in this process: counted directly
    assert dataset.skipped.count == 1
    assert dataset.skipped.by_reason() == {"unreadable": 1}
    assert "ssv2/103" in dataset.skip_summary() and "1 of 4" in dataset.skip_summary()
    dataset[corrupt]  # skipped again in the same epoch: still one sample
    assert dataset.skipped.count == 1
    dataset.set_epoch(1)
    assert dataset.skipped.count == 0 and "no samples skipped" in dataset.skip_summary()


def test_batches_stack_frames_and_keep_strings_as_lists(ssv2_root):
    dataset = ClipDataset(read_ssv2(ssv2_root, "train"), size=16)
    batch = collate_clips([dataset[0], dataset[1]])
    assert batch["frames"].shape == (2, 12, 3, 16, 16)
    assert batch["fps"].dtype == torch.float32 and batch["fps"].shape == (2,)
    assert batch["num_reference_frames"].dtype == torch.long
    assert batch["num_reference_frames"].tolist() == [2, 2]
    assert batch["instruction"] == ["Putting cup on table", "Putting 3 pens onto book"]
    assert batch["sample_id"] == ["ssv2/101", "ssv2/102"] and batch["states"] == [[], []]


def test_validation_split_first_samples_for_evaluation(ssv2_root):
    dataset = ClipDataset(read_ssv2(ssv2_root, "val"), size=16, max_samples=3)
    assert dataset.split == "validation" and not dataset.random_offset
    assert [r.sample_id for r in dataset.records] == ["ssv2/200", "ssv2/201", "ssv2/202"]
    assert dataset[2]["instruction"] == "Moving thing 2 down"


def test_missing_videos_folder_is_an_error_naming_the_layout(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "something-something-v2-train.json").write_text("[]")
    with pytest.raises(EmptyDatasetError, match="20bn-something-something-v2") as caught:
        ClipDataset(read_ssv2(tmp_path, "train"))
    assert str(tmp_path) in str(caught.value)
    with pytest.raises(EmptyDatasetError, match=r"something-something-v2-validation\.json"):
        ClipDataset(read_ssv2(tmp_path, "validation"))


def test_labels_without_any_present_video_is_an_empty_dataset_error(ssv2_root, tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([{"id": "999", "template": "x", "placeholders": []}]))
    with pytest.raises(EmptyDatasetError, match="no samples found") as caught:
        ClipDataset(read_ssv2(ssv2_root, labels_json=labels))
    assert "ssv2/999" in str(caught.value) and "Expected layout" in str(caught.value)


def test_a_dataset_of_only_unreadable_videos_fails_naming_the_root(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "something-something-v2-train.json").write_text(json.dumps(TRAIN[:1]))
    write_corrupt(tmp_path / "videos" / "101.webm")
    dataset = ClipDataset(read_ssv2(tmp_path), size=16)
    with pytest.raises(RuntimeError, match="could not be read") as caught:
        dataset[0]
    assert str(tmp_path) in str(caught.value) and "ssv2/101" in str(caught.value)
