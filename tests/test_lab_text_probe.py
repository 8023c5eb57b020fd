"""The text probe (lab/miniature/text_probe.py): its scene pairs differ only in the
instruction's direction, a model whose MCondition branch is silent scores exactly no
dependence, and one whose branch speaks scores some."""

from __future__ import annotations

import pytest
import torch

from aid_model.aid import attach_aid
from aid_model.demo.components import build_components, write_text_encoder
from aid_model.synthetic import vocabulary
from aid_model.synthetic.clip import generate_clip
from aid_model.synthetic.instructions import parse_instruction
from aid_model.synthetic.world import OPPOSITE
from aid_model.text_encoder import load_text_encoder
from lab.miniature.layouts import demo_aid_config
from lab.miniature.text_probe import opposite_instruction, probe, probe_samples, probe_table


@pytest.fixture(scope="module")
def samples():
    return probe_samples(num_scenes=2)


@pytest.fixture(scope="module")
def model_and_tower(tmp_path_factory):
    model = attach_aid(build_components(seed=1), demo_aid_config()).eval()
    tower = load_text_encoder(write_text_encoder(tmp_path_factory.mktemp("text"), vocabulary()))
    return model, tower


def test_each_pair_is_one_scene_with_the_direction_reversed(samples):
    true, opposite = samples
    for a, b in zip(true, opposite, strict=True):
        assert torch.equal(a["frames"], b["frames"]) and a["index"] == b["index"]
        said, reversed_ = parse_instruction(a["instruction"]), parse_instruction(b["instruction"])
        assert reversed_.target == said.target
        assert reversed_.direction == OPPOSITE[said.direction]
        assert a["states"] != b["states"] and len(a["states"]) == len(b["states"]) == 4
    with pytest.raises(ValueError, match="random motion"):
        opposite_instruction(generate_clip(7, random_motion=True))


def test_a_silent_mcondition_branch_scores_no_dependence(model_and_tower, samples):
    model, tower = model_and_tower
    rows = probe(model, tower, samples, sigmas=(0.5, 8.0))  # AID starts as the base
    assert [row.difference for row in rows] == [0.0, 0.0]
    assert [row.ratio for row in rows] == [1.0, 1.0]
    assert all(row.error_true > 0 for row in rows)


def test_a_speaking_branch_scores_a_dependence(model_and_tower, samples):
    model, tower = model_and_tower
    generator = torch.Generator().manual_seed(0)
    saved = {}
    for name, parameter in model.unet.named_parameters():
        if "to_out_mcondition" in name and name.endswith("weight"):
            saved[name] = parameter.detach().clone()
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.5
    assert saved, "the UNet has no MCondition output projection"
    try:
        rows = probe(model, tower, samples, sigmas=(0.5, 8.0))
    finally:
        parameters = dict(model.unet.named_parameters())
        for name, tensor in saved.items():
            parameters[name].data = tensor
    assert all(row.difference > 1e-4 for row in rows)
    assert all(row.ratio != 1.0 for row in rows)
    table = probe_table({"800": [vars(row) | {"ratio": row.ratio} for row in rows]})
    assert table.splitlines()[2].startswith("| 800 | ")
    assert table.splitlines()[0].startswith("| weights | output difference at σ = 0.5 / 8 |")


def test_the_screen_refuses_a_missing_base_or_an_unkept_step_before_any_work(tmp_path):
    from lab.miniature.text_screen import main, screen

    with pytest.raises(SystemExit, match="no svd, text_encoder"):
        main(["--base", str(tmp_path / "nowhere"), "--work", str(tmp_path / "w")])
    with pytest.raises(SystemExit, match="--probe-at 250 900: probe only checkpointed"):
        screen(tmp_path / "base", tmp_path / "w", 800, [250, 500, 900], "exact", 1)
    assert not (tmp_path / "w").exists()


def test_a_training_run_is_probed_at_a_kept_checkpoint_and_at_its_end(tmp_path):
    from aid_model.synthetic.dataset import SyntheticClipDataset
    from aid_model.train import train
    from lab.miniature.text_probe import probe_run
    from lab.miniature.train_all import stage2_config

    base = tmp_path / "base"
    build_components(seed=2).save_pretrained(base / "svd")
    write_text_encoder(base / "text_encoder", vocabulary())
    config = stage2_config(tmp_path / "work", base, threads=1, extra=[
        "optim.max_steps=2", "optim.warmup_steps=0", "checkpoint.every=1",
        "loader.batch_size=2", "cache.latents=false", "cache.text=false"])
    train(config, dataset=SyntheticClipDataset(2))
    run = tmp_path / "work" / "aid"

    results = probe_run(run, [1, None], num_scenes=1)
    assert list(results) == ["1", "final"]
    for rows in results.values():
        assert [row["sigma"] for row in rows] == [0.5, 2.0, 8.0, 30.0]
        # Two steps moved the MCondition output projections off zero: the text is heard.
        assert all(row["difference"] > 0 and row["error_true"] > 0 for row in rows)
    with pytest.raises(SystemExit, match=r"no checkpoints/step_00000005.*step_00000001"):
        probe_run(run, [5])
