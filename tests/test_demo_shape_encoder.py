"""``python -m aid_model.demo.shape_encoder``: the first-frame encoder trained on the world's
labels, written as an AID weight file that the stage-2 run starts from."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from aid_model.aid import attach_aid, load_aid_weights, trainable_parameters
from aid_model.demo.paths import DEMO_DIR, SVD_DIR
from aid_model.demo.shape_encoder import Settings, main, object_labels, train_shape_encoder
from aid_model.svd import load_svd
from aid_model.synthetic.world import COLOURS, SHAPES
from aid_model.train.config import load_train_config

STAGE2 = Path(__file__).resolve().parents[1] / "configs" / "demo_synthetic.yaml"
OVERRIDES = ["aid.first_frame_query=8", f"model.svd={DEMO_DIR / SVD_DIR}"]


def test_each_object_is_labelled_at_the_latent_cell_of_its_centre():
    objects = (SimpleNamespace(colour="red", shape="triangle", x=63.9, y=0.0),
               SimpleNamespace(colour="yellow", shape="circle", x=8.0, y=39.5))
    clips = [SimpleNamespace(objects=()), SimpleNamespace(objects=objects)]
    labels = object_labels(clips, grid=(8, 8), image_size=(64, 64))
    assert labels.scene.tolist() == [1, 1]
    assert labels.row.tolist() == [0, 4] and labels.column.tolist() == [7, 1]
    assert labels.shape.tolist() == [SHAPES.index("triangle"), SHAPES.index("circle")]
    assert labels.colour.tolist() == [list(COLOURS).index("red"), list(COLOURS).index("yellow")]


def test_the_encoder_learns_the_shape_and_the_rest_starts_where_the_trainer_would():
    torch.set_num_threads(1)
    config = load_train_config(STAGE2, OVERRIDES)
    settings = Settings(train_scenes=200, heldout_scenes=50, steps=150, objects_per_step=64)
    model, report = train_shape_encoder(config, settings, log=lambda message: None)
    # Far above chance (the most common shape), from 150 steps on 200 scenes.
    assert report["shape_accuracy"] >= report["shape_chance"] + 0.2, report
    assert report["colour_accuracy"] >= 0.8, report

    torch.manual_seed(config.seed)
    fresh = attach_aid(load_svd(config.model.svd), config.aid)
    fresh_tensors = trainable_parameters(fresh)
    for name, parameter in trainable_parameters(model).items():
        changed = not torch.equal(parameter, fresh_tensors[name])
        assert changed == (".first_frame_encoder." in name), name


def test_the_file_loads_into_the_stage_2_model_with_its_report(tmp_path, capsys):
    out = tmp_path / "encoder.safetensors"
    args = ["--config", str(STAGE2), "--out", str(out), "--steps", "3",
            "--train-scenes", "8", "--heldout-scenes", "4"]
    for override in OVERRIDES:
        args += ["--set", override]
    assert main(args) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["settings"]["steps"] == 3 and 0 <= report["shape_accuracy"] <= 1
    assert str(out) in capsys.readouterr().out

    config = load_train_config(STAGE2, OVERRIDES)
    torch.manual_seed(config.seed)
    model = attach_aid(load_svd(config.model.svd), config.aid)
    fresh = model.unet.first_frame_encoder.layers[0].weight.detach().clone()
    load_aid_weights(model, out)  # the stage-2 aid section: accepted, every tensor used
    assert not torch.equal(model.unet.first_frame_encoder.layers[0].weight, fresh)


def test_without_a_first_frame_encoder_the_fix_is_named():
    config = load_train_config(STAGE2, [f"model.svd={DEMO_DIR / SVD_DIR}"])
    with pytest.raises(ValueError, match=r"--set aid\.first_frame_query=64"):
        train_shape_encoder(config, Settings(steps=1), log=print)
