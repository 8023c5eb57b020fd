"""Cached state texts joined to samples: first frames out, annotation, states back in."""

from __future__ import annotations

import csv
import json

import pytest
from test_data_decode import write_corrupt, write_video

from aid_model.data import ClipDataset, export_first_frames, read_generic
from aid_model.data.states import read_state_texts, sample_id_of_row, state_image_name
from aid_model.states import StateCache, annotate, read_csv_samples
from aid_model.states.prompter import StatePrediction


class FakePrompter:
    """Stands in for a vision-language model: states that name the instruction."""

    model_id = "fake-vlm"
    template_version = "test"

    def predict(self, images, instructions, num_states, batch_size=4):
        return [
            StatePrediction(text, [f"{text}: state {s}" for s in range(num_states)], "raw", 4)
            for text in instructions
        ]


@pytest.fixture
def dataset_dir(tmp_path):
    write_video(tmp_path / "videos" / "a.mp4", 16)
    write_video(tmp_path / "videos" / "b.mp4", 16)
    write_corrupt(tmp_path / "videos" / "c.mp4")
    (tmp_path / "annotations.csv").write_text(
        "path,instruction\nvideos/a.mp4,open the drawer\nvideos/b.mp4,close the drawer\n"
        "videos/c.mp4,broken\n"
    )
    return tmp_path


def test_states_round_trip_through_export_annotate_and_join(dataset_dir, tmp_path):
    dataset = ClipDataset(read_generic(dataset_dir), size=16, num_frames=8)
    exported = export_first_frames(dataset, tmp_path / "first", progress=False)
    assert exported.written == 2 and len(exported.skipped) == 1
    assert exported.skipped[0].startswith("videos/c: unreadable")
    assert (tmp_path / "first" / "videos" / "a.png").is_file()
    with exported.csv_path.open() as file:
        rows = list(csv.DictReader(file))
    assert [row["sample_id"] for row in rows] == ["videos/a", "videos/b"]

    # The state-prompting step, unchanged, on the exported CSV.
    cache_path = tmp_path / "states.jsonl"
    samples = read_csv_samples(exported.csv_path)
    annotate(FakePrompter(), samples, StateCache(cache_path), num_states=4, progress=False)

    joined = ClipDataset(read_generic(dataset_dir), size=16, num_frames=8, states_jsonl=cache_path)
    item = joined[0]
    assert item["sample_id"] == "videos/a"
    assert item["states"] == [f"open the drawer: state {s}" for s in range(4)]
    assert joined[1]["states"][0] == "close the drawer: state 0"

    again = export_first_frames(dataset, tmp_path / "first", progress=False)
    assert again.reused == 2 and again.written == 0  # a rerun continues


def test_rows_join_by_explicit_id_or_source_and_need_the_same_instruction(dataset_dir, tmp_path):
    base = {"image_sha256": "0" * 64, "model_id": "m", "num_states": 2, "template_version": "1"}
    cache = tmp_path / "states.jsonl"
    cache.write_text(
        json.dumps({**base, "instruction": "open  the drawer", "states": ["a", "b"],
                    "source": "./videos/a.png"}) + "\n"
        + json.dumps({**base, "instruction": "something else", "states": ["c", "d"],
                      "source": "videos/b.png"}) + "\n"
        + '{"torn line\n'
    )  # fmt: skip
    texts = read_state_texts(cache)
    assert set(texts) == {"videos/a", "videos/b"}
    dataset = ClipDataset(read_generic(dataset_dir), size=16, num_frames=8, states_jsonl=cache)
    assert dataset[0]["states"] == ["a", "b"]
    assert dataset[1]["states"] == []  # its row was made for another instruction
    assert sample_id_of_row({"sample_id": "ssv2/1", "source": "x.png"}) == "ssv2/1"
    assert sample_id_of_row({"source": "ssv2\\74225.jpg"}) == "ssv2/74225"


def test_a_state_cache_matching_no_sample_is_an_error(dataset_dir, tmp_path):
    cache = tmp_path / "states.jsonl"
    row = {"image_sha256": "0" * 64, "instruction": "open the drawer", "model_id": "m",
           "num_states": 1, "template_version": "1", "states": ["a"],
           "source": "frame_0.png"}  # fmt: skip
    cache.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="matches none of the 3 samples") as caught:
        ClipDataset(read_generic(dataset_dir), size=16, num_frames=8, states_jsonl=cache)
    assert "export_first_frames" in str(caught.value)
    with pytest.raises(FileNotFoundError, match="python -m aid_model states"):
        ClipDataset(read_generic(dataset_dir), states_jsonl=tmp_path / "absent.jsonl")


def test_sample_ids_that_cannot_be_file_names_are_refused():
    assert state_image_name("bridge/scene/raw/traj_group0/traj1") == (
        "bridge/scene/raw/traj_group0/traj1.png"
    )
    for bad in ("../up", "/abs", "a:b", ""):
        with pytest.raises(ValueError, match="cannot be a relative file name"):
            state_image_name(bad)


def test_clips_without_an_instruction_are_not_exported_nor_missing(tmp_path):
    write_video(tmp_path / "a.mp4", 16)
    write_video(tmp_path / "b.mp4", 16)
    (tmp_path / "annotations.csv").write_text("path,instruction\na.mp4,open it\nb.mp4,\n")
    dataset = ClipDataset(read_generic(tmp_path), size=16, num_frames=8)
    exported = export_first_frames(dataset, tmp_path / "first", progress=False)
    assert exported.written == 1 and exported.skipped == ["b: no instruction"]
    cache = tmp_path / "states.jsonl"
    annotate(FakePrompter(), read_csv_samples(exported.csv_path), StateCache(cache),
             num_states=2, progress=False)  # fmt: skip
    joined = ClipDataset(read_generic(tmp_path), size=16, num_frames=8, states_jsonl=cache)
    assert joined[0]["states"] == ["open it: state 0", "open it: state 1"]
    assert joined[1]["states"] == []
