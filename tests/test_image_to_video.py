"""Vanilla SVD image-to-video end to end on the parity fixture's checkpoint: ``AIDPipeline``
without AID weights, with SVD's linear guidance ramp (s_f 1.0 → 2.5, s_t = 0)."""

from __future__ import annotations

import pytest
import torch

from aid_model.conditioning import clip_pixel_values, svd_added_time_ids
from aid_model.pipeline import AIDPipeline, PredictionOptions
from aid_model.video_decode import decode_latents

OPTIONS = PredictionOptions(num_frames=6, height=16, width=16, steps=3, frame_scale_first=1.0,
                            frame_scale=2.5, text_scale=0.0, decode_chunk_size=3, seed=7)


@pytest.fixture(scope="module")
def svd(fixture_svd):
    return AIDPipeline(fixture_svd)


@pytest.fixture(scope="module")
def image():
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_video_shape_range_and_determinism(svd, image):
    video = svd.predict([image], options=OPTIONS)
    assert video.shape == (6, 16, 16, 3)
    assert video.min() >= 0 and video.max() <= 1
    assert torch.equal(video, svd.predict([image], options=OPTIONS))
    assert not torch.equal(video, svd.predict([image], options=OPTIONS.with_(seed=8)))


def test_the_image_conditions_the_video(svd, image):
    video = svd.predict([image], options=OPTIONS)
    other = svd.predict([1.0 - image], options=OPTIONS)
    assert (video - other).abs().mean() > 1e-3


class Cancelled(RuntimeError):
    """What a callback raises to stop sampling."""


def test_progress_callback_and_cancellation(svd, image):
    steps = []
    svd.predict([image], options=OPTIONS, callback=lambda info: steps.append(info.step))
    assert steps == [0, 1, 2]

    def stop(info):
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        svd.predict([image], options=OPTIONS, callback=stop)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_frames": 1}, "num_frames"),
        ({"steps": 0}, "steps"),
        ({"frame_scale_first": -1.0}, "frame_scale_first"),
        ({"sampler": "ddim"}, "unknown sampler"),
        ({"height": 18}, "multiple of 4"),
    ],
)
def test_bad_options_are_named(svd, image, change, message):
    with pytest.raises(ValueError, match=message):
        svd.predict([image], options=OPTIONS.with_(**change))


def test_micro_conditioning_uses_fps_minus_one():
    ids = svd_added_time_ids(fps=7, motion_bucket_id=127, cond_aug=0.02, batch_size=2)
    assert ids.shape == (2, 3)
    assert ids[0].tolist() == pytest.approx([6.0, 127.0, 0.02])
    with pytest.raises(ValueError, match="fps"):
        svd_added_time_ids(fps=0, motion_bucket_id=127, cond_aug=0.02)


def test_clip_preprocessing_normalises_to_clip_statistics():
    white = torch.ones(1, 3, 64, 64)
    pixels = clip_pixel_values(white, 28)
    assert pixels.shape == (1, 3, 28, 28)
    expected = (1 - torch.tensor([0.48145466, 0.4578275, 0.40821073])) / torch.tensor(
        [0.26862954, 0.26130258, 0.27577711]
    )
    assert torch.allclose(pixels[0, :, 0, 0], expected, atol=1e-5)


def test_chunked_decode_equals_decoding_each_chunk_as_its_own_video(fixture_svd):
    latents = torch.randn(1, 6, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    whole = decode_latents(fixture_svd.vae, latents, None)
    chunked = decode_latents(fixture_svd.vae, latents, 3)
    with torch.no_grad():
        first_chunk = fixture_svd.vae.decode(latents[0, :3], num_frames=3).sample
    assert torch.equal(chunked[0, :3], first_chunk)
    assert whole.shape == chunked.shape == (1, 6, 3, 16, 16)
    # The temporal decoder mixes frames within a call, so chunking changes the result.
    assert not torch.equal(whole, chunked)
    with pytest.raises(ValueError, match="chunk"):
        decode_latents(fixture_svd.vae, latents, 0)


def test_frame_0_is_the_given_image(svd, image):
    video = svd.predict([image], options=OPTIONS)
    torch.testing.assert_close(video[0], image.permute(1, 2, 0), rtol=0, atol=1e-6)
