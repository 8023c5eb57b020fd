"""AID Long Video and AID Keep Reference Frames in a real ComfyUI give the library's numbers.

Fixture A's SVD built with ComfyUI's own classes and an AID with random non-zero weights
(as ``test_comfyui_native_parity``): AID Long Video against the library's
``predict_long_video`` on the same SVD, AID file, text tower and inputs; its progress over all
segments, an interrupt between steps (and the next run), its errors; Keep Reference Frames
after core VAE Decode against the library's ``keep_reference_frames``.

Run with ``make test-comfyui``; skipped with one line elsewhere.
"""

from __future__ import annotations

import torch
from comfyui_host import import_comfyui

COMFY_NODES = import_comfyui()

import pytest  # noqa: E402
from comfyui_fixtures import (  # noqa: E402
    fixture_clip,
    fixture_clip_vision,
    fixture_svd_model,
    fixture_vae,
)
from test_comfyui_native_parity import library_pipeline  # noqa: E402
from test_nodes_support import load_package  # noqa: E402

from aid_model.pipeline import PredictionOptions, predict_long_video  # noqa: E402

FRAMES, SIZE = 6, 16  # fixture A: T = 6 frames of 16×16
INSTRUCTIONS = ["move the red cup to the left", "lift the cup", "put it down"]
STATES = [["the cup on the right", "the cup on the left"],
          ["the cup on the table", "the cup in the air"],
          ["the cup in the air", "the cup on the table"]]
SEED, STEPS = 11, 4
FRAME_SCALE, TEXT_SCALE = 2.0, 3.5
TOLERANCE = 1e-4  # the bar of a 4-step native run against the library's

NODES = load_package().NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """ComfyUI's own SVD of fixture A with the random AID applied, its VAE, CLIP vision and
    the text fixture as ComfyUI's CLIP; and the library's pipeline on the same weights."""
    import folder_paths

    folder = tmp_path_factory.mktemp("aid")
    folder_paths.add_model_folder_path("aid", str(folder))
    library = library_pipeline(folder, "long.safetensors", trained=True)
    base = fixture_svd_model()
    model = NODES["AIDApply"]().apply(base, "long.safetensors", 1.0)[0]
    return {"base": base, "model": model, "vae": fixture_vae(), "library": library,
            "clip_vision": fixture_clip_vision(tmp_path_factory.mktemp("clip_vision")),
            "clip": fixture_clip()}


def references(count: int = 2, height: int = SIZE, width: int = SIZE) -> torch.Tensor:
    """K reference frames (K, H, W, 3) in [0, 1]."""
    return torch.rand(count, height, width, 3, generator=torch.Generator().manual_seed(2))


def long_video(host, reference, instructions=INSTRUCTIONS, states=STATES, overlap=2, **advanced):
    text = "\n\n".join("\n".join(block) for block in states) if states else ""
    return NODES["AIDLongVideo"]().generate(
        host["model"], host["clip_vision"], host["vae"], host["clip"], reference,
        "\n".join(instructions), overlap, SIZE, SIZE, SEED, STEPS, "euler", FRAME_SCALE,
        TEXT_SCALE, text, **advanced)[0]


def library_long_video(host, reference, instructions=INSTRUCTIONS, states=STATES, overlap=2,
                       **options):
    # decode_chunk_size None: the whole segment in one VAE call, as core VAE Decode does
    # when the memory allows it.
    settings = PredictionOptions(
        height=SIZE, width=SIZE, steps=STEPS, sampler="euler", frame_scale=FRAME_SCALE,
        text_scale=TEXT_SCALE, seed=SEED, decode_chunk_size=None, **options)
    return predict_long_video(host["library"], list(reference.movedim(-1, 1)), instructions,
                              overlap, states, settings)


@pytest.mark.parametrize(("given", "overlap", "with_states"), [(2, 2, True), (1, 3, False)])
def test_long_video_gives_the_librarys_long_video(host, given, overlap, with_states) -> None:
    reference = references(given, 20, 24)  # resized and centre-cropped to 16×16
    states = STATES if with_states else None
    video = long_video(host, reference, states=states, overlap=overlap)
    expected = library_long_video(host, reference, states=states, overlap=overlap)
    assert video.shape == (FRAMES + 2 * (FRAMES - overlap), SIZE, SIZE, 3)
    error = (video - expected).abs().max().item()
    print(f"K={given} overlap={overlap} states={with_states}: max error {error:.2e}")
    assert error <= TOLERANCE
    # The given frames come back as given (resized), the instruction moves the rest.
    torch.testing.assert_close(video[:given], expected[:given], atol=0, rtol=0)


def test_the_advanced_guidance_and_conditioning_inputs_match_the_librarys(host) -> None:
    reference = references(2)
    advanced = {"frame_scale_first": 1.0, "sigma_min": 0.5, "sigma_max": 100.0,
                "motion_bucket_id": 60, "fps": 5, "augmentation_level": 0.1}
    video = long_video(host, reference, instructions=INSTRUCTIONS[:2], states=STATES[:2],
                       **advanced)
    expected = library_long_video(
        host, reference, instructions=INSTRUCTIONS[:2], states=STATES[:2],
        frame_scale_first=1.0, guidance_interval=(0.5, 100.0), motion_bucket_id=60, fps=5,
        cond_aug=0.1)
    error = (video - expected).abs().max().item()
    print(f"advanced inputs: max error {error:.2e}")
    assert error <= TOLERANCE
    plain = long_video(host, reference, instructions=INSTRUCTIONS[:2], states=STATES[:2])
    assert (plain - video).abs().max() > 1e-3  # the inputs reach the result


def test_progress_counts_every_segments_steps_and_an_interrupt_stops_it(host,
                                                                         monkeypatch) -> None:
    import comfy.model_management
    import comfy.utils

    reports = []
    interrupt_at = []

    class Bar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            reports.append((value, total))
            if value in interrupt_at:
                comfy.model_management.interrupt_current_processing(True)

    monkeypatch.setattr(comfy.utils, "ProgressBar", Bar)
    reference = references(2)
    first = long_video(host, reference, instructions=INSTRUCTIONS[:2], states=STATES[:2])
    assert reports == [(step, 2 * STEPS) for step in range(1, 2 * STEPS + 1)]

    reports.clear()
    interrupt_at.append(STEPS + 1)  # the second segment's first step
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        long_video(host, reference, instructions=INSTRUCTIONS[:2], states=STATES[:2])
    assert reports[-1] == (STEPS + 1, 2 * STEPS)
    interrupt_at.clear()
    again = long_video(host, reference, instructions=INSTRUCTIONS[:2], states=STATES[:2])
    assert torch.equal(again, first)


def test_long_video_refuses_what_it_cannot_use(host) -> None:
    node = NODES["AIDLongVideo"]
    reference = references(2)
    with pytest.raises(ValueError, match=r"^input 'instructions' = ' \\n ': type at least one"):
        long_video(host, reference, instructions=[" ", " "], states=None)
    with pytest.raises(ValueError, match=r"^input 'states' = '2 blocks': there are 3 "
                                         r"instructions, so give 3 blocks"):
        long_video(host, reference, states=STATES[:2])
    with pytest.raises(ValueError, match=r"^input 'overlap' = 6: each segment has T = 6 frames"):
        long_video(host, reference, overlap=FRAMES)
    with pytest.raises(ValueError, match=r"^input 'reference_frames' = '6 frames': .*give at "
                                         r"most 5 reference frames"):
        long_video(host, references(FRAMES))
    with pytest.raises(ValueError, match=r"^model: this MODEL has no AID applied"):
        node().generate(host["base"], host["clip_vision"], host["vae"], host["clip"],
                        reference, "a", 2, SIZE, SIZE, SEED, STEPS, "euler", 1.0, 1.0)
    # The text inputs are checked when the prompt is queued; linked ones (None) at run time.
    assert node.VALIDATE_INPUTS(instructions="\n \n", states="").startswith(
        "input 'instructions'")
    assert "give 2 blocks" in node.VALIDATE_INPUTS(instructions="a\nb", states="x\n\ny\n\nz")
    assert node.VALIDATE_INPUTS(instructions="a\nb", states="x\n\ny") is True
    assert node.VALIDATE_INPUTS(instructions=None, states="x\n\ny") is True


def test_keep_reference_frames_after_vae_decode_is_the_librarys(host) -> None:
    from aid_model.images import prepare_frames
    from aid_model.pipeline.pipeline import keep_reference_frames

    latents = torch.randn(2 * FRAMES, 4, SIZE // 2, SIZE // 2,
                          generator=torch.Generator().manual_seed(3))
    (decoded,) = COMFY_NODES.NODE_CLASS_MAPPINGS["VAEDecode"]().decode(
        host["vae"], {"samples": latents})
    reference = references(2, 20, 24)
    prepared = prepare_frames(list(reference.movedim(-1, 1)), SIZE, SIZE)
    keep = NODES["AIDKeepReferenceFrames"]()
    (one,) = keep.keep(decoded[:FRAMES], reference)
    assert torch.equal(one, keep_reference_frames(decoded[None, :FRAMES], [prepared])[0])
    # Two videos one after the other (video_frames = T): each gets the given frames.
    (two,) = keep.keep(decoded, reference, FRAMES)
    expected = keep_reference_frames(decoded.reshape(2, FRAMES, SIZE, SIZE, 3),
                                     [prepared, prepared])
    assert torch.equal(two, torch.cat(expected))
