"""The JSONL state cache, the CSV dataset reader and image hashing (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aid_model.states import CachedStates, StateCache, image_sha256, load_image, read_csv_samples


def row(image_sha256: str = "ab" * 32, states: list[str] | None = None, **fields) -> CachedStates:
    states = states if states is not None else ["a", "b", "c", "d"]
    values = {
        "image_sha256": image_sha256,
        "instruction": "open the drawer",
        "model_id": "llava-onevision-qwen2-7b-ov-hf",
        "num_states": len(states),
        "template_version": "aid-states-v1",
        "states": states,
        "num_found": len(states),
        **fields,
    }
    return CachedStates(**values)


def test_rows_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "states.jsonl"  # folders are made on the first write
    cache = StateCache(path)
    first, second = row("01" * 32), row("02" * 32, raw_text="1. a\n2. b", warnings=["w"])
    cache.add(first)
    cache.add(second)

    reopened = StateCache(path)
    assert len(reopened) == 2 and reopened.skipped_lines == 0
    assert reopened.get(first.key) == first
    assert reopened.get(second.key) == second


def test_every_key_field_separates_rows(tmp_path: Path) -> None:
    cache = StateCache(tmp_path / "states.jsonl")
    base = row()
    cache.add(base)
    variants = [
        row("cd" * 32),
        row(instruction="close the drawer"),
        row(model_id="qwen2-vl-7b-instruct"),
        row(states=["a", "b", "c"]),
        row(template_version="aid-states-v2"),
    ]
    for variant in variants:
        assert cache.get(variant.key) is None
        cache.add(variant)
    assert len(StateCache(tmp_path / "states.jsonl")) == 6


def test_the_later_row_for_a_key_wins(tmp_path: Path) -> None:
    path = tmp_path / "states.jsonl"
    StateCache(path).add(row(states=["old"] * 4))
    StateCache(path).add(row(states=["new"] * 4))
    assert StateCache(path).get(row().key).states == ["new"] * 4


def test_torn_last_line_is_skipped_and_the_next_row_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "states.jsonl"
    StateCache(path).add(row("01" * 32))
    with path.open("a", encoding="utf-8") as file:
        file.write(row("02" * 32).to_json()[:40])  # killed in the middle of a write

    cache = StateCache(path)
    assert (len(cache), cache.skipped_lines) == (1, 1)
    cache.add(row("03" * 32))

    reread = StateCache(path)
    assert (len(reread), reread.skipped_lines) == (2, 1)
    assert reread.get(row("03" * 32).key) is not None


@pytest.mark.parametrize(
    "bad_line",
    [
        "not json",
        "[1, 2]",
        json.dumps({"image_sha256": "x", "instruction": "i"}),  # fields missing
        json.dumps({**json.loads(row().to_json()), "states": ["only one"]}),  # wrong count
        json.dumps({**json.loads(row().to_json()), "num_states": True}),
        json.dumps({**json.loads(row().to_json()), "states": [1, 2, 3, 4]}),
    ],
    ids=["text", "list", "missing fields", "wrong count", "bool S", "non-string states"],
)
def test_unreadable_lines_are_counted_not_fatal(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "states.jsonl"
    path.write_text(f"{row('01' * 32).to_json()}\n{bad_line}\n\n", encoding="utf-8")
    cache = StateCache(path)
    assert (len(cache), cache.skipped_lines) == (1, 1)


def test_file_stays_human_readable(tmp_path: Path) -> None:
    path = tmp_path / "states.jsonl"
    StateCache(path).add(row(states=["玻璃杯是空的。", "杯子满了。"]))
    assert "玻璃杯是空的。" in path.read_text(encoding="utf-8")


def test_a_folder_is_not_a_cache(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match=r"pass a \.jsonl file path"):
        StateCache(tmp_path)


# --- CSV datasets -------------------------------------------------------------------------


def write_frames(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / name)


def test_csv_paths_are_relative_to_the_csv(tmp_path: Path) -> None:
    write_frames(tmp_path / "data" / "frames", "a.png")
    csv_path = tmp_path / "data" / "train.csv"
    # Spreadsheet programs write a byte-order mark; instructions may hold commas.
    csv_path.write_text(
        '\ufeffimage,instruction\nframes/a.png,"open the drawer, then close it"\n',
        encoding="utf-8",
    )
    [sample] = read_csv_samples(csv_path)
    assert Path(sample.image) == tmp_path / "data" / "frames" / "a.png"
    assert sample.instruction == "open the drawer, then close it"
    assert sample.source == "frames/a.png"


def test_csv_without_the_columns_names_what_it_found(tmp_path: Path) -> None:
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("path,caption\na.png,open\n")
    with pytest.raises(
        ValueError, match=r"lacks column\(s\) image, instruction.*'path', 'caption'"
    ):
        read_csv_samples(csv_path)


def test_csv_problems_are_all_listed_with_line_numbers(tmp_path: Path) -> None:
    write_frames(tmp_path, "a.png")
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("image,instruction\na.png,open\nb.png,close\na.png,  \n")
    with pytest.raises(ValueError) as raised:
        read_csv_samples(csv_path)
    message = str(raised.value)
    assert "line 3: image" in message and "b.png" in message and "does not exist" in message
    assert "line 4: empty instruction" in message


def test_csv_with_only_a_header_is_refused(tmp_path: Path) -> None:
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("image,instruction\n")
    with pytest.raises(ValueError, match="no rows"):
        read_csv_samples(csv_path)


# --- images -------------------------------------------------------------------------------


def test_same_pixels_hash_the_same_whatever_the_form(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "f.png")
    as_float = pixels.astype(np.float32) / 255.0  # ComfyUI's (H, W, C) floats in [0, 1]

    digests = {
        image_sha256(load_image(tmp_path / "f.png")),
        image_sha256(load_image(pixels)),
        image_sha256(load_image(as_float)),
        image_sha256(load_image(as_float[None])),  # a batch of one frame
    }
    assert len(digests) == 1
    changed = pixels.copy()
    changed[0, 0, 0] ^= 1
    assert image_sha256(load_image(changed)) not in digests


def test_channels_first_arrays_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"permute\(1, 2, 0\)"):
        load_image(np.zeros((3, 16, 16), dtype=np.float32))


def test_missing_image_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        load_image(tmp_path / "nope.png")


def test_importing_the_package_loads_neither_torch_nor_transformers() -> None:
    # ComfyUI imports every custom node at start-up; the states package must stay cheap
    # until a model is actually loaded.
    import subprocess
    import sys

    code = (
        "import sys, aid_model.states; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_samples_sharing_a_frame_and_instruction_each_get_a_row_of_their_own(tmp_path: Path):
    # Two dataset samples with identical first frames and instructions: generated once, but
    # the dataset join (by source = sample id) must find states for both, and a rerun must
    # not write again.
    from aid_model.data.states import read_state_texts
    from aid_model.states import StateCache, StateSample, annotate
    from aid_model.synthetic.prompter import SyntheticStatePrompter

    frame = np.full((64, 64, 3), 200, dtype=np.uint8)
    frame[20:32, 20:32] = (255, 0, 0)
    samples = [
        StateSample(frame, "move the red square left", source="clips/a.png"),
        StateSample(frame, "move the red square left", source="clips/b.png"),
    ]
    cache_path = tmp_path / "states.jsonl"
    first = annotate(SyntheticStatePrompter(), samples, StateCache(cache_path), progress=False)
    assert first.generated == 1
    assert [r.source for r in first.rows] == ["clips/a.png", "clips/b.png"]
    texts = read_state_texts(cache_path)
    assert set(texts) == {"clips/a", "clips/b"}
    assert texts["clips/a"].states == texts["clips/b"].states
    lines = cache_path.read_text().splitlines()
    again = annotate(SyntheticStatePrompter(), samples, StateCache(cache_path), progress=False)
    assert again.generated == 0 and again.cached == 2
    assert cache_path.read_text().splitlines() == lines
