"""The benchmark commands run end to end at the tiny size and print their tables.

Timings are not asserted: speed goals are met in benchmark runs (docs/performance.md),
not in timed tests on a shared machine.
"""

from __future__ import annotations

import re

import pytest
import torch

from lab.perf.__main__ import main
from lab.perf.measure import memory_in_child
from lab.perf.models import CONFIGS
from lab.perf.training_memory import (
    FROZEN_BYTES,
    TRAINED_BYTES,
    count_training_memory,
    saved_for_backward_bytes,
)


@pytest.fixture
def restore_threads():
    """``--threads`` sets torch's global thread count; later tests keep theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def table_rows(text: str, title_start: str) -> list[list[str]]:
    """Cells of the Markdown table whose bold title starts with ``title_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"**{title_start}"))
    rows = []
    for line in lines[start + 4:]:  # title, blank, header, separator
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_sampling_command_prints_every_table(capsys, restore_threads):
    # Memory is off here to stay fast; the other tests cover both ways of measuring it.
    main(["sampling", "--config", "tiny", "--repeats", "1", "--memory", "off",
          "--threads", "1", "--quiet"])
    text = capsys.readouterr().out
    assert text.startswith("$ python -m lab.perf sampling --config tiny")
    assert "machine: " in text

    pipelines = [row[0] for row in table_rows(text, "1. Vanilla SVD, ours vs diffusers")]
    assert pipelines == ["ours: AIDPipeline without AID", "diffusers StableVideoDiffusionPipeline"]
    for row in table_rows(text, "1. Vanilla SVD"):
        assert re.fullmatch(r"[\d.]+ m?s \([\d.]+–[\d.]+\)", row[1]), row  # s/step
        assert re.fullmatch(r"[\d.]+ m?s \([\d.]+–[\d.]+\)", row[2]), row  # s/clip
        assert row[5].endswith("×") and row[6].endswith("×"), row  # time ratios

    guidance = table_rows(text, "2. Guidance cost")
    assert [row[0] for row in guidance] == [
        "SVD CFG, 2 branches (AID off, s_t = 0)",
        "AID dual CFG, 3 branches batched",
        "AID dual CFG, interval σ∈[0.3, 100]",
        "AID off with default s_t = 7.5 (text branch skipped)",
    ]
    steps = CONFIGS["tiny"].steps
    assert [row[1] for row in guidance] == [str(2 * steps), str(3 * steps), "5", str(2 * steps)]
    assert "projected 25-step cost" in text

    parts = [row[0] for row in table_rows(text, "3. AID's own modules")]
    assert parts == [
        "SVD UNet (AID detached)",
        "AID UNet, MCondition off (adapters only)",
        "AID UNet (adapters + MCondition attention)",
        "DQFormer, full + null MCondition (once per clip)",
    ]
    chunks = [row[0] for row in table_rows(text, "4. VAE decode")]
    assert chunks == ["1", "2", "4", "6"]  # tiny clips have 6 frames


def test_sampling_command_measures_the_inference_shortcuts_on_and_off(capsys, restore_threads):
    main(["sampling", "--config", "tiny", "--repeats", "1", "--memory", "off",
          "--threads", "1", "--quiet", "--tables", "6"])
    text = capsys.readouterr().out
    rows = table_rows(text, "6. Inference shortcut")
    assert [row[:2] for row in rows] == [
        ["SVD UNet call, batch 2", "on"], ["SVD UNet call, batch 2", "off"],
        ["SVD CFG", "on"], ["SVD CFG", "off"], ["AID dual CFG", "on"], ["AID dual CFG", "off"],
    ]
    assert rows[1][3] == rows[3][3] == rows[5][3] == "1.00×"
    assert "without." in text


def test_training_command_prints_its_table(capsys, restore_threads):
    main(["training", "--config", "tiny", "--repeats", "1", "--memory", "inline",
          "--threads", "1", "--quiet"])
    text = capsys.readouterr().out
    rows = table_rows(text, "Training step")
    assert [row[0] for row in rows] == ["AID trainable set", "whole UNet"]
    aid, full = rows
    assert full[2] == "100.00%"
    assert float(aid[2].rstrip("%")) < 100.0
    assert aid[4].endswith("MiB") and aid[7].endswith("×")


def test_memory_is_measured_in_a_fresh_process():
    arguments = ["sampling", "dqformer", "--config", "tiny", "--threads", "1"]
    reading = memory_in_child(arguments)
    assert reading.peak > reading.increase >= 0
    assert reading.peak > 50 * 2**20  # torch and the models are resident


def test_flops_command_prints_the_svd_shape_model_without_running_it(capsys):
    main(["flops", "--config", "tiny"])
    text = capsys.readouterr().out
    calls = {row[0]: row for row in table_rows(text, "UNet call FLOPs")}
    assert calls["SVD UNet, batch 2 (CFG)"][2] == "1.000×"
    assert float(calls["AID UNet, batch 3 (dual CFG)"][2].rstrip("×")) > 1.0
    unshortcut = calls["SVD UNet, batch 1, one-token cross-attention computed (diffusers)"]
    assert float(unshortcut[2].rstrip("×")) > 1.0
    per_clip = [row[0] for row in table_rows(text, "Per clip")]
    assert per_clip[:4] == ["SVD CFG sampling (2 branches)",
                            "SVD CFG sampling without the one-token shortcut",
                            "AID dual CFG sampling (3 branches)", "AID dual CFG with the interval"]
    launches = {row[0]: int(row[1].replace(",", ""))
                for row in table_rows(text, "Operations launched per UNet call")}
    assert (launches["SVD UNet"] < launches["AID UNet, MCondition off (adapters only)"]
            < launches["AID UNet"])
    training = [row[0] for row in table_rows(text, "Training step at batch 1")]
    assert training == ["whole UNet", "AID trainable set (DQFormer included)"]
    memory = {row[0]: row for row in table_rows(text, "Training memory at batch 1")}
    assert memory["whole UNet"][-1] == "1.000×"
    assert 0.0 < float(memory["AID trainable set"][-1].rstrip("×")) < 1.0


def test_saved_for_backward_counts_what_each_gradient_needs():
    """Under bfloat16 autocast a trained layer keeps its input (for the weight gradient), a
    frozen float32 layer the bfloat16 copy of its weight (for the input gradient), a frozen
    bfloat16 layer only its weight, which is a parameter and not counted."""
    layer = torch.nn.Linear(4, 3)
    frozen_input = torch.randn(2, 4)
    assert saved_for_backward_bytes(lambda: layer(frozen_input), layer.parameters()) == 2 * 4 * 2
    layer.requires_grad_(False)
    trained_input = torch.randn(2, 4, requires_grad=True)
    assert saved_for_backward_bytes(lambda: layer(trained_input), layer.parameters()) == 3 * 4 * 2
    layer.to(torch.bfloat16)
    assert saved_for_backward_bytes(lambda: layer(trained_input), layer.parameters()) == 0


def test_training_memory_counted_on_fake_tensors_matches_real_tensors():
    """The svd_xt-shaped memory figure is counted on fake tensors; on the tiny config the
    same count on real tensors must agree (fake kernels keep GroupNorm's statistics in
    bfloat16 where autocast keeps them in float32: a few hundred bytes per layer)."""
    fake = count_training_memory(CONFIGS["tiny"])
    real = count_training_memory(CONFIGS["tiny"], fake=False)
    assert fake.keys() == real.keys() == {"whole UNet", "AID trainable set"}
    for name in fake:
        assert fake[name].trained_parameters == real[name].trained_parameters
        assert fake[name].frozen_parameters == real[name].frozen_parameters
        assert fake[name].saved_for_backward == pytest.approx(real[name].saved_for_backward,
                                                              rel=0.01)
    whole, aid = real["whole UNet"], real["AID trainable set"]
    assert whole.frozen_parameters == 0
    assert aid.trained_parameters + aid.frozen_parameters > whole.trained_parameters  # + AID
    assert aid.states == TRAINED_BYTES * aid.trained_parameters + FROZEN_BYTES * (
        aid.frozen_parameters)
    # Frozen layers keep no input for a weight gradient.
    assert aid.saved_for_backward < whole.saved_for_backward


def test_benchmark_models_are_built_wholly_on_the_asked_device():
    # diffusers makes each AlphaBlender's mix_factor with the legacy torch.Tensor([...])
    # constructor, which the default-device context does not reach: on a GPU it stayed on
    # the CPU and the first UNet call failed. The meta device shows the same without a GPU.
    from lab.perf.models import build_components
    from lab.perf.setup import RunSettings
    from lab.perf.training import _build_unet

    config = CONFIGS["tiny"]
    components = build_components(config, device="meta")
    settings = RunSettings(config, torch.device("meta"), torch.float32, 1, "off", 0, None)
    for module in (components.unet, components.vae, components.image_encoder,
                   _build_unet(settings)):
        stray = [name for name, tensor in [*module.named_parameters(), *module.named_buffers()]
                 if tensor.device.type != "meta"]
        assert stray == []


def test_training_memory_covers_a_step_with_the_optimizer_state_resident(monkeypatch):
    # AdamW makes its moments in the first optimizer step, after that step's forward and
    # backward: a peak over the first step alone misses them beside the activations.
    from lab.perf.setup import RunSettings
    from lab.perf.training import TrainingOptions, TrainingStep, measure_training_memory

    states_seen: list[int] = []
    original_step = TrainingStep.step

    def watched_step(self):
        states_seen.append(len(self.optimizer.state))
        return original_step(self)

    monkeypatch.setattr(TrainingStep, "step", watched_step)
    settings = RunSettings(CONFIGS["tiny"], torch.device("cpu"), torch.float32, 1, "inline", 0,
                           None)
    measure_training_memory(settings, TrainingOptions(), "aid")
    assert states_seen[0] == 0 and states_seen[-1] > 0


def test_kernel_op_count_leaves_out_views_and_counts_each_launch():
    from lab.perf.op_count import count_kernel_ops

    x = torch.randn(4, 6)
    weight = torch.randn(3, 6)
    counts = count_kernel_ops(
        lambda: torch.nn.functional.linear(x.view(2, 2, 6).transpose(0, 1), weight).relu())
    # transpose and view are views; linear on a 3-D input dispatches as a matmul with its
    # own reshapes; relu is one more launch.
    assert counts["aten.relu"] == 1
    assert not any(name in counts for name in ("aten.view", "aten.transpose",
                                               "aten._unsafe_view"))
    assert sum(counts.values()) >= 2
