"""The prediction pipeline on tiny random models: dual CFG, batching, seeds, long videos,
manipulation, reference frames, bad input."""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image
from tiny_models import fixture_svd_components, tiny_aid_pipeline

from aid_model.pipeline import AIDPipeline, PredictionOptions, PredictionRequest, predict_long_video
from aid_model.pipeline.pipeline import FiniteCheck
from aid_model.sampling import DualCFG, GuidanceSettings, VideoDenoiser

OPTIONS = PredictionOptions(height=16, width=16, steps=3, decode_chunk_size=3, seed=11)


@pytest.fixture(scope="module")
def pipeline(svd_fixture_checkpoint, clip_text_fixture_dir):
    return tiny_aid_pipeline(svd_fixture_checkpoint, clip_text_fixture_dir)


@pytest.fixture(scope="module")
def frames():
    generator = torch.Generator().manual_seed(5)
    return [torch.rand(3, 16, 16, generator=generator) for _ in range(2)]


def branch_conditions(pipeline, frames, instruction="move the cup left", states=None):
    options = pipeline.resolve(OPTIONS)
    request = PredictionRequest([frames[0]], instruction, states)
    conditions = pipeline.encode_conditions([request], options.height, options.width)
    return pipeline._frame_conditions(conditions, options, [0])


# --- dual classifier-free guidance ----------------------------------------------------------


class CountingDenoiser:
    """The UNet batch items a guided call evaluates (the cost of its branches)."""

    def __init__(self, denoiser):
        self.denoiser = denoiser
        self.items = 0

    def __call__(self, x, sigma, cond):
        self.items += x.shape[0]
        return self.denoiser(x, sigma, cond)


def test_dual_cfg_is_eq_8_of_three_separate_evaluations(pipeline, frames):
    (null, frame_only, full), noise = branch_conditions(pipeline, frames)
    denoiser = VideoDenoiser(pipeline.aid.unet)
    x, sigma = noise * 3.0, torch.tensor([3.0])
    settings = GuidanceSettings(frame_scale=1.7, text_scale=4.0)
    guided = DualCFG(denoiser, null, frame_only, full, settings)(x, sigma)
    d_null, d_frame, d_full = (denoiser(x, sigma, c) for c in (null, frame_only, full))
    expected = d_null + 1.7 * (d_frame - d_null) + 4.0 * (d_full - d_frame)
    torch.testing.assert_close(guided, expected, rtol=1e-5, atol=1e-5)


def test_dual_cfg_without_text_is_plain_cfg_in_two_branches(pipeline, frames):
    (null, frame_only, full), noise = branch_conditions(pipeline, frames)
    denoiser = VideoDenoiser(pipeline.aid.unet)
    x, sigma = noise * 3.0, torch.tensor([3.0])
    counted = CountingDenoiser(denoiser)
    dual = DualCFG(counted, null, frame_only, full, GuidanceSettings(2.0, 0.0))
    d_null, d_frame = denoiser(x, sigma, null), denoiser(x, sigma, frame_only)
    expected = d_null + 2.0 * (d_frame - d_null)
    torch.testing.assert_close(dual(x, sigma), expected, rtol=1e-5, atol=1e-5)
    assert counted.items == 2  # the text branch was skipped


def test_unit_scales_and_the_guidance_interval_use_one_branch(pipeline, frames):
    (null, frame_only, full), noise = branch_conditions(pipeline, frames)
    denoiser = VideoDenoiser(pipeline.aid.unet)
    x, sigma = noise * 3.0, torch.tensor([3.0])
    conditional = denoiser(x, sigma, full)
    counted = CountingDenoiser(denoiser)
    unit = DualCFG(counted, null, frame_only, full, GuidanceSettings(1.0, 1.0))
    torch.testing.assert_close(unit(x, sigma), conditional, rtol=1e-6, atol=1e-6)
    assert counted.items == 1
    counted = CountingDenoiser(denoiser)
    outside = DualCFG(
        counted, null, frame_only, full, GuidanceSettings(2.0, 5.0, interval=(0.5, 2.0))
    )
    torch.testing.assert_close(outside(x, sigma), conditional, rtol=1e-6, atol=1e-6)
    inside = outside(x, torch.tensor([1.0]))
    assert counted.items == 1 + 3
    assert not torch.allclose(inside, denoiser(x, torch.tensor([1.0]), full))


def test_frame_scale_ramp_weights_per_frame():
    weights = GuidanceSettings(
        frame_scale=3.0, text_scale=2.0, frame_scale_first=1.0
    ).branch_weights(3)
    torch.testing.assert_close(weights[0, 0], torch.tensor([0.0, -1.0, -2.0]))
    torch.testing.assert_close(weights.sum(0), torch.ones(1, 3))  # an affine combination
    per_item = GuidanceSettings(frame_scale=2.0, text_scale=5.0).branch_weights(
        2, torch.tensor([True, False])
    )
    torch.testing.assert_close(per_item[2], torch.tensor([[5.0, 5.0], [0.0, 0.0]]))
    torch.testing.assert_close(per_item.sum(0), torch.ones(2, 2))


# --- predictions ----------------------------------------------------------------------------


def test_prediction_shape_range_and_kept_reference_frames(pipeline, frames):
    video = pipeline.predict(frames, "move the cup left", options=OPTIONS)
    assert video.shape == (6, 16, 16, 3)
    assert video.min() >= 0 and video.max() <= 1
    for k, frame in enumerate(frames):  # K = 2 given frames stay at their places
        assert torch.equal(video[k], frame.permute(1, 2, 0))


def test_instruction_and_states_change_the_video(pipeline, frames):
    left = pipeline.predict(frames[:1], "move the cup left", options=OPTIONS)
    right = pipeline.predict(frames[:1], "move the cup right", options=OPTIONS)
    with_states = pipeline.predict(
        frames[:1], "move the cup left", ["cup at centre", "cup at left"], options=OPTIONS
    )
    assert (left - right).abs().max() > 1e-3
    assert (left - with_states).abs().max() > 1e-3
    assert torch.equal(left, pipeline.predict(frames[:1], "move the cup left", options=OPTIONS))


def test_seed_gives_the_same_video_whatever_the_batch(pipeline, frames):
    alone = pipeline.predict(frames[:1], "move the cup left", options=OPTIONS.with_(seed=4))
    batch = pipeline.predict_batch(
        [
            PredictionRequest(frames[:1], "push the ball up", seed=9),
            PredictionRequest(frames[:1], "move the cup left", seed=4),
        ],
        OPTIONS,
    )
    torch.testing.assert_close(batch[1], alone, rtol=0, atol=2e-5)
    assert (batch[0] - alone).abs().max() > 1e-3


def test_manipulation_equals_single_calls(pipeline, frames):
    instructions = ["move the cup left", "move the cup right", "lift the cup"]
    results = pipeline.manipulate(frames[0], instructions, options=OPTIONS)
    assert len(results) == 3
    for instruction, result in zip(instructions, results, strict=True):
        single = pipeline.predict([frames[0]], instruction, options=OPTIONS)
        torch.testing.assert_close(result, single, rtol=0, atol=2e-5)


def test_long_video_joins_segments_without_repeating_the_overlap(pipeline, frames):
    steps = []
    video = predict_long_video(
        pipeline,
        frames[:1],
        ["move the cup left", "move the cup up", "move the cup right"],
        overlap=2,
        options=OPTIONS,
        callback=lambda info: steps.append((info.step, info.total)),
    )
    assert video.shape == (6 + 2 * 4, 16, 16, 3)
    assert steps == [(i, 9) for i in range(9)]  # progress across all three segments
    first = pipeline.predict(frames[:1], "move the cup left", options=OPTIONS)
    torch.testing.assert_close(video[:6], first, rtol=0, atol=2e-5)
    # Segment 2 starts from segment 1's last two frames (seed + 1); its new frames follow them.
    second = pipeline.predict(
        [f.permute(2, 0, 1) for f in first[-2:]],
        "move the cup up",
        options=OPTIONS.with_(seed=OPTIONS.seed + 1),
    )
    torch.testing.assert_close(second[:2], first[-2:], rtol=0, atol=2e-5)
    torch.testing.assert_close(video[6:10], second[2:], rtol=0, atol=2e-5)


class RecordingStatePredictor:
    """Writes states naming the frame's mean brightness, and records what it was shown."""

    def __init__(self):
        self.seen: list[tuple[torch.Tensor, str, int]] = []

    def predict_states(self, images, instructions, num_states=4):
        self.seen.extend((torch.as_tensor(i), t, num_states)
                         for i, t in zip(images, instructions, strict=True))
        return [[f"{t}: brightness {torch.as_tensor(i).mean():.3f}"] * num_states
                for i, t in zip(images, instructions, strict=True)]


def test_long_video_asks_the_state_predictor_for_each_segment_it_has_no_states_for(
    pipeline, frames
):
    predictor = RecordingStatePredictor()
    instructions = ["move the cup left", "move the cup up", "move the cup right"]
    given = ["the cup is up"] * pipeline.aid.config.num_states
    video = predict_long_video(pipeline, frames[:1], instructions, overlap=2,
                               states=[None, given, None], options=OPTIONS,
                               state_predictor=predictor)
    # Segments 0 and 2 had no states: asked about their latest reference frame, (H, W, 3).
    assert [text for _, text, _ in predictor.seen] == [instructions[0], instructions[2]]
    assert all(n == pipeline.aid.config.num_states for _, _, n in predictor.seen)
    torch.testing.assert_close(predictor.seen[0][0], frames[0].permute(1, 2, 0))
    torch.testing.assert_close(predictor.seen[1][0], video[-5], rtol=0, atol=0)
    # The written states are the ones the segment was predicted with.
    first_states = predictor.predict_states([frames[0].permute(1, 2, 0)], [instructions[0]],
                                            pipeline.aid.config.num_states)[0]
    first = pipeline.predict(frames[:1], instructions[0], first_states, options=OPTIONS)
    torch.testing.assert_close(video[:6], first, rtol=0, atol=2e-5)


def test_the_three_stages_compose_to_predict(pipeline, frames):
    options = pipeline.resolve(OPTIONS)
    conditions = pipeline.encode_conditions(
        [PredictionRequest(frames[:1], "move the cup left")], options.height, options.width
    )
    assert conditions.full_mcondition.shape[:2] == (1, 6)
    latents = pipeline.sample_latents(conditions, options, [OPTIONS.seed])
    assert latents.shape == (1, 6, 4, 8, 8)
    video = pipeline.decode(latents, options.decode_chunk_size)[0]
    video[0] = frames[0].permute(1, 2, 0)
    torch.testing.assert_close(
        video, pipeline.predict(frames[:1], "move the cup left", options=OPTIONS), rtol=0, atol=0
    )


def test_plain_svd_without_aid_weights(svd_fixture_checkpoint, frames):
    svd = AIDPipeline(fixture_svd_components(svd_fixture_checkpoint))
    video = svd.predict(frames[:1], "ignored", options=OPTIONS)
    assert video.shape == (14, 16, 16, 3)  # SVD's default T without an AID model
    same = svd.predict(frames[:1], "", options=OPTIONS)
    assert torch.equal(video, same)


def test_plain_svd_refuses_components_with_aid_attached(
    svd_fixture_checkpoint, clip_text_fixture_dir, frames
):
    # Its UNet runs the trained adapters: "plain SVD" sampling would silently include them.
    pipeline = tiny_aid_pipeline(svd_fixture_checkpoint, clip_text_fixture_dir)
    plain = AIDPipeline(pipeline.components)
    options = OPTIONS.with_(num_frames=6)
    with pytest.raises(ValueError, match="AID attached to their UNet"):
        plain.predict(frames[:1], "", options=options)
    latents = torch.zeros(1, 2, 4, 8, 8)  # (B, T, C, h, w): the tiny VAE halves 16 px
    assert plain.decode(latents).shape == (1, 2, 16, 16, 3)  # decoding is the VAE's: fine
    pipeline.aid.detach()
    assert plain.predict(frames[:1], "", options=options).shape == (6, 16, 16, 3)


def test_fresh_aid_pipeline_equals_plain_svd(svd_fixture_checkpoint, clip_text_fixture_dir, frames):
    fresh = tiny_aid_pipeline(svd_fixture_checkpoint, clip_text_fixture_dir, trained=False)
    svd = AIDPipeline(fixture_svd_components(svd_fixture_checkpoint))
    options = OPTIONS.with_(num_frames=6, text_scale=0.0)
    torch.testing.assert_close(
        fresh.predict(frames[:1], "move the cup left", options=options),
        svd.predict(frames[:1], "", options=options),
        rtol=0,
        atol=1e-6,
    )


def test_any_size_and_mode_of_reference_frame(pipeline, tmp_path):
    rgba = Image.new("RGBA", (40, 24), (255, 0, 0, 128))
    gray = Image.new("L", (30, 50), 90)
    path = tmp_path / "gray.png"
    gray.save(path)
    video = pipeline.predict([rgba, path], "move it", options=OPTIONS)
    assert video.shape == (6, 16, 16, 3)
    # Half-transparent red over white is pink; grayscale stays gray.
    torch.testing.assert_close(
        video[0, 8, 8], torch.tensor([1.0, 127 / 255, 127 / 255]), atol=0.01, rtol=0
    )
    torch.testing.assert_close(video[1, 8, 8], torch.full((3,), 90 / 255), atol=0.01, rtol=0)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_frames": 7}, "predicts T=6"),
        ({"height": 18}, "height=18 is not a positive multiple of 4"),
        ({"steps": 0}, "steps"),
        ({"frame_scale": -1.0}, "frame_scale"),
        ({"text_scale": -0.5}, "text_scale"),
        ({"sampler": "ddim"}, "unknown sampler"),
        ({"frame_scale": float("nan")}, r"frame_scale must be a finite number >= 0, got nan; "
                                        r"use e\.g\. the default 1\.5"),
        ({"text_scale": float("inf")}, "text_scale must be a finite number >= 0, got inf"),
        ({"frame_scale_first": float("-inf")}, "frame_scale_first must be a finite number"),
        ({"guidance_interval": (2.0, 1.0)}, r"guidance_interval=\(2\.0, 1\.0\)"),
        ({"guidance_interval": (0.0, float("nan"))}, "guidance_interval"),
        ({"cond_aug": -0.1}, "cond_aug must be a finite number >= 0, got -0.1"),
        ({"cond_aug": float("nan")}, "cond_aug"),
        ({"fps": 0}, "fps must be a finite number >= 1, got 0"),
        ({"motion_bucket_id": -1}, "motion_bucket_id must be a finite number >= 0, got -1"),
        ({"seed": -1}, "seed must be a whole number from 0 to 18446744073709551615, got -1"),
        ({"seed": 2**64}, "seed must be a whole number from 0"),
        ({"decode_chunk_size": 0}, "decode_chunk_size must be a whole number >= 1"),
    ],
)
def test_bad_options_fail_before_any_work(pipeline, frames, change, message, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the options were not checked before the work began")

    monkeypatch.setattr(pipeline, "encode_conditions", no_work)
    with pytest.raises(ValueError, match=message):
        pipeline.predict(frames[:1], "move it", options=OPTIONS.with_(**change))


def test_a_request_seed_and_the_last_segment_seed_are_checked_up_front(pipeline, frames):
    with pytest.raises(ValueError, match="seed must be a whole number from 0"):
        pipeline.predict_batch([PredictionRequest(frames[:1], "move it", seed=-3)], OPTIONS)
    with pytest.raises(ValueError, match=r"segment's\) must be a whole number from 0"):
        predict_long_video(pipeline, frames[:1], ["move it left", "move it up"],
                           options=OPTIONS.with_(seed=2**64 - 1))


def test_too_many_reference_frames_and_too_few_frames(svd_fixture_checkpoint, pipeline, frames):
    with pytest.raises(ValueError, match="need 1 <= K < T"):
        pipeline.predict(frames * 3, "move it", options=OPTIONS)
    svd = AIDPipeline(fixture_svd_components(svd_fixture_checkpoint))
    with pytest.raises(ValueError, match="num_frames must be a whole number >= 2, got 1"):
        svd.predict(frames[:1], options=OPTIONS.with_(num_frames=1))


def test_a_text_encoder_of_another_width_is_refused(pipeline):
    class Narrow:
        width = 32

    with pytest.raises(ValueError, match="32-wide embeddings but the UNet's context is 64-wide"):
        AIDPipeline(pipeline.components, pipeline.aid, Narrow())


def test_unreadable_image_is_named(pipeline, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"broken\.png"):
        pipeline.predict([broken], "move it", options=OPTIONS)
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        pipeline.predict([tmp_path / "missing.png"], "move it", options=OPTIONS)


def test_empty_instruction_turns_text_guidance_off(pipeline, frames, caplog):
    with caplog.at_level(logging.WARNING):
        video = pipeline.predict(frames[:1], "  ", options=OPTIONS)
    assert "text guidance is turned off" in caplog.text
    no_text = pipeline.predict(frames[:1], "  ", options=OPTIONS.with_(text_scale=0.0))
    assert torch.equal(video, no_text)


def test_an_empty_instruction_turns_off_text_guidance_for_its_item_only(pipeline, frames):
    batch = pipeline.predict_batch(
        [PredictionRequest(frames[:1], "move the cup left"), PredictionRequest(frames[:1], "")],
        OPTIONS,
    )
    with_text = pipeline.predict(frames[:1], "move the cup left", options=OPTIONS)
    without = pipeline.predict(frames[:1], "", options=OPTIONS.with_(text_scale=0.0))
    torch.testing.assert_close(batch[0], with_text, rtol=0, atol=2e-5)
    torch.testing.assert_close(batch[1], without, rtol=0, atol=2e-5)


def test_nan_latents_stop_sampling_with_advice(pipeline, frames, monkeypatch):
    def overflow(x, sigma, cond):
        return torch.full_like(x, float("nan"))

    monkeypatch.setattr(pipeline, "denoiser", overflow)
    with pytest.raises(FloatingPointError, match="bfloat16 or float32"):
        pipeline.predict(frames[:1], "move it", options=OPTIONS)


def test_deferred_finite_check_names_the_first_failing_step():
    # On a GPU the check is read once, at the end; the error still names the first step.
    check = FiniteCheck(torch.device("cpu"), immediate=False)
    finite, broken = torch.zeros(1, 2, 4, 2, 2), torch.full((1, 2, 4, 2, 2), float("nan"))
    for step, denoised in enumerate([finite, finite, broken, broken, finite]):
        check.check_step(denoised, step)
    with pytest.raises(FloatingPointError, match=r"at step 2 .*bfloat16 or float32"):
        check.raise_if_failed(final=finite)

    clean = FiniteCheck(torch.device("cpu"), immediate=False)
    clean.check_step(finite, 0)
    clean.raise_if_failed(final=finite)  # nothing to report
    with pytest.raises(FloatingPointError, match=r"NaN/inf latents \(float16"):
        clean.raise_if_failed(final=broken)  # only the final state: no step named


def test_pipeline_reports_the_failing_step_when_checking_at_the_end(pipeline, frames,
                                                                    monkeypatch):
    def overflow(x, sigma, cond):
        return torch.full_like(x, float("nan"))

    original = FiniteCheck.__init__

    def deferred(self, device, immediate=None):  # as on a GPU
        original(self, device, immediate=False)

    monkeypatch.setattr(pipeline, "denoiser", overflow)
    monkeypatch.setattr(FiniteCheck, "__init__", deferred)
    with pytest.raises(FloatingPointError, match=r"at step 0 .*bfloat16 or float32"):
        pipeline.predict(frames[:1], "move it", options=OPTIONS)
