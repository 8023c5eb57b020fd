"""``python -m aid_model evaluate`` end to end on tiny models, a tiny synthetic validation set
and a random TorchScript "I3D" built here (CPU, one thread)."""

from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from conftest import CLIP_TEXT_FIXTURE, SVD_FIXTURE
from PIL import Image
from torch import nn

from aid_model.cli import main
from aid_model.video_io import LABEL_MARGIN

NUM_SAMPLES = 5
FRAMES = 8  # the synthetic world's clip length; the AID weights below predict T = 8
SIZE = 16  # the fixture SVD's size factor is 4; 16 px → 8 × 8 latents
SAMPLING = ["--steps", "2", "--batch-size", "2", "--preview", "3", "--no-progress"]


class RandomI3D(nn.Module):
    """A stand-in with the call of StyleGAN-V's i3d_torchscript.pt: (B, 3, T, 224, 224) in
    [−1, 1] and keyword flags → (B, 400). Coarse space-time averages through a fixed random
    layer, so different clips give different features."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(11)
        self.register_buffer("weight", torch.randn(3 * 4 * 4 * 4, 400, generator=generator))

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        assert x.shape[1] == 3 and x.shape[3] == 224 and x.shape[4] == 224
        assert not rescale and not resize and return_features
        pooled = nn.functional.adaptive_avg_pool3d(x, (4, 4, 4)).flatten(1)
        return torch.tanh(pooled @ self.weight / 4.0)


class RandomInception(nn.Module):
    """The call of NVIDIA's inception-2015-12-05.pt: uint8 (N, 3, H, W) → (N, D), with
    D = 96 rather than 2,048: FID's two eigen-decompositions of D × D take seconds at 2,048."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert x.dtype == torch.uint8 and return_features
        pooled = nn.functional.adaptive_avg_pool2d(x.float() / 255.0, (4, 4)).flatten(1)
        return torch.cat([pooled, pooled.square()], dim=1)


def _script(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated, yet what is published
        torch.jit.script(module).save(str(path))
    return path


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as configs/tiny_cpu.yaml: on 2 shared cores, two threads of these
    tiny products mostly wait for each other (10× slower measured, docs/training.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """Files of one evaluation: a synthetic validation set (generic format), AID weights on
    the fixture SVD, the tiny config pointing at both, the stand-in feature networks."""
    from tiny_models import fixture_svd_components, open_gates

    from aid_model.aid import AIDConfig, attach_aid, save_aid_weights
    from aid_model.synthetic import generate_clip, write_dataset

    root = tmp_path_factory.mktemp("evaluate")
    clips = [generate_clip(seed, num_states=2) for seed in range(7)]
    write_dataset(root / "data", clips, preview_clips=0)
    aid_config = AIDConfig(num_frames=FRAMES, num_reference_frames=1, num_states=2,
                           dqformer_heads=2, queries_per_frame=8)
    svd = SVD_FIXTURE / "svd_tiny_sgm.safetensors"
    model = attach_aid(fixture_svd_components(svd), aid_config)
    open_gates(model)  # a fresh model is exactly SVD; this one reads the instruction
    save_aid_weights(model, root / "aid.safetensors")
    text = CLIP_TEXT_FIXTURE / "openclip_text.safetensors"
    config = {
        "output_dir": str(root / "run"),
        "model": {"svd": str(svd), "unet_head_channels": 16, "clip_num_heads": 2},
        "text_encoder": {"source": str(text), "num_heads": 4},
        "aid": {"num_frames": FRAMES, "num_states": 2, "dqformer_heads": 2,
                "queries_per_frame": 8},
        "data": {"name": "generic", "root": str(root / "data"), "num_frames": FRAMES,
                 "stride": 1, "size": SIZE, "num_reference_frames": 1, "split": "train"},
        "runtime": {"device": "cpu", "threads": 1},
    }
    (root / "config.json").write_text(json.dumps(config))
    return {"root": root, "config": root / "config.json", "aid": root / "aid.safetensors",
            "sample_ids": [clip.sample_id for clip in clips],
            "i3d": _script(RandomI3D(), root / "i3d.pt"),
            "inception": _script(RandomInception(), root / "inception.pt")}


def _args(setup: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--config", str(setup["config"]), "--aid", str(setup["aid"]),
            "--i3d", str(setup["i3d"]), "--num-samples", str(NUM_SAMPLES), "--out", str(out),
            "--set", "data.split=validation", *SAMPLING, *extra]


@pytest.fixture(scope="module")
def single_run(setup) -> Path:
    """One process, with FID: the reference every other run is compared with."""
    out = setup["root"] / "single"
    assert main(_args(setup, out, "--inception", str(setup["inception"]))) == 0
    return out


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_evaluation_writes_the_report_contact_sheet_and_shard(setup, single_run):
    report = _report(single_run)
    metrics = report["metrics"]
    assert metrics["fvd"] > 0 and metrics["fid"] > 0  # predictions are not the real clips
    assert metrics["num_real"] == metrics["num_generated"] == NUM_SAMPLES
    assert metrics["feature_dim"] == 400 and metrics["warnings"]  # 5 samples, 400 dims
    # FID on the predicted frames only: T − K = 7 per clip.
    assert metrics["fid_frames"]["count"] == NUM_SAMPLES * (FRAMES - 1)
    assert report["num_samples"] == NUM_SAMPLES and report["self_check"] is False
    assert report["dataset"]["available"] == 7 and report["dataset"]["config"]["split"] == (
        "validation")
    assert report["dataset"]["first_sample_ids"] == setup["sample_ids"][:5]  # dataset order
    assert report["dataset"]["clip"] == {"frames": FRAMES, "height": SIZE, "width": SIZE}
    assert report["sampling"]["steps"] == 2 and report["sampling"]["fps"] == "sample"
    assert report["sampling"]["motion_bucket_id"] == 127  # the config's conditioning
    assert report["files"]["i3d"]["kind"] == "torchscript" and report["files"]["aid"]["size"]
    assert report["aid_config"]["num_frames"] == FRAMES
    assert report["config"]["data"]["name"] == "generic"
    assert report["processes"]["world_size"] == 1
    assert report["timings"]["shards"]["samples"] == NUM_SAMPLES
    assert report["timings"]["rank0"] == {**report["timings"]["rank0"], "computed": 5,
                                          "reused": 0}
    assert report["versions"]["torch"] == torch.__version__
    # Ground truth above prediction for 3 samples; frames enlarged ×4 to 64 px.
    with Image.open(single_run / "samples.png") as sheet:
        # A labelled margin on the left: "sample i: ground truth" / "…: prediction".
        assert sheet.size == (LABEL_MARGIN + 2 + FRAMES * 64 + (FRAMES - 1) * 2, 6 * 64 + 5 * 2)
    shards = sorted(p.name for p in (single_run / "shards").iterdir())
    assert shards == ["rank_0000.safetensors"]  # the batch chunks were folded into it


def test_a_rerun_reuses_the_shards_and_other_settings_are_refused(setup, single_run, capsys):
    before = _report(single_run)
    assert main(_args(setup, single_run, "--inception", str(setup["inception"]))) == 0
    again = _report(single_run)
    assert again["timings"]["rank0"]["computed"] == 0
    assert again["timings"]["rank0"]["reused"] == NUM_SAMPLES
    assert again["metrics"] == before["metrics"]
    capsys.readouterr()
    assert main(_args(setup, single_run, "--inception", str(setup["inception"]),
                      "--text-scale", "3")) == 1
    error = capsys.readouterr().err
    assert "other settings" in error and "sampling.text_scale" in error and "--overwrite" in error


def test_self_check_gives_zero_fvd_through_the_same_code(setup, capsys):
    out = setup["root"] / "self_check"
    args = ["evaluate", "--config", str(setup["config"]), "--i3d", str(setup["i3d"]),
            "--num-samples", str(NUM_SAMPLES), "--out", str(out), "--self-check",
            "--inception", str(setup["inception"]), *SAMPLING]
    assert main(args) == 0
    metrics = _report(out)["metrics"]
    assert abs(metrics["fvd"]) < 1e-9
    # 35 frames of 96-d features with exactly dependent columns (x and x²): eigenvalues
    # just above the rank tolerance leave √(rounding) ≈ 2e-7; FID of predictions is ~100.
    assert abs(metrics["fid"]) < 1e-5
    assert _report(out)["files"]["aid"] is None


def _settings(setup, out: Path, **changes):
    from aid_model.evaluate import EvaluationSettings
    from aid_model.pipeline import PredictionOptions

    values = dict(num_samples=NUM_SAMPLES, i3d=setup["i3d"], out_dir=out, aid=setup["aid"],
                  batch_size=2, options=PredictionOptions(steps=2), preview=3, progress=False)
    return EvaluationSettings(**{**values, **changes})


def _config(setup):
    from aid_model.train import load_train_config

    return load_train_config(setup["config"], ["data.split=validation"])


def test_two_simulated_ranks_give_the_single_process_metrics(setup, single_run):
    from aid_model.evaluate import Evaluation, read_rows

    out = setup["root"] / "two_ranks"
    evaluation = Evaluation(_config(setup), _settings(setup, out, inception=setup["inception"]))
    evaluation.prepare("cpu")
    outcomes = [evaluation.run_rank(rank, 2) for rank in (0, 1)]
    assert [o.computed for o in outcomes] == [3, 2]  # indices 0, 2, 4 and 1, 3
    report, _, _ = evaluation.gather(2)
    single = _report(single_run)
    # Each clip has its own seed (seed + index), so the same predictions come out whatever
    # the rank and batch; batched GEMMs differ in float rounding only.
    one, _ = read_rows(single_run / "shards" / "rank_0000.safetensors")
    rank1, _ = read_rows(out / "shards" / "rank_0001.safetensors")
    assert rank1.indices.tolist() == [1, 3]
    torch.testing.assert_close(rank1.generated_i3d, one.generated_i3d[[1, 3]],
                               rtol=1e-3, atol=1e-4)
    for key in ("fvd", "kvd", "fid"):
        assert report["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-3), key
    assert report["dataset"]["sample_ids_sha256"] == single["dataset"]["sample_ids_sha256"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gloo_worker(rank: int, world_size: int, port: int, args: list[str]) -> None:
    """One process of a torchrun-like group on gloo: the CLI with torchrun's variables."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    code = main(args)
    if code != 0:
        raise SystemExit(f"rank {rank}: evaluate returned {code}")


def test_two_gloo_processes_give_the_single_process_metrics(setup, single_run):
    out = setup["root"] / "gloo"
    args = _args(setup, out, "--inception", str(setup["inception"]))
    mp.spawn(gloo_worker, args=(2, _free_port(), args), nprocs=2, join=True)
    report, single = _report(out), _report(single_run)
    assert report["processes"]["world_size"] == 2
    assert sorted(p.name for p in (out / "shards").iterdir()) == [
        "rank_0000.safetensors", "rank_0001.safetensors"]
    for key in ("fvd", "kvd", "fid"):
        assert report["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-3), key


def test_an_interrupted_run_continues_after_its_last_finished_batch(setup, single_run):
    from aid_model.evaluate import Evaluation

    out = setup["root"] / "interrupted"
    evaluation = Evaluation(_config(setup), _settings(setup, out))
    evaluation.prepare("cpu")
    predictor = evaluation.load_predictor()
    calls = []

    def stops_after_one_batch(batch, indices):
        if calls:
            raise KeyboardInterrupt
        calls.append(list(indices))
        return predictor(batch, indices)

    evaluation.predictor = stops_after_one_batch
    with pytest.raises(KeyboardInterrupt):
        evaluation.run_rank(0, 1)
    assert [p.name for p in (out / "shards" / "rank_0000.partial").iterdir()] == [
        "chunk_000000.safetensors"]

    resumed = Evaluation(_config(setup), _settings(setup, out))
    resumed.prepare("cpu")
    reused = resumed.reusable(0, 1)
    assert reused.indices.tolist() == [0, 1]
    outcome = resumed.run_rank(0, 1, reused)
    assert (outcome.computed, outcome.reused) == (3, 2)
    report, _, _ = resumed.gather(1)
    single = _report(single_run)
    for key in ("fvd", "kvd"):
        assert report["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-3), key


def test_unusable_inputs_fail_before_any_sampling(setup, capsys):
    out = setup["root"] / "refused"
    garbage = setup["root"] / "garbage.pt"
    garbage.write_bytes(b"not a network")
    args = _args(setup, out)
    args[args.index("--i3d") + 1] = str(garbage)
    assert main(args) == 1
    assert "garbage.pt" in capsys.readouterr().err
    # Clips of another T than the weights predict: named with the config key to change.
    assert main(_args(setup, out, "--set", "data.num_frames=6")) == 1
    assert "data.num_frames=8" in capsys.readouterr().err
    assert main(_args(setup, out, "--num-samples", "50")) == 1
    assert "at most 7" in capsys.readouterr().err
    assert main([*_args(setup, out)[:3], "--i3d", str(setup["i3d"]), "--num-samples", "3"]) == 2
    assert "--aid" in capsys.readouterr().err
    assert not (out / "shards").exists()  # nothing was sampled


def test_each_clip_gets_its_own_fps_seed_references_and_states():
    from aid_model.evaluate import PipelinePredictor
    from aid_model.pipeline import PredictionOptions

    calls = []

    class RecordingPipeline:
        def predict_batch(self, requests, options, callback=None):
            calls.append((options, requests))
            return [torch.full((options.num_frames, options.height, options.width, 3), 0.25)
                    for _ in requests]

    frames = torch.rand(3, 6, 3, 8, 12) * 2 - 1  # (B, T, 3, H, W)
    batch = {"frames": frames, "fps": torch.tensor([8.0, 4.0, 8.0]),
             "num_reference_frames": torch.tensor([1, 2, 1]),
             "instruction": ["a", "b", "c"], "states": [["s1", "s2"], [], ["s3"]]}
    predicted = PipelinePredictor(RecordingPipeline(), PredictionOptions(steps=3), seed=100)(
        batch, [10, 11, 12])
    # One sampling call per fps (the micro-conditioning is one value per call), at the
    # clips' own T and size; seed + dataset index per clip; no states → None (instruction).
    assert [(o.fps, o.num_frames, o.height, o.width, o.steps) for o, _ in calls] == [
        (4.0, 6, 8, 12, 3), (8.0, 6, 8, 12, 3)]
    assert [(r.seed, r.instruction, r.states) for r in calls[0][1]] == [(111, "b", None)]
    assert [(r.seed, r.states) for r in calls[1][1]] == [(110, ["s1", "s2"]), (112, ["s3"])]
    torch.testing.assert_close(calls[0][1][0].reference_frames[1], (frames[1, 1] + 1) / 2)
    # The K given frames exactly as the data has them, the rest the prediction in [−1, 1].
    assert torch.equal(predicted[1, :2], frames[1, :2])
    assert torch.equal(predicted[1, 2:], torch.full_like(predicted[1, 2:], -0.5))
    fixed = PipelinePredictor(RecordingPipeline(), PredictionOptions(), fps=7.0)
    calls.clear()
    fixed(batch, [0, 1, 2])
    assert [o.fps for o, _ in calls] == [7.0]  # --fps 7: one call for all
