"""Training on the tiny fixtures: it learns, it touches only AID's trained set, a resumed run
continues exactly, cached features train like online ones, dropout reaches the network."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open
from test_train_support import SquareClips, svd_fixture, tiny_config

from aid_model.aid import AIDWeightsError, attach_aid_from_file, trainable_parameters
from aid_model.svd import load_svd
from aid_model.train import ConfigError, Trainer, build_config, train
from aid_model.train.checkpoint import STATE_FILE
from aid_model.train.data import IndexedDataset, collate_training


def _batch(dataset, indices) -> dict:
    return collate_training([IndexedDataset(dataset)[i] for i in indices])


def _without_dropout(settings):
    return replace(settings, dropout=replace(settings.dropout, text=0.0, frame=0.0, both=0.0))


def _frozen_tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every base tensor that must not change: UNet (but the trained cross-attention), VAE,
    CLIP image tower, text encoder."""
    trained = {id(p) for p in trainer.parameters.values()}
    tensors = {}
    modules = {"unet": trainer.components.unet, "vae": trainer.components.vae,
               "clip": trainer.components.image_encoder, "text": trainer.text_encoder}
    for prefix, module in modules.items():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if id(tensor) not in trained:
                tensors[f"{prefix}.{name}"] = tensor.detach().clone()
    return tensors


def test_a_few_dozen_steps_lower_the_loss_and_touch_only_the_trainable_set(tmp_path):
    dataset = SquareClips()
    values = tiny_config(tmp_path, optim={"max_steps": 24, "lr": 2e-3, "warmup_steps": 0},
                         checkpoint={"every": 12})
    trainer = Trainer(build_config(values), dataset=dataset)
    trainer.setup()
    try:
        frozen = _frozen_tensors(trainer)
        initial = {n: p.detach().clone() for n, p in trainer.parameters.items()}
        assert set(trainer.parameters) == set(trainable_parameters(trainer.model))
        assert all(p.requires_grad for p in trainer.parameters.values())
        assert sum(p.requires_grad for p in trainer.components.vae.parameters()) == 0

        batch = _batch(dataset, range(len(dataset)))
        settings = _without_dropout(trainer.settings)

        def held_out_loss() -> float:  # fixed σ and ε (streams of steps no run reaches)
            with torch.no_grad():
                return sum(trainer.loss_on_batch(batch, 10**6 + k, settings=settings).loss.item()
                           for k in range(3)) / 3

        before = held_out_loss()
        result = trainer.fit()
        after = held_out_loss()

        assert after < 0.85 * before, (before, after)
        for name, tensor in frozen.items():
            prefix, _, inner = name.partition(".")
            module = {"unet": trainer.components.unet, "vae": trainer.components.vae,
                      "clip": trainer.components.image_encoder,
                      "text": trainer.text_encoder}[prefix]
            current = dict([*module.named_parameters(), *module.named_buffers()])[inner]
            assert torch.equal(current, tensor), f"frozen tensor {name} changed"
        changed = [n for n, p in trainer.parameters.items() if not torch.equal(p, initial[n])]
        assert len(changed) == len(initial)  # every trained tensor moved
    finally:
        trainer.close()

    # The run's files: log, curve, checkpoints, and a final weight file that loads.
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 25))
    assert [r["loss"] for r in records] == pytest.approx(result.losses)
    assert all(r["lr"] == pytest.approx(2e-3, rel=0.05) for r in records[:1])
    assert (tmp_path / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in result.checkpoints] == ["step_00000012", "step_00000024"]
    fresh = load_svd(svd_fixture(), unet_head_channels=16, clip_num_heads=2)
    loaded = attach_aid_from_file(fresh, result.final_weights)
    with safe_open(str(tmp_path / "checkpoints/step_00000024/aid_ema.safetensors"), "pt") as f:
        for name, parameter in trainable_parameters(loaded).items():
            assert torch.equal(parameter.detach(), f.get_tensor(name)), name  # EMA exported


def test_resume_continues_exactly_like_the_uninterrupted_run(tmp_path):
    # 6 samples, batch 2: 3 batches an epoch; checkpoint at step 2 (mid-epoch), so the
    # resumed run crosses an epoch boundary. Predicted-frames loss and log-normal cond_aug
    # exercise the per-sample streams.
    sections = dict(optim={"max_steps": 5, "warmup_steps": 2, "grad_accumulation": 1},
                    checkpoint={"every": 2, "keep_last": 5}, loss={"frames": "predicted"},
                    conditioning={"cond_aug": {"distribution": "lognormal"}},
                    dropout={"text": 0.2, "frame": 0.2, "both": 0.2})
    straight = train(build_config(tiny_config(tmp_path / "a", **sections)),
                     dataset=SquareClips(6))
    resumed = train(build_config(tiny_config(tmp_path / "a", **sections)),
                    resume=str(tmp_path / "a/checkpoints/step_00000002"), dataset=SquareClips(6))

    assert straight.steps == [1, 2, 3, 4, 5]
    assert resumed.steps == [3, 4, 5]
    assert resumed.losses == straight.losses[2:]  # bit-identical
    a = trainable_parameters(straight.trainer.model)
    b = trainable_parameters(resumed.trainer.model)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    for name, shadow in straight.trainer.ema.shadow.items():
        assert torch.equal(shadow, resumed.trainer.ema.shadow[name]), name
    assert resumed.trainer.scheduler.state_dict() == straight.trainer.scheduler.state_dict()
    # The log holds every step once, the resumed ones rewritten.
    steps = [json.loads(line)["step"] for line in (tmp_path / "a/log.jsonl").read_text()
             .splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_a_run_stopped_early_continues_on_the_full_schedule(tmp_path):
    sections = dict(optim={"max_steps": 4, "warmup_steps": 1},
                    checkpoint={"every": 10, "keep_last": 5})
    straight = train(build_config(tiny_config(tmp_path / "a", **sections)),
                     dataset=SquareClips(6))
    stopped = train(build_config(tiny_config(tmp_path / "b", **sections)),
                    dataset=SquareClips(6), until=3)
    assert stopped.steps == [1, 2, 3]
    assert [p.name for p in stopped.checkpoints] == ["step_00000003"]
    assert stopped.final_weights is None and not (tmp_path / "b/aid_final.safetensors").exists()
    # Steps 1-3 ran on the 4-step schedule: the same rates and losses as the whole run.
    assert stopped.losses == straight.losses[:3]

    def rates(run: str) -> list[float]:
        return [json.loads(line)["lr"] for line in (tmp_path / run / "log.jsonl").read_text()
                .splitlines()]

    assert rates("b") == rates("a")[:3]
    continued = train(build_config(tiny_config(tmp_path / "b", **sections)), resume="auto",
                      dataset=SquareClips(6))
    assert continued.steps == [4]
    assert continued.losses == straight.losses[3:]
    assert continued.final_weights is not None
    with pytest.raises(ValueError, match="until=5"):
        train(build_config(tiny_config(tmp_path / "c", **sections)), dataset=SquareClips(6),
              until=5)


def test_resume_auto_finds_the_newest_checkpoint_or_starts_fresh(tmp_path):
    values = tiny_config(tmp_path, optim={"max_steps": 2}, checkpoint={"every": 1})
    fresh = train(build_config(values), resume="auto", dataset=SquareClips())
    assert fresh.steps == [1, 2]
    more = tiny_config(tmp_path, optim={"max_steps": 3}, checkpoint={"every": 1})
    continued = train(build_config(more), resume="auto", dataset=SquareClips())
    assert continued.steps == [3]
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(build_config(values), resume=str(tmp_path / "nowhere"), dataset=SquareClips())
    # A fresh start must not mix its checkpoints into an existing run's.
    with pytest.raises(FileExistsError, match="--resume auto"):
        train(build_config(values), dataset=SquareClips())


def test_resume_warns_of_changed_settings_not_of_options_added_since(tmp_path, capsys):
    values = tiny_config(tmp_path, optim={"max_steps": 1}, checkpoint={"every": 1})
    train(build_config(values), dataset=SquareClips())
    # A checkpoint written before `model.aid_weights` existed: not a change.
    state_path = tmp_path / "checkpoints/step_00000001" / STATE_FILE
    state = torch.load(state_path, weights_only=True)
    del state["config"]["model"]["aid_weights"]
    torch.save(state, state_path)
    capsys.readouterr()

    more = tiny_config(tmp_path, optim={"max_steps": 2}, checkpoint={"every": 1})
    train(build_config(more), resume="auto", dataset=SquareClips())
    warnings = [line for line in capsys.readouterr().out.splitlines() if "differs" in line]
    assert warnings == ["warning: resuming with a config that differs in ['optim.max_steps']"]


def test_cached_features_train_like_online_features(tmp_path):
    # cond_aug 0: the cached reference latents then equal the online ones exactly.
    sections = dict(optim={"max_steps": 3}, conditioning={"cond_aug": {"value": 0.0}})
    online = train(build_config(tiny_config(tmp_path / "online", **sections)),
                   dataset=SquareClips(6))
    cache_dir = tmp_path / "features"
    cached_values = tiny_config(tmp_path / "cached", cache={"latents": True, "text": True,
                                                           "dir": str(cache_dir)}, **sections)
    cached = train(build_config(cached_values), dataset=SquareClips(6))
    torch.testing.assert_close(torch.tensor(cached.losses), torch.tensor(online.losses),
                               rtol=1e-5, atol=1e-6)
    assert cached.trainer.text_encoder is None  # every text came from the cache
    files = sorted(p.name for p in cache_dir.glob("square_*.safetensors"))
    assert len(files) == 6
    index = json.loads((cache_dir / "index.json").read_text())
    assert index["size"] == 6

    class Unreadable(SquareClips):  # a second run must not read a single clip again
        def __getitem__(self, index):
            raise AssertionError("the cache was not reused")

    stamps = {p: p.stat().st_mtime_ns for p in cache_dir.iterdir()}
    again = train(build_config(dict(cached_values, output_dir=str(tmp_path / "again"))),
                  dataset=Unreadable(6))
    assert again.losses == cached.losses
    assert {p: p.stat().st_mtime_ns for p in cache_dir.iterdir()} == stamps

    other = tiny_config(tmp_path / "other", cache={"latents": True, "dir": str(cache_dir)},
                        **sections)
    with pytest.raises(ConfigError, match="other settings"):
        train(build_config(other), dataset=SquareClips(6))


def test_condition_dropout_reaches_the_network_as_the_null_conditions(tmp_path):
    trainer = Trainer(build_config(tiny_config(tmp_path)), dataset=SquareClips())
    trainer.setup()
    seen = {}
    network = trainer.denoiser

    def spy(*args):
        seen["args"] = args
        return network(*args)

    trainer.denoiser = spy
    try:
        batch = _batch(trainer.dataset, [1, 2, 4])
        features = trainer.encoder.from_batch(batch, 0, 0)
        null_t, null_s = trainer.settings.null_instruction, trainer.settings.null_states
        expect_t, expect_s = null_t.expand(3, -1, -1), null_s.expand(3, -1, -1)
        for rates, text, frame in (((1.0, 0.0, 0.0), True, False),
                                   ((0.0, 1.0, 0.0), False, True),
                                   ((0.0, 0.0, 1.0), True, True),
                                   ((0.0, 0.0, 0.0), False, False)):
            dropout = replace(trainer.settings.dropout, text=rates[0], frame=rates[1],
                              both=rates[2])
            with torch.no_grad():
                out = trainer.loss_on_batch(batch, 0, settings=replace(trainer.settings,
                                                                       dropout=dropout))
            _, _, image, concat, _, e_t, e_s, e_v = seen["args"]
            assert out.drop_text.tolist() == [text] * 3
            assert out.drop_frame.tolist() == [frame] * 3
            assert torch.equal(e_t, expect_t) == text
            assert torch.equal(e_s, expect_s) == text
            assert (image.abs().sum() == 0).item() == frame
            assert (concat.abs().sum() == 0).item() == frame
            assert torch.equal(e_v, features.image_context)  # e_v is never dropped
    finally:
        trainer.close()


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    gradients = []
    for checkpointing in (False, True):
        values = tiny_config(tmp_path / str(checkpointing),
                             runtime={"gradient_checkpointing": checkpointing})
        trainer = Trainer(build_config(values), dataset=SquareClips())
        trainer.setup()
        try:
            trainer.loss_on_batch(_batch(trainer.dataset, [0, 1]), 1).loss.backward()
            gradients.append({n: p.grad.clone() for n, p in trainer.parameters.items()})
        finally:
            trainer.close()
    assert gradients[0].keys() == gradients[1].keys()
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], gradient, rtol=1e-5, atol=1e-7,
                                   msg=name)


def test_the_without_mcondition_ablation_trains_without_a_text_encoder(tmp_path):
    values = tiny_config(tmp_path, aid={"without_mcondition": True},
                         text_encoder={"source": ""}, optim={"max_steps": 2})
    result = train(build_config(values), dataset=SquareClips())
    trainer = result.trainer
    assert trainer.text_encoder is None and trainer.model.dqformer is None
    assert not any("dqformer" in name or "mcondition" in name for name in trainer.parameters)
    assert all(math.isfinite(loss) for loss in result.losses)


def test_clips_of_the_wrong_length_are_refused_with_the_fix(tmp_path):
    values = tiny_config(tmp_path)
    with pytest.raises(ValueError, match=r"T=5 frames.*aid.num_frames=6"):
        train(build_config(values), dataset=SquareClips(frames=5))
    with pytest.raises(ValueError, match="fewer than one global batch"):
        train(build_config(tiny_config(tmp_path, loader={"batch_size": 4})),
              dataset=SquareClips(3))


def test_a_run_starts_from_a_trained_weight_file_when_asked(tmp_path):
    first = train(build_config(tiny_config(tmp_path / "first", optim={"max_steps": 3})),
                  dataset=SquareClips())
    started = tiny_config(tmp_path / "second", optim={"max_steps": 3},
                          model={"aid_weights": str(first.final_weights)})
    trainer = Trainer(build_config(started), dataset=SquareClips())
    trainer.setup()
    try:
        # The trained parameters, AdamW's starting point and the EMA all begin at the file.
        with safe_open(str(first.final_weights), "pt") as f:
            for name, parameter in trainer.parameters.items():
                assert torch.equal(parameter.detach(), f.get_tensor(name)), name
                assert torch.equal(trainer.ema.shadow[name], f.get_tensor(name)), name
        fresh = Trainer(build_config(tiny_config(tmp_path / "fresh")), dataset=SquareClips())
        fresh.setup()
        try:  # the file's weights are not the fresh initialisation (zero output projections)
            assert any(not torch.equal(p, trainer.parameters[n])
                       for n, p in fresh.parameters.items())
        finally:
            fresh.close()
    finally:
        trainer.close()

    missing = tiny_config(tmp_path / "missing", model={"aid_weights": str(tmp_path / "no.st")})
    with pytest.raises(FileNotFoundError, match=r"model.aid_weights: .*no.st does not exist"):
        train(build_config(missing), dataset=SquareClips())
    other = tiny_config(tmp_path / "other", model={"aid_weights": str(first.final_weights)},
                        aid={"queries_per_frame": 4})
    with pytest.raises(AIDWeightsError, match="another AIDConfig"):
        train(build_config(other), dataset=SquareClips())
