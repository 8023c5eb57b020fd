"""BridgeData on a tiny copy of its raw layout: trajectories, lang.txt, the 80/20 split."""

from __future__ import annotations

import pytest
from test_data_decode import level_of, write_frames

from aid_model.data import ClipDataset, EmptyDatasetError, read_bridge
from aid_model.data.bridge import in_train_split, read_instruction

SCENES = (
    "toykitchen1/put_pot_in_sink/00/2023-03-01_10-00-00",
    "tabletop/pick_corn/01/2023-03-02_11-30-00",
)


@pytest.fixture(scope="module")
def bridge_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bridge") / "raw" / "bridge_data_v2"
    for scene in SCENES:
        for number in range(5):
            trajectory = root / scene / "raw" / "traj_group0" / f"traj{number}"
            write_frames(trajectory / "images0", 20)
            if number == 4:
                continue  # no lang.txt: no instruction, left out
            (trajectory / "lang.txt").write_text(
                f"put the pot in the sink {number}\nconfidence: 1\n"
            )
    return root


def test_instruction_is_the_first_line_without_metadata(tmp_path):
    lang = tmp_path / "lang.txt"
    lang.write_text("\n  Put the  corn in the pot \nconfidence: 0.9\n")
    assert read_instruction(lang) == "Put the corn in the pot"
    lang.write_text("confidence: 1\n")
    assert read_instruction(lang) is None
    assert read_instruction(tmp_path / "absent.txt") is None


def test_train_and_validation_split_every_trajectory_once(bridge_root):
    train = ClipDataset(read_bridge(bridge_root, "train"), size=16)
    validation = ClipDataset(read_bridge(bridge_root, "validation"), size=16)
    train_ids = {r.sample_id for r in train.records}
    validation_ids = {r.sample_id for r in validation.records}
    assert not train_ids & validation_ids
    assert len(train_ids | validation_ids) == 8  # 10 trajectories, 2 without lang.txt
    dropped = train.dropped + validation.dropped
    assert sorted(reason for _, reason in dropped) == ["no lang.txt instruction"] * 2
    # The split is a property of the trajectory, not of the root given.
    deeper = ClipDataset(read_bridge(bridge_root / "toykitchen1", "train"), size=16)
    assert {r.sample_id.split("/")[-1] for r in deeper.records} <= {
        r.sample_id.split("/")[-1] for r in train.records if "toykitchen1" in r.sample_id
    }
    assert len(deeper.records) == sum("toykitchen1" in i for i in train_ids)


def test_split_fraction_is_about_eighty_percent():
    keys = [
        f"2023-01-01_00-00-{i:02d}/raw/traj_group0/traj{j}" for i in range(60) for j in range(20)
    ]
    share = sum(in_train_split(key, 0.8) for key in keys) / len(keys)
    assert 0.77 < share < 0.83


def test_items_are_16_frames_over_the_trajectory_at_5_fps(bridge_root):
    dataset = ClipDataset(read_bridge(bridge_root, "train"), size=16)
    item = dataset[0]
    assert item["frames"].shape == (16, 3, 16, 16) and item["num_reference_frames"] == 1
    assert item["instruction"].startswith("put the pot in the sink")
    assert item["sample_id"].startswith("bridge/") and "/raw/traj_group0/traj" in item["sample_id"]
    levels = [level_of(frame) for frame in item["frames"]]
    assert levels[0] == 0 and levels[-1] == 19  # im_10.jpg sorts after im_9.jpg
    assert item["fps"] == pytest.approx(5.0 * 15 / 19)


def test_no_trajectories_is_an_error_naming_the_layout(tmp_path):
    with pytest.raises(EmptyDatasetError, match="traj_group") as caught:
        ClipDataset(read_bridge(tmp_path))
    assert str(tmp_path) in str(caught.value)
