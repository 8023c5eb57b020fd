"""Tokenizer equivalence with open_clip, on ids computed by open_clip_torch 3.3.0.

Fixture: tests/fixtures/clip-text (its golden.md documents every id and probe).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import CLIP_TEXT_FIXTURE
from safetensors import safe_open

from aid_model.text_encoder import FTFY_AVAILABLE, clean_text, load_tokenizer
from aid_model.text_encoder.cleaning import fix_text_fallback

MOJIBAKE_PROBE = "cafÃ©"  # only ftfy repairs it (→ café)


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    return CLIP_TEXT_FIXTURE


@pytest.fixture(scope="module")
def golden(fixture_dir: Path) -> tuple[list[str], torch.Tensor]:
    with safe_open(str(fixture_dir / "golden.safetensors"), framework="pt") as handle:
        strings = json.loads(handle.metadata()["clip_text_golden"])["strings"]
        return strings, handle.get_tensor("token_ids")


@pytest.fixture(scope="module")
def probe_rows(fixture_dir: Path) -> list[dict]:
    return json.loads((fixture_dir / "tokenizer_check.json").read_text())["rows"]


def _padded(ids: list[int]) -> list[int]:
    return ids + [0] * (77 - len(ids))


def _mismatching(tokenizer, rows: list[dict]) -> list[str]:
    ids = tokenizer([row["text"] for row in rows])
    return [
        row["text"]
        for row, got in zip(rows, ids.tolist(), strict=True)
        if got != _padded(row["open_clip_ids"])
    ]


@pytest.mark.parametrize("use_ftfy", [None, False], ids=["default", "without-ftfy"])
def test_golden_strings_give_open_clip_ids(fixture_dir, golden, use_ftfy):
    strings, expected = golden
    ids = load_tokenizer(fixture_dir, use_ftfy=use_ftfy)(strings)
    assert ids.dtype == torch.long and ids.shape == (9, 77)
    assert torch.equal(ids, expected)


def test_empty_and_long_texts(fixture_dir):
    tokenizer = load_tokenizer(fixture_dir)
    empty, long = tokenizer(["", "go " * 200]).tolist()
    assert empty[:3] == [49406, 49407, 0] and set(empty[2:]) == {0}
    # open_clip keeps SOT + the first 75 BPE tokens + EOT.
    assert long[0] == 49406 and long[-1] == 49407 and len(set(long[1:-1])) == 1


@pytest.mark.skipif(not FTFY_AVAILABLE, reason="ftfy not installed")
def test_every_probe_matches_open_clip_with_ftfy(fixture_dir, probe_rows):
    assert len(probe_rows) == 22
    assert _mismatching(load_tokenizer(fixture_dir, use_ftfy=True), probe_rows) == []


def test_without_ftfy_only_mojibake_differs(fixture_dir, probe_rows):
    tokenizer = load_tokenizer(fixture_dir, use_ftfy=False)
    assert _mismatching(tokenizer, probe_rows) == [MOJIBAKE_PROBE]


def test_folder_without_tokenizer_config_still_pads_with_zero(fixture_dir, probe_rows, tmp_path):
    # A bare vocab.json + merges.txt folder defaults to pad "<|endoftext|>" and does not
    # split special tokens; the ids must still be open_clip's (pad 0, "!" as text).
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(fixture_dir / name, tmp_path / name)
    tokenizer = load_tokenizer(tmp_path)
    assert tokenizer.tokenizer.pad_token_id == 49407
    wanted = [row for row in probe_rows if row["text"] != MOJIBAKE_PROBE or FTFY_AVAILABLE]
    assert _mismatching(tokenizer, wanted) == []


def test_literal_open_clip_specials_become_ids(fixture_dir):
    ids = load_tokenizer(fixture_dir)(["x <END_OF_TEXT> y", "a!<end_of_text>"]).tolist()
    assert ids[0][:5] == [49406, 343, 49407, 344, 49407]
    # After punctuation open_clip's regex swallows "<" into the punctuation run: plain text.
    assert 49407 not in ids[1][1:4] and ids[1].count(49407) == 1


@pytest.mark.skipif(not FTFY_AVAILABLE, reason="ftfy not installed")
def test_fallback_cleaning_equals_ftfy_on_every_bmp_character():
    import ftfy

    differing = [
        hex(code)
        for code in [*range(0xD800), *range(0xE000, 0x10000)]
        if ftfy.fix_text(chr(code)) != fix_text_fallback(chr(code))
    ]
    assert differing == []


@pytest.mark.parametrize("use_ftfy", [None, False], ids=["default", "without-ftfy"])
def test_clean_text_does_open_clips_cleaning(use_ftfy):
    assert clean_text("  Hello,\t\nWORLD &amp;amp; ﬁne  ", use_ftfy) == "hello, world & fine"
    assert clean_text("ΟΔΟΣ", use_ftfy) == "οδος"  # Python's lower: final sigma


def test_tokenizer_errors_are_clear(fixture_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tokenizer(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"vocab\.json \+ merges\.txt"):
        load_tokenizer(tmp_path)
    with pytest.raises(TypeError, match=r"pass \[text\]"):
        load_tokenizer(fixture_dir)("a single string")
