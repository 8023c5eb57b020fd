"""Build MCondition → Dual-CFG EDM Sampler → AID Decode and Batch AID Conditioning, run as
ComfyUI runs them (inference mode) on the tiny AID model: they give what the library
gives, keep the reference frames, check their inputs and honour interrupts."""

from __future__ import annotations

import pytest
import torch
from test_nodes_support import image, node, services

# The shared fixtures (tiny models folder, loaded handles) register once per session.
pytest_plugins = ["test_nodes_support"]

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 16
STEPS = 2
STATES = "a cup on the table\nthe cup in the air\nthe cup on the plate"
# seed, steps, sampler, frame_scale, text_scale, frames, fps, motion_bucket_id, cond_aug
SAMPLING = (7, STEPS, "euler", 1.5, 7.5, 0, 7, 127, 0.02)


def options(**changes):
    from aid_model.pipeline import PredictionOptions

    return PredictionOptions(height=SIZE, width=SIZE, steps=STEPS, seed=7,
                             guidance_interval=(0.0, 1000.0)).with_(**changes)


@torch.inference_mode()
def run_chain(handles, reference, instruction="put the cup on the plate", states=STATES,
              sampling=SAMPLING, keep=True, text_encoder="default"):
    encoder = handles.text_encoder if text_encoder == "default" else text_encoder
    (conditioning,) = node("AIDBuildMCondition").build(
        handles.model, reference, instruction, states, SIZE, SIZE, encoder)
    (latent,) = node("AIDSampler").sample(handles.model, conditioning, *sampling)
    (frames,) = node("AIDDecode").decode(handles.model, latent, 8, keep)
    return conditioning, latent, frames


def test_the_node_chain_gives_the_librarys_prediction(loaded) -> None:
    reference = image(1)
    _, latent, frames = run_chain(loaded, reference)
    pipeline = loaded.model.pipeline(loaded.text_encoder)
    expected = pipeline.predict([reference[0].permute(2, 0, 1)], "put the cup on the plate",
                                STATES.splitlines(), options())
    assert frames.shape == (6, SIZE, SIZE, 3) and frames.dtype == torch.float32
    assert torch.equal(frames, expected)
    assert latent["samples"].shape == (6, 4, 8, 8)
    assert latent["aid_video"]["num_videos"] == 1 and latent["aid_video"]["num_frames"] == 6


def test_the_reference_frames_are_kept_at_their_places(loaded) -> None:
    from aid_model.images import prepare_frames

    reference = image(2, seed=3)
    _, _, kept = run_chain(loaded, reference)
    _, _, decoded = run_chain(loaded, reference, keep=False)
    prepared = prepare_frames([f.permute(2, 0, 1) for f in reference], SIZE, SIZE)
    assert torch.equal(kept[:2], prepared.permute(0, 2, 3, 1))
    assert torch.equal(kept[2:], decoded[2:])
    assert not torch.equal(kept[:2], decoded[:2])


def test_the_instruction_changes_the_video(loaded) -> None:
    _, _, left = run_chain(loaded, image(1), "move the cup left", "")
    _, _, right = run_chain(loaded, image(1), "move the cup right", "")
    assert (left - right).abs().max() > 1e-3


def test_batched_conditions_give_the_librarys_manipulation(loaded) -> None:
    reference = image(1, seed=5)
    instructions = ["move the cup left", "lift the cup", ""]
    with torch.inference_mode():
        built = [node("AIDBuildMCondition").build(loaded.model, reference, text, "", SIZE, SIZE,
                                                  loaded.text_encoder)[0]
                 for text in instructions]
        (batch,) = node("AIDBatchConditioning").batch(built[0], built[1])
        (batch,) = node("AIDBatchConditioning").batch(batch, built[2])
        (latent,) = node("AIDSampler").sample(loaded.model, batch, *SAMPLING)
        (frames,) = node("AIDDecode").decode(loaded.model, latent, 8, True)
    assert batch.instructions == instructions
    assert frames.shape == (18, SIZE, SIZE, 3)
    pipeline = loaded.model.pipeline(loaded.text_encoder)
    expected = pipeline.manipulate(reference[0].permute(2, 0, 1), instructions,
                                   options=options())
    # Batched GEMMs sum in another order than the library's one-call encoding: float noise.
    assert torch.allclose(frames, torch.cat(expected), atol=1e-4)


def test_as_many_reference_frames_as_frames_is_refused_before_sampling(loaded) -> None:
    with torch.inference_mode():
        (conditioning,) = node("AIDBuildMCondition").build(
            loaded.model, image(6), "x", "", SIZE, SIZE, loaded.text_encoder)
    with pytest.raises(ValueError) as failure:
        node("AIDSampler").sample(loaded.model, conditioning, *SAMPLING)
    message = str(failure.value)
    assert message.startswith("input 'frames' = 0: the video would have T=6 frames")
    assert "K=6 reference frames" in message and "fixed at 6" in message


def test_an_aid_models_frame_count_is_fixed(loaded) -> None:
    with torch.inference_mode():
        (conditioning,) = node("AIDBuildMCondition").build(
            loaded.model, image(1), "x", "", SIZE, SIZE, loaded.text_encoder)
    sampling = list(SAMPLING)
    sampling[5] = 8  # frames
    with pytest.raises(ValueError, match=r"input 'frames' = 8: .*T=6.*frames = 0"):
        node("AIDSampler").sample(loaded.model, conditioning, *sampling)


def test_a_size_the_model_cannot_take_is_refused_when_building(loaded) -> None:
    with pytest.raises(ValueError, match=r"input 'width/height' = \(18, 16\).*multiple of 4"):
        node("AIDBuildMCondition").build(loaded.model, image(1), "x", "", 18, 16,
                                         loaded.text_encoder)


def test_conditions_of_another_model_are_refused(loaded) -> None:
    with torch.inference_mode():
        (svd_conditioning,) = node("AIDBuildMCondition").build(
            loaded.svd, image(1), "x", "", SIZE, SIZE)
        (aid_conditioning,) = node("AIDBuildMCondition").build(
            loaded.model, image(1), "x", "", SIZE, SIZE, loaded.text_encoder)
    with pytest.raises(ValueError, match=r"input 'conditioning'.*same 'Load AID Model'"):
        node("AIDSampler").sample(loaded.model, svd_conditioning, *SAMPLING)
    with pytest.raises(ValueError, match=r"input 'conditioning_2'.*same 'Load AID Model'"):
        node("AIDBatchConditioning").batch(aid_conditioning, svd_conditioning)


def test_plain_svd_ignores_the_instruction_and_needs_no_text_encoder(loaded) -> None:
    _, latent, first = run_chain(_svd(loaded), image(1), "move left", "", text_encoder=None)
    _, _, second = run_chain(_svd(loaded), image(1), "move right", "", text_encoder=None)
    assert latent["samples"].shape == (14, 4, 8, 8)  # SVD's default T
    assert torch.equal(first, second)


def _svd(loaded):
    from types import SimpleNamespace

    return SimpleNamespace(model=loaded.svd, text_encoder=None)


def test_aid_decode_reads_comfyuis_own_svd_latents_and_refuses_altered_ones(loaded) -> None:
    with torch.inference_mode():
        (frames,) = node("AIDDecode").decode(loaded.model, {"samples": torch.randn(5, 4, 8, 8)},
                                             2, True)
        assert frames.shape == (5, SIZE, SIZE, 3)
        _, latent, _ = run_chain(loaded, image(1))
        latent = {**latent, "samples": latent["samples"][:4]}
        with pytest.raises(ValueError, match=r"input 'latent'.*1 videos of 6 frames"):
            node("AIDDecode").decode(loaded.model, latent, 8, True)


def test_an_interrupt_stops_sampling_between_steps_and_the_next_run_works(loaded,
                                                                          monkeypatch) -> None:
    class Interrupted(Exception):
        pass

    calls = []

    def interrupt_at_second_step():
        calls.append(1)
        if len(calls) == 3:  # 1: before sampling, 2: after step 0, 3: after step 1
            raise Interrupted

    _, _, expected = run_chain(loaded, image(1))
    monkeypatch.setattr(services(), "throw_if_interrupted", interrupt_at_second_step)
    with pytest.raises(Interrupted):
        run_chain(loaded, image(1), sampling=(7, 5, *SAMPLING[2:]))
    monkeypatch.undo()
    _, _, again = run_chain(loaded, image(1))
    assert torch.equal(again, expected)


def test_models_not_kept_loaded_go_back_to_the_offload_device(monkeypatch) -> None:
    moves = []

    class Recording(torch.nn.Linear):
        def to(self, *args, **kwargs):
            moves.append(args[0] if args else kwargs.get("device"))
            return self

    module = Recording(2, 2)
    cpu = torch.device("cpu")
    kept = services().ManagedModel("kept", {"m": module}, True, (torch.device("meta"), cpu))
    with kept.loaded():
        pass
    assert moves == [torch.device("meta")]
    moves.clear()
    emptied = []
    monkeypatch.setattr(services(), "soft_empty_cache", lambda: emptied.append(1))
    released = services().ManagedModel("released", {"m": module}, False,
                                       (torch.device("meta"), cpu))
    with pytest.raises(RuntimeError), released.loaded():
        raise RuntimeError("a failing node still releases the model")
    assert moves == [torch.device("meta"), cpu] and emptied == [1]
