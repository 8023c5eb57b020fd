"""The benchmark's issue-#37 measures (objects kept per object, background drift) and its
``--palette``: the same held-out scenes in their own colours, kept apart from the exact
palette's scores. Cheap predictors only (the ground truth and edits of it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aid_model.synthetic import SyntheticClipDataset, WorldConfig
from aid_model.synthetic.render import render_frame
from lab.benchmark.benchmark import (
    VariantScores,
    evaluate_pipeline,
    row_inputs,
    score_predictions,
    scored_variant,
)
from lab.benchmark.drift import MARGIN, background_drift, far_from_objects


def _truth(clips, frames, first_seed):
    """The ground truth as a prediction: a perfect generator."""
    return [f.clone() for f in frames]


def test_drift_is_zero_for_a_still_video_and_counts_only_background_changes():
    clip = SyntheticClipDataset(1, split="heldout").clip(0)
    truth = torch.from_numpy(clip.frames).float() / 255.0  # (T, H, W, 3)
    far = far_from_objects(clip.frames, clip.palette.background)
    assert 0 < far.sum() < far.numel()
    still = truth[:1].repeat(len(truth), 1, 1, 1)
    assert background_drift(still, far) == 0.0
    brighter = still.clone()
    brighter[1:] += 0.05  # only frames 1…: the whole picture, objects too
    assert background_drift(brighter, far) == pytest.approx(0.05, abs=1e-6)
    near_objects = still.clone()
    near_objects[1:, ~far] = 1.0  # everything near the objects repainted: not drift
    assert background_drift(near_objects, far) == 0.0


def test_pixels_within_the_margin_of_an_object_are_not_background():
    truth = np.full((2, 16, 16, 3), 200, dtype=np.uint8)
    truth[1, 8, 8] = (255, 0, 0)  # one object pixel, in one frame only
    far = far_from_objects(truth, (200, 200, 200))
    assert not far[8, 8] and not far[8 - MARGIN, 8 + MARGIN] and not far[8, 8 + MARGIN]
    assert far[8, 8 + MARGIN + 1] and far[8 - MARGIN - 1, 8]
    assert int((~far).sum()) == (2 * MARGIN + 1) ** 2
    assert background_drift(torch.rand(2, 16, 16, 3), torch.zeros(16, 16, dtype=torch.bool)) \
        is None  # no background left to measure


@pytest.mark.parametrize("palette", ["exact", "varied"])
def test_the_ground_truth_keeps_every_object_and_does_not_drift(palette):
    scores, _ = score_predictions(_truth, "truth", num_scenes=4, batch_size=2, palette=palette)
    assert scores.direction_accuracy == 1.0
    assert scores.objects_kept == 1.0 and scores.objects_lost == 0.0
    assert scores.background_drift == 0.0  # the background is exactly flat, frame after frame
    assert scores.pixel_error == 0.0
    assert "| 100.0 % | 0.0000 |" in scores.row()


def test_objects_kept_is_a_share_of_objects_not_of_clips():
    """A last frame that keeps only each scene's first object: every clip with more than one
    object loses some, and the share counts objects."""
    dataset = SyntheticClipDataset(6, split="heldout")
    clips = [dataset.clip(i) for i in range(6)]
    config = WorldConfig()

    def keep_one(batch, frames, first_seed):
        videos = []
        for clip, truth in zip(batch, frames, strict=True):
            video = truth.clone()
            first = clip.objects[0].at(*clip.trajectory[-1, 0])
            video[-1] = torch.from_numpy(render_frame([first], config)).float() / 255.0
            videos.append(video)
        return videos

    scores, _ = score_predictions(keep_one, "one kept", num_scenes=6, batch_size=3)
    objects = sum(len(clip.objects) for clip in clips)
    several = sum(len(clip.objects) > 1 for clip in clips)
    assert 0 < several < 6  # the case tells objects from clips
    assert scores.objects_kept == pytest.approx(6 / objects)
    assert scores.objects_lost == pytest.approx(several / 6)
    assert scores.background_drift == 0.0  # what was erased lay near the objects


def test_the_varied_palette_draws_the_same_scenes_in_other_colours():
    seen = {}

    def record(palette):
        def predict(clips, frames, first_seed):
            seen[palette] = clips
            return _truth(clips, frames, first_seed)
        return predict

    for palette in ("exact", "varied"):
        score_predictions(record(palette), "truth", num_scenes=2, batch_size=2, palette=palette)
    for exact, varied in zip(seen["exact"], seen["varied"], strict=True):
        assert (exact.palette.kind, varied.palette.kind) == ("exact", "varied")
        assert exact.instruction == varied.instruction and exact.objects == varied.objects
        assert np.array_equal(exact.trajectory, varied.trajectory)
        assert not np.array_equal(exact.frames, varied.frames)


def test_the_stand_in_vlm_reads_scenes_in_the_benchmarks_palette(monkeypatch):
    import lab.benchmark.benchmark as benchmark

    palettes = []

    def predict(pipeline, prompter, starts, instructions, seeds, options):
        palettes.append(prompter.config.palette)
        return [s.permute(1, 2, 0)[None].repeat(8, 1, 1, 1) for s in starts]

    monkeypatch.setattr(benchmark, "predict_with_stand_in_states", predict)
    scores, _ = evaluate_pipeline(None, "still", num_scenes=2, batch_size=2, palette="varied")
    assert palettes == ["varied"]
    assert scores.direction_accuracy == 0.0 and scores.background_drift == 0.0


def test_scores_of_one_palette_are_not_taken_for_the_other(tmp_path, monkeypatch, capsys):
    import lab.benchmark.benchmark as benchmark

    weights = tmp_path / "aid_final.safetensors"
    weights.write_bytes(b"weights")
    rows = {"candidate": weights}
    exact = row_inputs("candidate", 4, tmp_path, rows)
    assert exact == row_inputs("candidate", 4, tmp_path, rows, palette="exact")
    assert row_inputs("candidate", 4, tmp_path, rows, palette="varied") != exact

    calls = []

    def score():
        calls.append(1)
        return (VariantScores("candidate", 0.5, 0.25, 0.1, 2.0, 4, 1.0, "1010", 0.25, 0.0,
                              None, 0.9, 0.002), [torch.rand(8, 4, 4, 3)])

    scored_variant("candidate", tmp_path, score, lambda: exact)
    scored_variant("candidate", tmp_path, score,
                   lambda: row_inputs("candidate", 4, tmp_path, rows, palette="varied"))
    assert calls == [1, 1]

    # Through the command: the palette reaches the scoring, names the default folder and
    # the table's title, and a folder of one palette refuses the other.
    scored = []

    def evaluate(pipeline, name, num_scenes, **kw):
        scored.append((name, kw.get("palette")))
        return (VariantScores(name, 0.5, 0.25, 0.1, 2.0, num_scenes, 1.0, "10", 0.25, 0.0,
                              None, 0.75, 0.003), [torch.rand(8, 4, 4, 3)])

    monkeypatch.setattr(benchmark, "variant_pipeline", lambda path, device: path)
    monkeypatch.setattr(benchmark, "evaluate_pipeline", evaluate)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)
    monkeypatch.chdir(tmp_path)
    argv = ["benchmark", "--scenes", "2", "--variants", "", "--weights", f"c={weights}"]
    monkeypatch.setattr("sys.argv", [*argv, "--palette", "varied"])
    benchmark.main()
    assert scored == [("c", "varied")]
    assert (tmp_path / "runs" / "bench_demo_varied" / "scores" / "c.json").exists()
    text = capsys.readouterr().out
    assert "held-out scenes of seed 0, varied palette:" in text
    assert "| c | 50.0 % | 25.0 % | 25.0 % | 0.0 % | 75.0 % | 0.0030 |" in text
    monkeypatch.setattr("sys.argv", [*argv, "--out", "runs/bench_demo_varied"])
    with pytest.raises(SystemExit, match="keeps the scores of --palette varied, not exact"):
        benchmark.main()
    monkeypatch.setattr("sys.argv", argv)  # the exact palette's own folder scores it afresh
    benchmark.main()
    assert scored == [("c", "varied"), ("c", "exact")]
