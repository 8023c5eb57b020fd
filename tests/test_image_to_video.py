"""Vanilla SVD image-to-video end to end on the parity fixture's checkpoint."""

from __future__ import annotations

import pytest
import torch

from aid_model.conditioning import clip_pixel_values, svd_added_time_ids
from aid_model.image_to_video import SVDSamplingOptions, svd_image_to_video
from aid_model.sampling import SamplingCancelled
from aid_model.video_decode import decode_latents

OPTIONS = SVDSamplingOptions(num_frames=6, steps=3, decode_chunk_size=3, seed=7)


@pytest.fixture(scope="module")
def image():
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_video_shape_range_and_determinism(fixture_svd, image):
    video = svd_image_to_video(fixture_svd, image, OPTIONS)
    assert video.shape == (6, 16, 16, 3)
    assert video.min() >= 0 and video.max() <= 1
    assert torch.equal(video, svd_image_to_video(fixture_svd, image, OPTIONS))
    other_seed = svd_image_to_video(
        fixture_svd, image, SVDSamplingOptions(**{**OPTIONS.__dict__, "seed": 8})
    )
    assert not torch.equal(video, other_seed)


def test_the_image_conditions_the_video(fixture_svd, image):
    video = svd_image_to_video(fixture_svd, image, OPTIONS)
    other = svd_image_to_video(fixture_svd, 1.0 - image, OPTIONS)
    assert (video - other).abs().mean() > 1e-3


def test_progress_callback_and_cancellation(fixture_svd, image):
    steps = []
    svd_image_to_video(fixture_svd, image, OPTIONS, callback=lambda info: steps.append(info.step))
    assert steps == [0, 1, 2]

    def stop(info):
        raise SamplingCancelled("stop")

    with pytest.raises(SamplingCancelled):
        svd_image_to_video(fixture_svd, image, OPTIONS, callback=stop)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_frames": 1}, "num_frames"),
        ({"steps": 0}, "steps"),
        ({"min_guidance": -1.0}, "guidance"),
        ({"sampler": "ddim"}, "unknown sampler"),
    ],
)
def test_bad_options_are_named(fixture_svd, image, change, message):
    with pytest.raises(ValueError, match=message):
        svd_image_to_video(fixture_svd, image, SVDSamplingOptions(**{**OPTIONS.__dict__, **change}))


def test_image_size_must_fit_the_model(fixture_svd):
    with pytest.raises(ValueError, match="multiple of 4"):
        svd_image_to_video(fixture_svd, torch.rand(3, 18, 16), OPTIONS)


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


def test_frame_0_is_the_given_image_as_in_the_aid_pipeline(fixture_svd, image):
    video = svd_image_to_video(fixture_svd, image, OPTIONS)
    torch.testing.assert_close(video[0], image.permute(1, 2, 0), rtol=0, atol=1e-6)
