"""The training loop's parts, without a model: schedule, EMA, dropout rates, the loss,
random streams, resumable batches, atomic checkpoints and keep-last-N, the loss curve."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch
from PIL import Image
from test_train_support import SquareClips

from aid_model.train import (
    EMA,
    DropoutRates,
    denoising_loss,
    drop_frame_condition,
    drop_text_condition,
    edm_loss_weight,
    warmup_cosine_factor,
)
from aid_model.train.checkpoint import (
    STATE_FILE,
    latest_checkpoint,
    list_checkpoints,
    prune_checkpoints,
    remove_temporaries,
    resolve_resume,
    write_checkpoint,
)
from aid_model.train.data import BatchStream, IndexedDataset, collate_training
from aid_model.train.loss import frame_mask, sample_sigma
from aid_model.train.plot import draw_loss_curve
from aid_model.train.randomness import NOISE_STREAM, sample_generator


def test_warmup_is_linear_then_cosine_reaches_the_floor():
    factors = [warmup_cosine_factor(s, 4, 14, 0.1) for s in range(16)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4] == pytest.approx(1.0)
    assert factors[9] == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    assert factors[14] == factors[15] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(factors[3:]))


def test_ema_follows_the_formula_and_applied_restores_the_weights():
    weight = torch.nn.Parameter(torch.zeros(3))
    ema = EMA({"w": weight}, decay=0.5, warmup=False)
    with torch.no_grad():
        weight.fill_(2.0)
    ema.update()  # 0.5·0 + 0.5·2
    with torch.no_grad():
        weight.fill_(4.0)
    ema.update()  # 0.5·1 + 0.5·4
    assert torch.equal(ema.shadow["w"], torch.full((3,), 2.5))
    with ema.applied():
        assert torch.equal(weight.detach(), torch.full((3,), 2.5))
    assert torch.equal(weight.detach(), torch.full((3,), 4.0))
    warm = EMA({"w": weight}, decay=0.999)
    assert warm.current_decay() == pytest.approx(0.1)  # (1 + 0)/(10 + 0)
    restored = EMA({"w": weight}, decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.shadow["w"], ema.shadow["w"]) and restored.num_updates == 2
    with pytest.raises(ValueError, match="does not match"):
        EMA({"other": weight}, 0.5).load_state_dict(ema.state_dict())


def test_dropout_events_are_disjoint_with_the_configured_rates():
    rates = DropoutRates(text=0.05, frame=0.05, both=0.05)
    grid = [rates.decide((i + 0.5) / 10000) for i in range(10000)]
    counts = Counter(grid)
    assert counts[(True, False)] == 500 and counts[(False, True)] == 500
    assert counts[(True, True)] == 500 and counts[(False, False)] == 8500
    # The training streams' uniforms give those rates (20,000 sample-steps).
    draws = Counter(
        rates.decide(float(torch.rand((), generator=sample_generator(0, step, 0, i,
                                                                      NOISE_STREAM))))
        for step in range(2000) for i in range(10))
    for event in ((True, False), (False, True), (True, True)):
        assert abs(draws[event] / 20000 - 0.05) < 0.006, draws


def test_dropped_conditions_are_the_null_ones():
    e_t, e_s = torch.randn(3, 77, 8), torch.randn(3, 154, 8)
    null_t, null_s = torch.randn(77, 8), torch.randn(154, 8)
    image, concat = torch.randn(3, 1, 8), torch.randn(3, 4, 4, 2, 2)
    mask = torch.tensor([True, False, True])
    t, s = drop_text_condition(mask, e_t, e_s, null_t, null_s)
    assert torch.equal(t[0], null_t) and torch.equal(s[2], null_s)
    assert torch.equal(t[1], e_t[1]) and torch.equal(s[1], e_s[1])
    i, c = drop_frame_condition(mask, image, concat)
    assert i[0].abs().sum() == 0 and c[2].abs().sum() == 0
    assert torch.equal(i[1], image[1]) and torch.equal(c[1], concat[1])


def test_the_loss_is_lambda_weighted_per_sample_over_the_covered_frames():
    denoised = torch.zeros(2, 3, 1, 1, 1)
    target = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1, 1).expand(2, -1, -1, -1, -1)
    sigma = torch.tensor([1.0, 2.0])
    all_frames = frame_mask(3, torch.tensor([1, 2]), "all")
    predicted = frame_mask(3, torch.tensor([1, 2]), "predicted")
    assert predicted.tolist() == [[0, 1, 1], [0, 0, 1]]
    loss = denoising_loss(denoised, target, sigma, all_frames)
    assert loss.tolist() == pytest.approx([2 * 14 / 3, 1.25 * 14 / 3])
    loss = denoising_loss(denoised, target, sigma, predicted)
    assert loss.tolist() == pytest.approx([2 * 13 / 2, 1.25 * 9])
    assert edm_loss_weight(torch.tensor(0.5)).item() == pytest.approx(5.0)


def test_sigma_is_log_normal_with_the_configured_moments():
    logs = torch.stack([sample_sigma(sample_generator(1, s, 0, 0, NOISE_STREAM), 0.7, 1.6)
                        for s in range(4000)]).log()
    assert abs(logs.mean().item() - 0.7) < 0.08 and abs(logs.std().item() - 1.6) < 0.08


def test_streams_depend_only_on_what_identifies_the_draw():
    a = torch.randn(4, generator=sample_generator(5, 10, 0, 3, NOISE_STREAM))
    assert torch.equal(a, torch.randn(4, generator=sample_generator(5, 10, 0, 3, NOISE_STREAM)))
    for other in ((6, 10, 0, 3, 0), (5, 11, 0, 3, 0), (5, 10, 1, 3, 0), (5, 10, 0, 4, 0),
                  (5, 10, 0, 3, 1)):
        assert not torch.equal(a, torch.randn(4, generator=sample_generator(*other)))


def test_a_seeked_stream_continues_like_the_uninterrupted_one():
    dataset = IndexedDataset(SquareClips(7))

    def indices(stream, count):
        return [next(stream)["index"].tolist() for _ in range(count)]

    straight = BatchStream(dataset, 2, 1, 0, seed=4)
    assert straight.batches_per_epoch == 3  # 7 samples, batch 2, drop_last
    run = indices(straight, 8)
    resumed = BatchStream(dataset, 2, 1, 0, seed=4)
    resumed.seek(0, 2)  # two batches of epoch 0 were taken
    assert indices(resumed, 6) == run[2:]
    assert resumed.position == straight.position == (2, 2)
    # Each epoch is a new permutation; the dataset hears about each epoch.
    assert run[:3] != run[3:6]
    assert dataset.dataset.epochs_seen[:3] == [0, 1, 2]


def test_the_stream_reports_batches_and_epoch_ends():
    seen, ended = [], []
    stream = BatchStream(IndexedDataset(SquareClips(4)), 2, 1, 0, seed=0,
                         on_batch=lambda batch: seen.append(batch["index"].tolist()),
                         on_epoch_end=ended.append)
    for _ in range(5):
        next(stream)
    assert len(seen) == 5 and ended == [0, 1]


def test_two_shards_partition_the_global_batch():
    dataset = IndexedDataset(SquareClips(8))
    one = BatchStream(dataset, 2, 1, 0, seed=1)
    ranks = [BatchStream(dataset, 1, 2, r, seed=1) for r in range(2)]
    for _ in range(5):
        together = next(one)["index"].tolist()
        apart = [next(stream)["index"].item() for stream in ranks]
        assert together == apart


def test_collate_stacks_tensors_and_keeps_lists():
    items = [dict(IndexedDataset(SquareClips())[i], skipped=[f"x{i}: bad"]) for i in (0, 1)]
    batch = collate_training(items)
    assert batch["frames"].shape == (2, 6, 3, 16, 16)
    assert batch["num_reference_frames"].dtype == torch.long
    assert batch["fps"].dtype == torch.float32
    assert batch["states"][0] == [] and batch["skipped"] == ["x0: bad", "x1: bad"]
    items[1]["frames"] = items[1]["frames"][:5]
    with pytest.raises(ValueError, match="different 'frames' shapes"):
        collate_training(items)


def _write_state(folder):
    torch.save({"step": 1}, folder / STATE_FILE)
    (folder / "aid.safetensors").write_bytes(b"weights")


def test_a_crashed_checkpoint_write_leaves_no_folder_and_the_last_ones_intact(tmp_path):
    for step in (1, 2):
        write_checkpoint(tmp_path, step, _write_state)

    def crash(folder):
        (folder / "aid.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(tmp_path, 3, crash)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001", "step_00000002"]
    assert latest_checkpoint(tmp_path).name == "step_00000002"

    # A process killed mid-write leaves a temporary folder: ignored, then removed.
    leftover = tmp_path / ".step_00000003.tmp-12345"
    leftover.mkdir()
    (leftover / STATE_FILE).write_bytes(b"torn")
    (tmp_path / "step_00000004").mkdir()  # no state file: not a checkpoint
    assert resolve_resume("auto", tmp_path).name == "step_00000002"
    assert remove_temporaries(tmp_path) == [leftover]
    assert not leftover.exists()


def test_keep_last_n_and_rewriting_a_step(tmp_path):
    for step in (1, 2, 3, 4, 5):
        write_checkpoint(tmp_path, step, _write_state)
    removed = prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in removed] == ["step_00000001", "step_00000002", "step_00000003"]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [4, 5]

    def other(folder):
        _write_state(folder)
        (folder / "aid.safetensors").write_bytes(b"new weights")

    write_checkpoint(tmp_path, 5, other)
    assert (tmp_path / "step_00000005" / "aid.safetensors").read_bytes() == b"new weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000004", "step_00000005"]


def test_resume_paths(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    write_checkpoint(root, 7, _write_state)
    folder = root / "step_00000007"
    assert resolve_resume(str(folder), root) == folder
    assert resolve_resume(str(folder / STATE_FILE), root) == folder
    assert resolve_resume(str(tmp_path / "run"), root) == folder
    assert resolve_resume("auto", tmp_path / "empty") is None
    with pytest.raises(FileNotFoundError, match="no checkpoint there"):
        resolve_resume(str(tmp_path), root)


def test_the_loss_curve_is_a_png_that_survives_odd_values(tmp_path):
    steps = list(range(1, 101))
    losses = [1.0 / math.sqrt(s) for s in steps]
    losses[10] = float("nan")
    losses[20] = 1e6  # a low-σ outlier must not flatten the plot
    path = draw_loss_curve(steps, losses, tmp_path / "curve.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (900, 450)
        # The smoothed curve is drawn in dark blue somewhere in the plot.
        assert (20, 40, 160) in {image.getpixel((x, y)) for x in range(100, 880, 3)
                                 for y in range(40, 400, 3)}
    draw_loss_curve([1], [0.5], tmp_path / "one.png")
    draw_loss_curve([], [], tmp_path / "none.png")
