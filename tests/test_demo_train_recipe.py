"""make demo-train's work folder: one recipe per folder (lab.miniature.train_all)."""

from __future__ import annotations

import json

import pytest

from lab.miniature import stage1, train_all


def test_a_work_folder_records_its_recipe_and_takes_it_again(tmp_path):
    train_all.claim_work(tmp_path)
    recorded = json.loads((tmp_path / train_all.RECIPE).read_text())
    assert recorded == train_all.stage1_recipe()
    assert recorded["palette"] == stage1.PALETTE
    train_all.claim_work(tmp_path)  # the same recipe resumes


def test_a_work_folder_of_another_recipe_is_refused_naming_what_differs(tmp_path, monkeypatch):
    train_all.claim_work(tmp_path)
    monkeypatch.setattr(stage1, "PALETTE", "exact")
    monkeypatch.setattr(stage1, "BASE_CLIPS", 4_000)
    with pytest.raises(SystemExit, match=r"differs in base_clips, palette\); give a new --work"):
        train_all.claim_work(tmp_path)
