"""UCF-101 on a tiny copy: class folders, the official lists, one sentence per class."""

from __future__ import annotations

import pytest
from test_data_decode import level_of, write_video

from aid_model.data import UCF101_CAPTIONS, ClipDataset, EmptyDatasetError, read_ucf101
from aid_model.data.ucf101_captions import ucf101_caption

CLASSES = ["ApplyEyeMakeup", "Biking", "HandstandPushups"]


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf")
    videos = root / "UCF-101"
    write_video(videos / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi", 20, fps=25)
    write_video(videos / "Biking" / "v_Biking_g01_c01.avi", 20, fps=25)
    write_video(videos / "Biking" / "v_Biking_g08_c02.avi", 20, fps=25)
    # The published folder and file name spell this class with a capital S.
    write_video(videos / "HandstandPushups" / "v_HandStandPushups_g02_c01.avi", 20, fps=25)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n11 Biking\n37 HandstandPushups\n")
    (lists / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n"
        "Biking/v_Biking_g08_c02.avi 11\n"
        "HandstandPushups/v_HandStandPushups_g02_c01.avi 37\n"
    )
    (lists / "testlist01.txt").write_text(
        "Biking/v_Biking_g01_c01.avi\nBiking/v_Biking_g03_c01.avi\n"
    )
    return root


def test_every_class_has_its_own_sentence():
    assert len(UCF101_CAPTIONS) == 101
    assert len(set(UCF101_CAPTIONS.values())) == 101
    assert all(
        caption[0].isupper() and caption.endswith(".") for caption in UCF101_CAPTIONS.values()
    )
    assert ucf101_caption("biking") == "A person is riding a bicycle."
    assert ucf101_caption("HandStandPushups") == UCF101_CAPTIONS["HandstandPushups"]
    with pytest.raises(KeyError, match="Flying"):
        ucf101_caption("Flying")


def test_train_list_items_carry_the_class_sentence(ucf_root):
    dataset = ClipDataset(read_ucf101(ucf_root, "train"), size=16, random_offset=False)
    assert [r.sample_id for r in dataset.records] == [
        "ucf101/v_ApplyEyeMakeup_g01_c01",
        "ucf101/v_Biking_g08_c02",
        "ucf101/v_HandStandPushups_g02_c01",
    ]
    item = dataset[1]
    assert item["instruction"] == "A person is riding a bicycle."
    assert item["frames"].shape == (16, 3, 16, 16) and item["fps"] == pytest.approx(25.0)
    assert [level_of(f) for f in item["frames"]] == list(range(16))  # consecutive, from 0


def test_test_split_five_reference_frames_and_missing_listed_video(ucf_root):
    dataset = ClipDataset(read_ucf101(ucf_root, "validation"), size=16, num_reference_frames=5)
    assert dataset.split == "test" and len(dataset) == 1
    assert dataset.dropped == [("ucf101/v_Biking_g03_c01", "video missing")]
    assert dataset[0]["num_reference_frames"] == 5


def test_all_split_needs_no_lists(ucf_root):
    everything = ClipDataset(read_ucf101(ucf_root, "all"), size=16)
    assert len(everything) == 4 and not everything.random_offset  # scored on: fixed windows
    assert ClipDataset(read_ucf101(ucf_root, "train"), size=16).random_offset


def test_no_videos_is_an_error_naming_the_layout(tmp_path):
    with pytest.raises(EmptyDatasetError, match="UCF-101") as caught:
        ClipDataset(read_ucf101(tmp_path))
    assert str(tmp_path) in str(caught.value)
