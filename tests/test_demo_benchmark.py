"""The miniature's benchmark machinery on a tiny random pipeline (the trained miniature is
scored by ``python -m lab.benchmark.benchmark``; these tests check the scoring itself)."""

from __future__ import annotations

import argparse
import json
import re

import pytest
import torch
from PIL import Image
from tiny_models import tiny_aid_pipeline

from aid_model.aid import AIDConfig
from aid_model.demo.load import DEMO_OPTIONS
from aid_model.synthetic import SyntheticClipDataset
from aid_model.video_io import LABEL_MARGIN
from lab.benchmark.benchmark import (
    LATER_COLUMNS,
    TABLE_HEADER,
    VARIANTS,
    RandomClipFeatures,
    VariantScores,
    check_budget,
    comparable_settings,
    evaluate_autoencoder_ceiling,
    evaluate_pipeline,
    example_labels,
    kind_rows,
    parse_weight_rows,
    row_inputs,
    scored_variant,
    train_in_parallel,
    variant_config,
    write_kept_table,
)
from lab.benchmark.lookalike import has_lookalike, lookalike_scenes
from lab.benchmark.sampling_rows import parse_sampling_rows

WORLD_SIZED = AIDConfig(num_frames=8, num_states=4, dqformer_heads=4)


def test_random_features_are_fixed_and_tell_clips_apart():
    clips = torch.stack([SyntheticClipDataset(3, split="heldout")[i]["frames"] for i in range(3)])
    clips = (clips + 1) / 2  # (N, T, 3, H, W) in [0, 1]
    features = RandomClipFeatures()(clips)
    assert features.shape == (3, 64)
    assert torch.equal(features, RandomClipFeatures()(clips))  # same seed, same network
    assert (features[0] - features[1]).abs().max() > 1e-4


def test_scores_of_a_pipeline_on_held_out_scenes(svd_fixture_checkpoint, clip_text_fixture_dir):
    pipeline = tiny_aid_pipeline(svd_fixture_checkpoint, clip_text_fixture_dir, WORLD_SIZED)
    options = DEMO_OPTIONS.with_(steps=2)
    scores, examples = evaluate_pipeline(
        pipeline, "tiny", num_scenes=3, batch_size=2, options=options
    )
    assert scores.scenes == 3
    assert 0.0 <= scores.direction_accuracy <= 1.0
    assert 0.0 <= scores.objects_lost <= 1.0 - scores.direction_accuracy
    assert 0.0 < scores.pixel_error < 1.0
    assert scores.random_feature_distance >= 0.0
    assert len(scores.passed_scenes) == 3 and set(scores.passed_scenes) <= {"0", "1"}
    assert scores.passed_scenes.count("1") / 3 == scores.direction_accuracy
    assert 0.0 <= scores.objects_kept <= 1.0 and scores.background_drift >= 0.0
    # Every clip either passes or fails in one counted way (none lacks a target here).
    assert scores.direction_accuracy + scores.objects_lost + scores.short_moves \
        + scores.others_moved == pytest.approx(1.0)
    assert len(examples) == 3 and examples[0].shape == (8, 64, 64, 3)
    assert scores.row().startswith("| tiny |")
    assert TABLE_HEADER.splitlines()[0].count("|") == scores.row().count("|")


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_names_real_config_switches(name):
    AIDConfig(num_frames=8, **VARIANTS[name])  # unknown or conflicting switches would raise


def test_a_scored_variant_is_kept_and_never_scored_twice(tmp_path):
    calls = []

    def score():
        calls.append(1)
        return VariantScores("w/o DE", 0.5, 0.25, 0.1, 2.0, 3, 1.0), [torch.rand(8, 4, 4, 3)]

    first = scored_variant("w/o DE", tmp_path, score)
    again = scored_variant("w/o DE", tmp_path, score)
    assert calls == [1]
    assert again[0] == first[0]
    assert torch.equal(again[1][0], first[1][0])
    assert (tmp_path / "scores" / "wo_DE.json").exists()


def test_the_autoencoder_ceiling_keeps_frame_0_and_scores_the_round_trip(
    svd_fixture_checkpoint, clip_text_fixture_dir
):
    pipeline = tiny_aid_pipeline(svd_fixture_checkpoint, clip_text_fixture_dir, WORLD_SIZED)
    vae = pipeline.components.vae
    scores, examples = evaluate_autoencoder_ceiling(vae, "ceiling", num_scenes=2, batch_size=2)
    truth = SyntheticClipDataset(2, split="heldout").clip(0).frames
    assert examples[0].shape == (8, 64, 64, 3)
    assert torch.equal(examples[0][0], torch.from_numpy(truth[0]).float() / 255.0)
    # A random VAE cannot reproduce the clip: frames 1… differ and objects are lost.
    assert scores.pixel_error > 0.01 and scores.objects_lost > 0.0
    assert scores.objects_kept < 1.0 and scores.background_drift > 0.01
    # The varied palette's scenes go through it as well (--palette varied).
    varied, examples = evaluate_autoencoder_ceiling(vae, "ceiling", num_scenes=2,
                                                    batch_size=2, palette="varied")
    truth = SyntheticClipDataset(2, split="heldout", palette="varied").clip(0).frames
    assert torch.equal(examples[0][0], torch.from_numpy(truth[0]).float() / 255.0)
    assert varied.pixel_error > 0.01 and varied.background_drift > 0.01


def test_scores_kept_by_an_older_benchmark_are_scored_again(tmp_path):
    folder = tmp_path / "scores"
    folder.mkdir()
    (folder / "wo_DE.json").write_text('{"name": "w/o DE", "direction_accuracy": 0.5, '
                                       '"pixel_error": 0.1, "random_feature_distance": 2.0, '
                                       '"scenes": 3, "seconds": 1.0}')
    torch.save([torch.rand(8, 4, 4, 3)], folder / "wo_DE.pt")
    fresh = VariantScores("w/o DE", 0.5, 0.25, 0.1, 2.0, 3, 1.0)
    kept, _ = scored_variant("w/o DE", tmp_path, lambda: (fresh, [torch.rand(8, 4, 4, 3)]))
    assert kept == fresh
    assert '"objects_lost": 0.25' in (folder / "wo_DE.json").read_text()


def test_scores_kept_without_a_per_scene_record_are_shown_but_scored_again(tmp_path, capsys):
    """A row kept before the per-scene record still appears in the kept table; a benchmark
    run scores it again so that it can be compared scene by scene."""
    older = VariantScores("w/o DE", 0.5, 0.25, 0.1, 2.0, 4, 1.0).__dict__
    for column in LATER_COLUMNS:  # not kept before the per-scene record and failure counts
        del older[column]
    folder = tmp_path / "scores"
    folder.mkdir()
    (folder / "wo_DE.json").write_text(json.dumps(older))
    torch.save([torch.rand(8, 4, 4, 3)], folder / "wo_DE.pt")
    write_kept_table(tmp_path)
    assert "| w/o DE | 50.0 % | 25.0 % | — | — |" in capsys.readouterr().out
    fresh = VariantScores("w/o DE", 0.5, 0.25, 0.1, 2.0, 4, 1.0, "1010", 0.25, 0.0)
    kept, _ = scored_variant("w/o DE", tmp_path, lambda: (fresh, [torch.rand(8, 4, 4, 3)]))
    assert kept == fresh
    assert json.loads((folder / "wo_DE.json").read_text())["passed_scenes"] == "1010"


def test_variant_config_changes_only_the_ablation_switches_and_the_budget(tmp_path):
    full = variant_config("full AID", 1000, tmp_path / "out", tmp_path / "data")
    ablated = variant_config("w/o temporal adapters", 1000, tmp_path / "out", tmp_path / "data")
    assert full.optim.max_steps == ablated.optim.max_steps == 1000
    assert full.output_dir != ablated.output_dir
    assert full.cache.dir == ablated.cache.dir == str(tmp_path / "data" / "feature_cache")
    assert (ablated.aid.without_sta, ablated.aid.without_lta) == (True, True)
    assert (full.aid.without_sta, full.aid.without_lta) == (False, False)
    assert full.loader == ablated.loader and full.optim == ablated.optim


def test_variant_config_trains_with_the_benchmarks_threads(tmp_path):
    """``--threads 2`` reaches the trainer (it sets torch's threads from the config): the
    config's own setting trained a run meant for both cores on one (median 1.45 against
    0.99 s/step)."""
    default = variant_config("w/o adapters", 1000, tmp_path / "out", tmp_path / "data")
    two = variant_config("w/o adapters", 1000, tmp_path / "out", tmp_path / "data", threads=2)
    assert two.runtime.threads == 2
    assert default.runtime.threads != 2
    assert comparable_settings(two.to_dict()) == comparable_settings(default.to_dict())


def test_variant_config_trains_on_the_benchmarks_device(tmp_path):
    """``--device cuda`` reaches the trainer; where a run trained does not make it another
    run (its random draws are the CPU generators' on every device)."""
    default = variant_config("w/o DE", 1000, tmp_path / "out", tmp_path / "data")
    gpu = variant_config("w/o DE", 1000, tmp_path / "out", tmp_path / "data", device="cuda")
    assert gpu.runtime.device == "cuda" and default.runtime.device == "cpu"
    assert comparable_settings(gpu.to_dict()) == comparable_settings(default.to_dict())


def test_full_aid_is_make_demo_trains_own_run_when_its_config_matches(tmp_path, monkeypatch):
    """Full AID at the bundled budget is the run ``make demo-train`` already made: its
    weights are copied (the run spelled its folders relatively and used 2 threads), while
    another budget or an ablation trains."""
    import aid_model.train as train_module
    import lab.benchmark.benchmark as benchmark
    from lab.benchmark.benchmark import train_variant

    data_work = tmp_path / "demo"
    (data_work / "synthetic_train").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    own = variant_config("full AID", 1000, tmp_path / "elsewhere", data_work).to_dict()
    own.update(output_dir="demo/aid", runtime=dict(own["runtime"], threads=2))
    own["data"]["root"] = "demo/synthetic_train"  # relative to the working directory
    (data_work / "aid").mkdir()
    (data_work / "aid" / "resolved_config.json").write_text(json.dumps(own))
    (data_work / "aid" / "aid_final.safetensors").write_bytes(b"weights")
    trained = []
    monkeypatch.setattr(train_module, "train", lambda config, **kw: trained.append(
        (config.optim.max_steps, config.aid.without_de)))

    weights = train_variant("full AID", 1000, tmp_path / "bench", data_work)
    assert weights.read_bytes() == b"weights" and trained == []
    assert json.loads((weights.parent / "resolved_config.json").read_text()) == own
    train_variant("full AID", 2000, tmp_path / "bench_2k", data_work)
    train_variant("w/o DE", 1000, tmp_path / "bench", data_work)
    assert trained == [(2000, False), (1000, True)]
    assert benchmark.demo_train_run(
        variant_config("full AID", 1000, tmp_path / "x", tmp_path / "other"), data_work) is None


def test_full_aid_on_a_fresh_clone_is_the_bundled_model_demo_model_json_records(
        tmp_path, monkeypatch):
    """No ``make demo-train`` run (a fresh clone): full AID at the bundled budget over the
    default training set is the bundled ``aid.safetensors``, whose resolved stage-2 config
    ``demo_model.json`` records; another budget trains, and so does a bundled file that is
    no longer the one recorded (its content identity differs)."""
    import shutil

    import aid_model.train as train_module
    import lab.benchmark.benchmark as benchmark
    from aid_model.demo.paths import AID_FILE, DEMO_DIR, MANIFEST
    from lab.miniature.train_all import REPO

    data_work = REPO / "runs" / "demo"  # --data-work's default: the recorded training set
    monkeypatch.setattr(benchmark, "demo_train_run", lambda config, data_work: None)
    trained = []
    monkeypatch.setattr(train_module, "train",
                        lambda config, **kw: trained.append(config.optim.max_steps))

    weights = benchmark.train_variant("full AID", 4500, tmp_path / "bench", data_work)
    assert trained == [] and weights.read_bytes() == (DEMO_DIR / AID_FILE).read_bytes()
    recorded = json.loads((DEMO_DIR / MANIFEST).read_text())["stage2"]["resolved_config"]
    assert json.loads((weights.parent / "resolved_config.json").read_text()) == recorded
    check_budget("full AID", 4500, tmp_path / "bench")  # the copied config has the budget
    benchmark.train_variant("full AID", 3000, tmp_path / "bench_3k", data_work)
    assert trained == [3000]

    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO_DIR, bundle, ignore=shutil.ignore_patterns("svd", "text_encoder"))
    (bundle / AID_FILE).write_bytes(b"retrained without updating demo_model.json")
    monkeypatch.setattr(benchmark, "DEMO_DIR", bundle)
    benchmark.train_variant("full AID", 4500, tmp_path / "bench_other", data_work)
    assert trained == [3000, 4500]


def test_repo_relative_spells_repository_folders_relatively_and_keeps_others(tmp_path):
    from lab.miniature.train_all import REPO, repo_relative

    values = {"model": {"svd": str(REPO / "demo_model" / "svd")}, "out": str(tmp_path),
              "list": [str(REPO / "configs")], "device": "cpu", "steps": 3}
    assert repo_relative(values) == {"model": {"svd": "demo_model/svd"}, "out": str(tmp_path),
                                     "list": ["configs"], "device": "cpu", "steps": 3}


def test_make_demo_trains_threads_reach_stage_two_and_leave_its_record_comparable(tmp_path):
    from lab.miniature.train_all import stage2_config

    default = stage2_config(tmp_path / "work", tmp_path / "out")
    two = stage2_config(tmp_path / "work", tmp_path / "out", threads=2)
    assert two.runtime.threads == 2 and default.runtime.threads != 2
    assert comparable_settings(two.to_dict()) == comparable_settings(default.to_dict())


class _Child:
    def __init__(self, code: int):
        self.code = code

    def wait(self) -> int:
        return self.code


def test_parallel_variants_fill_the_cache_once_then_split_the_variants(tmp_path, monkeypatch):
    """``--jobs``: the shared feature cache is filled before any child starts (two children
    would write it at once), each variant goes to exactly one child, and a failed child is
    reported with its variants and log."""
    import aid_model.train as train_module
    import lab.benchmark.benchmark as benchmark

    events = []
    def cache_pass(config, **kw):
        assert config.runtime.device == "cuda"  # the cache is filled where they train
        events.append(("cache", kw))

    monkeypatch.setattr(train_module, "train", cache_pass)

    def popen(command, stdout, stderr):
        share = command[command.index("--variants") + 1]
        assert command[command.index("--seed") + 1] == "1000"  # the parent's scenes
        assert command[command.index("--threads") + 1] == "1"  # and its threads
        assert command[command.index("--palette") + 1] == "varied"  # and its palette
        assert command[command.index("--device") + 1] == "cuda"  # and its device
        events.append(("child", share))
        return _Child(1 if "w/o SA" in share else 0)

    monkeypatch.setattr(benchmark.subprocess, "Popen", popen)
    args = argparse.Namespace(scenes=200, train_steps=1000, out=tmp_path, seed=1000, threads=1,
                              palette="varied", device="cuda")
    names = ["full AID", "w/o DE", "w/o ME", "w/o SA", "w/o states"]
    with pytest.raises(SystemExit, match="w/o DE, w/o SA") as failure:
        train_in_parallel(names, 2, args, tmp_path / "data")
    assert "job_1.log" in str(failure.value) and "full AID" not in str(failure.value)
    assert events[0] == ("cache", {"cache_only": True})
    assert events[1:] == [("child", "full AID,w/o ME,w/o states"), ("child", "w/o DE,w/o SA")]


def test_the_kept_table_prints_what_was_scored_and_names_the_rest(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no scores kept"):
        write_kept_table(tmp_path)
    for name, accuracy in (("w/o DE", 0.25), ("base alone (no text)", 0.125)):
        scored_variant(name, tmp_path, lambda name=name, accuracy=accuracy: (
            VariantScores(name, accuracy, 0.5, 0.1, 2.0, 8, 1.0),
            [torch.rand(8, 16, 16, 3) for _ in range(3)]))
    write_kept_table(tmp_path)
    text = capsys.readouterr().out
    rows = [line.split(" | ")[0].lstrip("| ") for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| variant")]
    assert rows == ["base alone (no text)", "w/o DE"]  # table order, not scoring order
    assert "not scored yet: full AID (bundled), ground truth through the VAE" in text
    assert "w/o DE" not in text.split("not scored yet:")[1].splitlines()[0]
    assert "paired against" not in text  # no full AID row to pair with
    with Image.open(tmp_path / "rollouts.png") as figure:  # two labelled clips a row
        assert figure.size == (LABEL_MARGIN + 2 + 8 * 18 - 2, 4 * 18 - 2)
    assert [row["name"] for row in json.loads((tmp_path / "scores.json").read_text())] == rows


def test_the_figure_labels_each_example_with_its_scene_and_verdict():
    scores = VariantScores("w/o DE", 0.5, 0.0, 0.1, 2.0, 4, 1.0, "1001")
    assert example_labels(scores, ["move the red square up", "push the blue circle left"]) == [
        'w/o DE, scene 0 "move the red square up": passes',
        'w/o DE, scene 1 "push the blue circle left": fails']
    unrecorded = VariantScores("w/o DE", 0.5, 0.0, 0.1, 2.0, 4, 1.0)  # kept before verdicts
    assert example_labels(unrecorded, ["move the red square up"]) == [
        'w/o DE, scene 0 "move the red square up"']


def test_a_folder_trained_at_another_budget_is_refused(tmp_path):
    """Weights and kept scores are found by variant name: a 1,000-step table must not pick
    up a 3,000-step run's."""
    check_budget("w/o DE", 1000, tmp_path)  # nothing there yet
    run = tmp_path / "wo_DE"
    run.mkdir()
    (run / "resolved_config.json").write_text(json.dumps({"optim": {"max_steps": 3000}}))
    check_budget("w/o DE", 3000, tmp_path)
    with pytest.raises(SystemExit, match="holds a 3000-step run of 'w/o DE'; give another --out"):
        check_budget("w/o DE", 1000, tmp_path)


def test_the_kept_table_compares_each_row_with_full_aid_scene_by_scene(tmp_path, capsys):
    records = {"full AID (bundled)": "11111100", "w/o DE": "10110100",
               "w/o SA": "11111111", "w/o ME": None}
    for name, record in records.items():
        accuracy = record.count("1") / 8 if record else 0.5
        scored_variant(name, tmp_path, lambda name=name, accuracy=accuracy, record=record: (
            VariantScores(name, accuracy, 0.5, 0.1, 2.0, 8, 1.0, record),
            [torch.rand(8, 16, 16, 3) for _ in range(2)]))
    write_kept_table(tmp_path)
    paired = capsys.readouterr().out.split("paired against full AID (bundled)")[1]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in paired.splitlines()
            if line.startswith("| ") and not line.startswith("| variant")}
    assert list(rows) == ["w/o DE", "w/o ME", "w/o SA"]  # full AID is the reference
    # w/o DE fails scenes 1 and 4 that full AID passes, and passes none it fails: p = 2/4.
    assert rows["w/o DE"] == "| w/o DE | 2 | 0 | -25.0 points | 0.5 |"
    assert rows["w/o SA"] == "| w/o SA | 0 | 2 | +25.0 points | 0.5 |"
    assert "no per-scene record" in rows["w/o ME"]


def test_weight_rows_are_named_files_and_bad_ones_are_refused(tmp_path):
    weights = tmp_path / "aid_final.safetensors"
    weights.write_bytes(b"")
    assert parse_weight_rows([f"5k steps={weights}"]) == {"5k steps": weights}
    with pytest.raises(SystemExit, match="give NAME=FILE"):
        parse_weight_rows([str(weights)])
    with pytest.raises(SystemExit, match=r"no file .*missing\.safetensors"):
        parse_weight_rows([f"5k={tmp_path / 'missing.safetensors'}"])
    with pytest.raises(SystemExit, match="'w/o DE' is taken"):
        parse_weight_rows([f"w/o DE={weights}"])
    with pytest.raises(SystemExit, match="'a' is taken"):
        parse_weight_rows([f"a={weights}", f"a={weights}"])


def test_the_kept_table_shows_weight_rows_last_and_pairs_them(tmp_path, capsys):
    for name, record in (("5k steps", "11110000"), ("full AID (bundled)", "11000000")):
        scored_variant(name, tmp_path, lambda name=name, record=record: (
            VariantScores(name, record.count("1") / 8, 0.25, 0.1, 2.0, 8, 1.0, record, 0.25, 0.0),
            [torch.rand(8, 16, 16, 3) for _ in range(2)]))
    write_kept_table(tmp_path, {"5k steps": tmp_path / "aid_5k.safetensors"})
    text = capsys.readouterr().out
    table, paired = text.split("paired against full AID (bundled)")
    assert table.index("| full AID (bundled) |") < table.index("| 5k steps | 50.0 % |")
    assert "| 5k steps | 0 | 2 | +25.0 points | 0.5 |" in paired


def test_an_empty_variant_list_scores_only_the_weight_rows(tmp_path, monkeypatch, capsys):
    """``--variants "" --weights NAME=FILE``: one process scores one candidate file while
    another scores the rest of the table into the same --out."""
    import lab.benchmark.benchmark as benchmark

    weights = tmp_path / "aid_final.safetensors"
    weights.write_bytes(b"")
    scored = []
    monkeypatch.setattr(benchmark, "variant_pipeline", lambda path, device: path)

    def evaluate(pipeline, name, num_scenes, **kw):
        scored.append((pipeline, name, num_scenes))
        return (VariantScores(name, 0.5, 0.25, 0.1, 2.0, num_scenes, 1.0, "10", 0.25, 0.0),
                [torch.rand(8, 4, 4, 3)])

    monkeypatch.setattr(benchmark, "evaluate_pipeline", evaluate)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)  # not this process's
    monkeypatch.setattr("sys.argv", ["benchmark", "--scenes", "2", "--variants", "",
                                     "--weights", f"4.5k={weights}", "--out", str(tmp_path)])
    benchmark.main()
    assert scored == [(weights, "4.5k", 2)]
    assert "| 4.5k | 50.0 % | 25.0 % | 25.0 % | 0.0 % |" in capsys.readouterr().out
    assert (tmp_path / "scores" / "4_5k.json").exists()


def test_a_thread_count_below_one_is_refused(tmp_path, monkeypatch):
    import lab.benchmark.benchmark as benchmark

    monkeypatch.setattr("sys.argv", ["benchmark", "--threads", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--threads 0: give 1 or more"):
        benchmark.main()


def test_kept_scores_of_other_inputs_are_scored_again(tmp_path):
    """A rebuilt model, a retrained weight file or another --scenes must not reuse a row."""
    calls, inputs = [], ["files A"]

    def score():
        calls.append(1)
        return (VariantScores("5k", 0.5, 0.25, 0.1, 2.0, 4, 1.0, "1010", 0.25, 0.0),
                [torch.rand(8, 4, 4, 3)])

    scored_variant("5k", tmp_path, score, lambda: inputs[0])
    scored_variant("5k", tmp_path, score, lambda: inputs[0])
    assert calls == [1]
    inputs[0] = "files B"
    kept, _ = scored_variant("5k", tmp_path, score, lambda: inputs[0])
    assert calls == [1, 1] and kept.inputs == "files B"
    assert json.loads((tmp_path / "scores" / "5k.json").read_text())["inputs"] == "files B"


def test_row_inputs_follow_file_contents_and_the_number_of_scenes(tmp_path):
    from aid_model.demo.paths import AID_FILE, DEMO_DIR

    weights = tmp_path / "aid.safetensors"
    bundled = (DEMO_DIR / AID_FILE).read_bytes()
    weights.write_bytes(bundled)
    rows = {"candidate": weights}
    first = row_inputs("candidate", 200, tmp_path, rows)
    # The same bytes under another name are the bundled row: nothing to score again.
    assert first == row_inputs("full AID (bundled)", 200, tmp_path, rows)
    assert first != row_inputs("candidate", 50, tmp_path, rows)
    weights.write_bytes(bundled[:-1] + bytes([bundled[-1] ^ 1]))  # same size, retrained
    assert row_inputs("candidate", 200, tmp_path, rows) != first
    # A variant not trained yet has no weights; once trained, its file counts.
    untrained = row_inputs("w/o DE", 200, tmp_path, rows)
    (tmp_path / "wo_DE").mkdir()
    (tmp_path / "wo_DE" / "aid_final.safetensors").write_bytes(b"trained")
    assert row_inputs("w/o DE", 200, tmp_path, rows) != untrained
    assert row_inputs("base alone (no text)", 200, tmp_path, rows) != row_inputs(
        "ground truth through the VAE (ceiling)", 200, tmp_path, rows)


def test_the_kept_table_names_rows_scored_from_other_files(tmp_path, capsys):
    weights = tmp_path / "aid_5k.safetensors"
    weights.write_bytes(b"first")
    rows = {"5k steps": weights}
    scored_variant("5k steps", tmp_path, lambda: (
        VariantScores("5k steps", 0.5, 0.25, 0.1, 2.0, 8, 1.0, "11110000", 0.25, 0.0),
        [torch.rand(8, 16, 16, 3) for _ in range(2)]),
        lambda: row_inputs("5k steps", 8, tmp_path, rows))
    write_kept_table(tmp_path, rows)
    assert "scored from other files" not in capsys.readouterr().out
    weights.write_bytes(b"other")
    write_kept_table(tmp_path, rows)
    assert capsys.readouterr().out.splitlines()[-1].endswith("scores them again): 5k steps")


def test_rows_are_split_into_look_alike_scenes_and_the_others(capsys):
    kinds = lookalike_scenes(40)
    assert kinds == lookalike_scenes(40, "heldout", 0) and set(kinds) == {"0", "1"}
    dataset = SyntheticClipDataset(40, split="heldout")
    assert kinds == "".join("1" if has_lookalike(dataset.clip(i)) else "0" for i in range(40))
    # A model that fails exactly the look-alike scenes, and one without a per-scene record.
    failing = "".join("0" if kind == "1" else "1" for kind in kinds)
    looks = kinds.count("1")
    rows = kind_rows([VariantScores("colour only", 0.5, 0.0, 0.1, 1.0, 40, 1.0, failing),
                      VariantScores("old", 0.5, 0.0, 0.1, 1.0, 40, 1.0)])
    assert rows == [f"| colour only | 0.0 % (0 / {looks}) | 100.0 % ({40 - looks} / "
                    f"{40 - looks}) |", "| old | — | — |"]


def test_sampling_rows_change_only_the_named_settings_and_refuse_bad_ones():
    taken = ["full AID (bundled)", "5k"]
    rows = parse_sampling_rows(["s_f 2.5=frame_scale=2.5, text_scale=4",
                                "late=guidance_interval=0:1,sampler=heun,steps=30",
                                "no ramp=frame_scale_first=none"], DEMO_OPTIONS, taken)
    assert rows["s_f 2.5"] == DEMO_OPTIONS.with_(frame_scale=2.5, text_scale=4.0)
    assert rows["late"] == DEMO_OPTIONS.with_(guidance_interval=(0.0, 1.0), sampler="heun",
                                              steps=30)
    assert rows["no ramp"] == DEMO_OPTIONS.with_(frame_scale_first=None)
    refused = {
        "s_f": "give NAME=KEY=VALUE",
        "5k=steps=10": "'5k' is taken",
        "a=seed=3": "'seed' is not a setting a row may change",
        "a=frame_scale=high": "frame_scale='high' is not a number",
        "a=steps=many": "steps='many' is not an integer",
        "a=guidance_interval=0.3": "is not LO:HI, e.g. 0.3:1000 or none",
        "a=sampler=rk4": "unknown sampler 'rk4'",
        "a=steps=0": "steps must be a whole number >= 1, got 0",
    }
    for item, message in refused.items():
        with pytest.raises(SystemExit, match=re.escape(message)):
            parse_sampling_rows([item], DEMO_OPTIONS, taken)
    with pytest.raises(SystemExit, match="'a' is taken"):
        parse_sampling_rows(["a=steps=10", "a=steps=12"], DEMO_OPTIONS, taken)


def test_sampling_rows_score_the_bundled_model_with_their_options(tmp_path, monkeypatch,
                                                                  capsys):
    import aid_model.demo.load as load
    import lab.benchmark.benchmark as benchmark

    scored = []
    monkeypatch.setattr(load, "load_demo_pipeline", lambda device: "bundled pipeline")

    def evaluate(pipeline, name, num_scenes, **kw):
        scored.append((pipeline, name, kw.get("options")))
        return (VariantScores(name, 0.5, 0.25, 0.1, 2.0, num_scenes, 1.0, "10", 0.25, 0.0),
                [torch.rand(8, 4, 4, 3)])

    monkeypatch.setattr(benchmark, "evaluate_pipeline", evaluate)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)
    argv = ["benchmark", "--scenes", "2", "--variants", "", "--out", str(tmp_path),
            "--sampling", "s_t 4=text_scale=4"]
    monkeypatch.setattr("sys.argv", argv)
    benchmark.main()
    assert scored == [("bundled pipeline", "s_t 4", DEMO_OPTIONS.with_(text_scale=4.0))]
    # Kept under its options' fingerprint: the same row is not scored twice, another
    # setting under the same name is.
    benchmark.main()
    assert len(scored) == 1
    monkeypatch.setattr("sys.argv", [*argv[:-1], "s_t 4=text_scale=4.5"])
    benchmark.main()
    assert scored[-1][2] == DEMO_OPTIONS.with_(text_scale=4.5)
    assert "| s_t 4 | 50.0 % |" in capsys.readouterr().out


def test_another_seed_is_another_fingerprint_and_seed_0_is_the_kept_one(tmp_path):
    """Rows kept before --seed existed were scored on seed 0: they still match."""
    rows = {"candidate": tmp_path / "aid.safetensors"}
    rows["candidate"].write_bytes(b"weights")
    seed_0 = row_inputs("candidate", 200, tmp_path, rows)
    assert seed_0 == row_inputs("candidate", 200, tmp_path, rows, seed=0)
    assert row_inputs("candidate", 200, tmp_path, rows, seed=1000) != seed_0


def test_look_alike_rows_follow_the_scenes_of_the_seed():
    kinds = lookalike_scenes(40, seed=1000)
    assert kinds != lookalike_scenes(40)
    failing = "".join("0" if kind == "1" else "1" for kind in kinds)
    looks = kinds.count("1")
    row = VariantScores("colour only", 0.5, 0.0, 0.1, 1.0, 40, 1.0, failing)
    assert kind_rows([row], seed=1000) == [
        f"| colour only | 0.0 % (0 / {looks}) | 100.0 % ({40 - looks} / {40 - looks}) |"]


def test_a_command_that_would_score_nothing_is_refused(tmp_path, monkeypatch):
    import lab.benchmark.benchmark as benchmark

    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)
    for variants, message in (("", "chooses no variant and no --weights or --sampling row"),
                              ("w/o DE", "'w/o DE' without --train-steps")):
        monkeypatch.setattr("sys.argv", ["benchmark", "--variants", variants,
                                         "--out", str(tmp_path)])
        with pytest.raises(SystemExit, match=re.escape(message)):
            benchmark.main()
    assert not (tmp_path / "seed.json").exists()  # refused before the folder was claimed


def test_seed_option_scores_those_scenes_into_their_own_folder(tmp_path, monkeypatch, capsys):
    import lab.benchmark.benchmark as benchmark

    weights = tmp_path / "aid_final.safetensors"
    weights.write_bytes(b"")
    scored = []
    monkeypatch.setattr(benchmark, "variant_pipeline", lambda path, device: path)

    def evaluate(pipeline, name, num_scenes, **kw):
        scored.append((name, kw.get("seed")))
        return (VariantScores(name, 0.5, 0.25, 0.1, 2.0, num_scenes, 1.0, "10", 0.25, 0.0),
                [torch.rand(8, 4, 4, 3)])

    monkeypatch.setattr(benchmark, "evaluate_pipeline", evaluate)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["benchmark", "--scenes", "2", "--variants", "",
                                     "--weights", f"4.5k={weights}", "--seed", "1000"])
    benchmark.main()
    assert scored == [("4.5k", 1000)]
    assert (tmp_path / "runs" / "bench_demo_seed1000" / "scores" / "4_5k.json").exists()
    monkeypatch.setattr("sys.argv", ["benchmark", "--seed", "-1"])
    with pytest.raises(SystemExit, match="--seed -1: give 0"):
        benchmark.main()


def test_a_folder_keeps_the_scores_of_one_seed(tmp_path):
    from lab.benchmark.benchmark import claim_scenes

    claim_scenes(tmp_path / "new", 1000)
    claim_scenes(tmp_path / "new", 1000)  # the same seed again: fine
    with pytest.raises(SystemExit, match=r"keeps the scores of --seed 1000, not 0: give "
                                         r"--seed 1000, or another --out for seed 0"):
        claim_scenes(tmp_path / "new", 0)
    (tmp_path / "old" / "scores").mkdir(parents=True)  # kept before --seed existed: seed 0
    with pytest.raises(SystemExit, match="keeps the scores of --seed 0, not 1000"):
        claim_scenes(tmp_path / "old", 1000)
    claim_scenes(tmp_path / "old", 0, record_it=False)  # --kept-only: checks, writes nothing
    assert not (tmp_path / "old" / "seed.json").exists()
    claim_scenes(tmp_path / "old", 0)
    assert json.loads((tmp_path / "old" / "seed.json").read_text()) == {"seed": 0,
                                                                         "palette": "exact"}


def _finished_run(folder, name: str, steps: int, content: bytes) -> None:
    """A benchmark folder's finished run of ``name``: its weights and resolved budget."""
    from lab.benchmark.benchmark import variant_slug

    run = folder / variant_slug(name)
    run.mkdir(parents=True)
    (run / "resolved_config.json").write_text(json.dumps({"optim": {"max_steps": steps}}))
    (run / "aid_final.safetensors").write_bytes(content)


def test_trained_in_scores_another_folders_variants_without_training_them(tmp_path,
                                                                            monkeypatch):
    """The 1,000-scene check of a table: the variants runs/bench_demo trained are scored
    into another --out, not trained there again (nor their training set written)."""
    import aid_model.train as train_module
    import lab.benchmark.benchmark as benchmark

    source, out = tmp_path / "bench_demo", tmp_path / "bench_1000"
    _finished_run(source, "w/o DE", 10, b"trained w/o DE")
    _finished_run(source, "w/o ME", 10, b"trained w/o ME")
    scored = []

    def evaluate(pipeline, name, num_scenes, **kw):
        scored.append((name, pipeline, num_scenes))
        return (VariantScores(name, 0.5, 0.25, 0.1, 2.0, num_scenes, 1.0, "101", 0.25, 0.0),
                [torch.rand(8, 4, 4, 3)])

    def refuse(*args, **kwargs):
        raise AssertionError("nothing may be trained or written for training")

    monkeypatch.setattr(benchmark, "variant_pipeline", lambda path, device: path)
    monkeypatch.setattr(benchmark, "evaluate_pipeline", evaluate)
    monkeypatch.setattr(train_module, "train", refuse)
    monkeypatch.setattr("lab.miniature.train_all.write_training_set", refuse)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)
    argv = ["benchmark", "--scenes", "3", "--train-steps", "10", "--variants", "w/o DE,w/o ME",
            "--jobs", "2", "--out", str(out), "--trained-in", str(source),
            "--data-work", str(tmp_path / "no_data")]
    monkeypatch.setattr("sys.argv", argv)
    benchmark.main()
    taken = out / "wo_DE" / "aid_final.safetensors"
    assert scored == [("w/o DE", taken, 3), ("w/o ME", out / "wo_ME" / taken.name, 3)]
    assert taken.read_bytes() == b"trained w/o DE"
    assert json.loads((out / "wo_DE" / "resolved_config.json").read_text()) == {
        "optim": {"max_steps": 10}}
    benchmark.main()  # again: the copies are there and the kept scores are reused
    assert len(scored) == 2


def test_trained_in_refuses_unfinished_other_budget_and_conflicting_runs(tmp_path,
                                                                         monkeypatch):
    import lab.benchmark.benchmark as benchmark
    from lab.benchmark.benchmark import take_trained_runs

    source, out = tmp_path / "bench_demo", tmp_path / "bench_1000"
    _finished_run(source, "w/o DE", 10, b"trained w/o DE")
    with pytest.raises(SystemExit, match=re.escape(
            "no finished run of 'w/o ME' there")):
        take_trained_runs(["w/o ME"], 10, source, out)
    with pytest.raises(SystemExit, match="holds a 10-step run of 'w/o DE'"):
        take_trained_runs(["w/o DE"], 20, source, out)
    _finished_run(out, "w/o DE", 10, b"another w/o DE")
    with pytest.raises(SystemExit, match="holds other weights of 'w/o DE'"):
        take_trained_runs(["w/o DE"], 10, source, out)
    assert (out / "wo_DE" / "aid_final.safetensors").read_bytes() == b"another w/o DE"
    take_trained_runs(["w/o DE"], 10, source, source)  # the folder itself: nothing to copy
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)
    monkeypatch.setattr("sys.argv", ["benchmark", "--variants", "w/o DE", "--out", str(out),
                                     "--trained-in", str(source)])
    with pytest.raises(SystemExit, match="give the --train-steps the variants were trained"):
        benchmark.main()
