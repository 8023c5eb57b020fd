"""Training configs: the shipped files, ``--set`` overrides with type checks, and the errors
a user meets (each names the key)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train_support import tiny_config

from aid_model.cli import main
from aid_model.train import ConfigError, build_config, load_train_config
from aid_model.train.config import (
    apply_override,
    read_config_file,
    with_current_defaults,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# The paper's settings (§4.1, UCF-101 in the appendix): dataset → (T, K).
PAPER = {"ssv2": (12, 2), "bridge": (16, 1), "epic100": (12, 1), "ucf101": (16, 1),
         "ucf101_k5": (16, 5)}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_configs_load_with_the_papers_frames_and_references(name):
    config = load_train_config(CONFIGS / f"{name}.yaml")
    frames, references = PAPER[name]
    assert (config.aid.num_frames, config.aid.num_reference_frames) == (frames, references)
    # The dataset gives the clips the model is built for.
    assert config.data["num_frames"] == frames
    assert config.data["num_reference_frames"] == references
    assert config.data["size"] == 256
    assert config.data["name"] == name.removesuffix("_k5")
    assert config.conditioning.motion_bucket_id == 127
    assert (config.dropout.text, config.dropout.frame, config.dropout.both) == (0.05,) * 3
    assert (config.loss.p_mean, config.loss.p_std) == (0.7, 1.6)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_config_loads(path):
    config = load_train_config(path)
    assert config.data["name"] and config.model.svd


def test_shipped_data_sections_only_use_options_the_datasets_take():
    build = pytest.importorskip("aid_model.data.build")
    for path in sorted(CONFIGS.glob("*.yaml")):
        data = load_train_config(path).data
        assert data["name"] in build.DATASET_NAMES, path
        assert set(data) - {"name"} <= set(build.dataset_options(data["name"])), path


def test_the_tiny_cpu_config_is_the_tests_config():
    config = load_train_config(CONFIGS / "tiny_cpu.yaml")
    ours = build_config(tiny_config("runs/x"))
    assert config.model.unet_head_channels == ours.model.unet_head_channels == 16
    assert config.runtime.device == "cpu" and config.runtime.mixed_precision == "no"
    assert config.aid.dqformer_heads == ours.aid.dqformer_heads
    assert Path(config.model.svd).name == Path(ours.model.svd).name


def test_json_and_yaml_configs_read_the_same(tmp_path):
    yaml_values = read_config_file(CONFIGS / "ssv2.yaml")
    (tmp_path / "ssv2.json").write_text(json.dumps(yaml_values))
    assert load_train_config(tmp_path / "ssv2.json") == load_train_config(CONFIGS / "ssv2.yaml")


def test_overrides_are_parsed_to_the_fields_types():
    config = load_train_config(CONFIGS / "ssv2.yaml", [
        "optim.lr=5e-5",              # PyYAML alone reads 5e-5 as text; here a number
        "optim.max_steps=1000",
        "optim.warmup_steps=1e2",     # an integral float is an int
        "optim.betas=[0.8, 0.95]",
        "ema.enabled=false",
        "runtime.gradient_checkpointing=yes",
        "model.clip_num_heads=16",
        "text_encoder.tokenizer_dir=null",
        "output_dir=runs/ssv2 lr 5e-5",
        "model.svd=/models/svd:xt/0.10",   # strings stay as written
        "aid.num_states=2",
        "data.root=/data/ssv2",
        "data.max_samples=100",       # free-form section: new keys allowed, values parsed
        "conditioning.cond_aug.distribution=lognormal",
        "model.aid_weights=runs/aid_final.safetensors",
        "data.states=[a, b]",         # YAML's reading where JSON fails
    ])
    assert config.optim.lr == 5e-5 and isinstance(config.optim.lr, float)
    assert config.optim.max_steps == 1000 and config.optim.warmup_steps == 100
    assert config.optim.betas == [0.8, 0.95]
    assert config.ema.enabled is False and config.runtime.gradient_checkpointing is True
    assert config.model.clip_num_heads == 16 and config.text_encoder.tokenizer_dir is None
    assert config.output_dir == "runs/ssv2 lr 5e-5"
    assert config.model.svd == "/models/svd:xt/0.10"
    assert config.aid.num_states == 2
    assert config.data["root"] == "/data/ssv2" and config.data["max_samples"] == 100
    assert config.conditioning.cond_aug.distribution == "lognormal"
    assert config.model.aid_weights == "runs/aid_final.safetensors"
    assert config.data["states"] == ["a", "b"]


@pytest.mark.parametrize(("override", "message"), [
    ("optim.lrate=1", "unknown config key 'optim.lrate' (= 1); did you mean 'optim.lr'?"),
    ("optimiser.lr=1", "unknown config key 'optimiser'"),
    ("aid.num_frame=4", "unknown config key 'aid.num_frame'"),
    ("conditioning.cond_aug.sigma=1", "unknown config key 'conditioning.cond_aug.sigma'"),
    ("optim.max_steps=ten", "optim.max_steps must be an integer, got 'ten'"),
    ("optim.max_steps=2.5", "optim.max_steps must be an integer, got 2.5"),
    ("optim.lr=fast", "optim.lr must be a number"),
    ("ema.enabled=maybe", "ema.enabled must be true or false"),
    ("optim.betas=0.9", "optim.betas must be a list"),
    ("optim.lr.value=1", "optim.lr is a value, not a section"),
    ("optim.lr", "must look like section.key=value"),
    ("dropout.text=1.5", "dropout.text must be a probability"),
    ("dropout.both=0.95", "must be <= 1"),
    ("loss.frames=some", "loss.frames must be one of"),
    ("aid.num_reference_frames=12", "aid: AIDConfig.num_reference_frames (12) must be smaller"),
    ("cache.latents=true", "conditioning.cond_aug.distribution=fixed"),
    ("optim.frozen_groups=[dqformer]", "experiments since removed run at commit 198c76e"),
    ("model.dtype=float64", "model.dtype must be one of ['float32', 'bfloat16', 'float16'], "
                            "got 'float64'"),
])
def test_bad_overrides_are_errors_that_name_the_key(override, message):
    overrides = [override]
    if override == "cache.latents=true":
        overrides.insert(0, "conditioning.cond_aug.distribution=lognormal")
    with pytest.raises(ConfigError, match=_literal(message)):
        load_train_config(CONFIGS / "ssv2.yaml", overrides)


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_unknown_keys_in_a_file_name_the_key(tmp_path):
    values = read_config_file(CONFIGS / "bridge.yaml")
    values["optim"]["learning_rate"] = 1e-4
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(values))  # JSON is YAML
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'optim.learning_rate'"):
        load_train_config(path)
    values["optim"].pop("learning_rate")
    values["runtime"]["mixed_precision"] = False  # what an unquoted `no` becomes in YAML
    path.write_text(json.dumps(values))
    with pytest.raises(ConfigError, match="quote the value"):
        load_train_config(path)


def test_yaml_numbers_without_a_dot_are_numbers(tmp_path):
    # PyYAML (YAML 1.1) reads 5e-5 as text; JSON, YAML 1.2 and every user read a number.
    path = tmp_path / "lr.yaml"
    text = (CONFIGS / "bridge.yaml").read_text()
    path.write_text(text.replace("lr: 1.0e-4", "lr: 5e-5")
                    .replace("max_steps:", "max_steps: 1e4 #"))
    config = load_train_config(path)
    assert config.optim.lr == 5e-5 and config.optim.max_steps == 10000
    path.write_text(text.replace("lr: 1.0e-4", "lr: '5e-5'"))  # quoted: text, refused
    with pytest.raises(ConfigError, match=r"optim.lr must be a number, got '5e-5'"):
        load_train_config(path)


def test_a_stored_config_reads_through_todays_schema():
    """The resume check's reading: keys added since take their defaults; a config this
    schema cannot read (a key since removed, a value of another type) is not read."""
    today = build_config(tiny_config("runs/x")).to_dict()
    stored = json.loads(json.dumps(today))
    del stored["model"]["aid_weights"]  # a run from before the key existed
    assert with_current_defaults(stored) == today
    stored["optim"]["frozen_groups"] = []
    assert with_current_defaults(stored) is None
    del stored["optim"]["frozen_groups"]
    stored["optim"]["lr"] = "fast"
    assert with_current_defaults(stored) is None


def test_missing_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_train_config(tmp_path / "nope.yaml")
    (tmp_path / "c.toml").write_text("x = 1")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.json"):
        load_train_config(tmp_path / "c.toml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_train_config(tmp_path / "list.yaml")


def test_apply_override_edits_the_raw_mapping():
    values: dict = {}
    apply_override(values, "optim.lr=0.5")
    apply_override(values, "data.extra.nested=3")
    assert values == {"optim": {"lr": 0.5}, "data": {"extra": {"nested": 3}}}


def test_the_cli_reports_config_errors_and_exits_2(capsys):
    code = main(["train", "--config", str(CONFIGS / "ssv2.yaml"), "--set", "optim.lrate=1"])
    assert code == 2
    assert "unknown config key 'optim.lrate'" in capsys.readouterr().err


def test_the_cli_trains_the_tiny_config(tmp_path, monkeypatch, capsys):
    from test_train_support import SquareClips, svd_fixture, text_fixture

    import aid_model.train.trainer as trainer_module

    built = []

    def fake_build(config):  # the data package is tested on its own
        built.append(config)
        return SquareClips(4)

    monkeypatch.setattr(trainer_module, "build_training_dataset", fake_build)
    code = main([
        "train", "--config", str(CONFIGS / "tiny_cpu.yaml"),
        "--set", f"model.svd={svd_fixture()}", "--set", f"text_encoder.source={text_fixture()}",
        "--set", f"output_dir={tmp_path}", "--set", "aid.num_frames=6",
        "--set", "optim.max_steps=2", "--set", "loader.batch_size=2",
        "--set", "logging.progress_bar=false", "--set", "data.root=/somewhere",
    ])
    assert code == 0, capsys.readouterr().err
    assert built[0]["root"] == "/somewhere" and built[0]["name"] == "generic"
    assert (tmp_path / "aid_final.safetensors").is_file()
    assert "AID weights:" in capsys.readouterr().out
