"""The feature cache's manifest: one folder spelled two ways is the same setting."""

from __future__ import annotations

import json

import pytest

from aid_model.train.cache import MANIFEST, FeatureCache
from aid_model.train.config import ConfigError, with_absolute_folders


def _settings(data_root: str, svd: str) -> dict:
    return {"format_version": 1, "data": {"name": "generic", "root": data_root},
            "seed": 0, "dtype": "float16", "latents": True, "text": False, "svd": svd,
            "tokenizer_dir": None}


def test_a_cache_made_with_relative_folders_is_reused_with_absolute_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clips").mkdir()
    (tmp_path / "svd").mkdir()
    cache = tmp_path / "features"
    cache.mkdir()
    # a manifest as the stage-2 config wrote it: paths relative to the repository root
    (cache / MANIFEST).write_text(json.dumps(_settings("clips", "svd")))
    FeatureCache(cache, _settings(str(tmp_path / "clips"), str(tmp_path / "svd"))
                 ).check_manifest()
    FeatureCache(cache, _settings("./clips", "svd/")).check_manifest()


def test_another_folder_is_still_another_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("clips", "other_clips", "svd"):
        (tmp_path / name).mkdir()
    cache = tmp_path / "features"
    cache.mkdir()
    (cache / MANIFEST).write_text(json.dumps(_settings("clips", "svd")))
    with pytest.raises(ConfigError, match=r"other settings.*other_clips"):
        FeatureCache(cache, _settings(str(tmp_path / "other_clips"), "svd")).check_manifest()


def test_names_that_are_no_local_folder_are_kept_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = _settings("missing/clips", "stabilityai/stable-video-diffusion-img2vid-xt")
    assert with_absolute_folders(settings) == settings
    (tmp_path / "clips").mkdir()
    spelled = with_absolute_folders(_settings("clips", "hub/id"))
    assert spelled["data"]["root"] == str(tmp_path / "clips")
    assert spelled["svd"] == "hub/id"
    assert with_absolute_folders({"runs": ["clips", "cpu"], "n": 3}) == {
        "runs": [str(tmp_path / "clips"), "cpu"], "n": 3}


def test_text_no_file_can_be_named_is_kept_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = {"note": "a long free-text setting " * 20, "bad": "nul\x00byte"}
    assert with_absolute_folders(settings) == settings  # Path.exists would raise on both
