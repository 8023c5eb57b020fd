"""Reading clips from video files and frame images; which frames a clip takes.

The helpers at the top (``write_video``, ``write_frames``, ``level_of``) build the tiny
synthetic datasets of the other ``test_data_*`` files: frame i of every video is a flat
grey of level ``LEVEL_STEP * i``, so a decoded frame tells which index it was.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from aid_model.data import decode
from aid_model.data.clips import (
    choose_indices,
    clip_fps,
    frames_needed,
    frames_to_tensor,
    parse_size,
    parse_stride,
    sample_rng,
)
from aid_model.data.decode import DecodeError, ShortClipError, read_image_clip, read_video_clip

LEVEL_STEP = 8
CODECS = {".webm": "libvpx-vp9", ".mp4": "libx264", ".MP4": "libx264", ".avi": "mpeg4"}


def frame_image(index: int, height: int = 24, width: int = 32) -> np.ndarray:
    return np.full((height, width, 3), LEVEL_STEP * index, dtype=np.uint8)


def write_video(path: Path, num_frames: int, fps: int = 12, size: tuple[int, int] = (24, 32)):
    """A tiny video whose frame i is a flat grey of level LEVEL_STEP·i (codec by suffix)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODECS[path.suffix], rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for index in range(num_frames):
            image = frame_image(index, *size)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder: Path, num_frames: int, name: str = "im_{}.jpg", first: int = 0):
    """Frame images name.format(first + i) with the same grey levels as ``write_video``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(num_frames):
        Image.fromarray(frame_image(index)).save(folder / name.format(first + index))
    return folder


def write_corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x1a\x45\xdf\xa3 this is not a video " * 20)
    return path


def level_of(frame) -> int:
    """The frame index a decoded frame shows (uint8 (H, W, 3) or a [−1, 1] tensor)."""
    if isinstance(frame, torch.Tensor):
        value = (frame.float().mean().item() + 1.0) * 127.5
    else:
        value = float(np.asarray(frame, dtype=np.float64).mean())
    return round(value / LEVEL_STEP)


# ----- clip sampling -------------------------------------------------------------------


def test_uniform_indices_cover_the_segment_first_to_last():
    assert choose_indices(12, 12, "uniform") == list(range(12))
    indices = choose_indices(47, 12, "uniform")
    assert indices[0] == 0 and indices[-1] == 46 and len(indices) == 12
    assert all(b > a for a, b in itertools.pairwise(indices))


def test_integer_stride_window_slides_only_with_a_generator():
    assert choose_indices(30, 4, 3) == [0, 3, 6, 9]
    starts = {choose_indices(30, 4, 3, sample_rng(0, 0, i))[0] for i in range(50)}
    assert starts <= set(range(30 - frames_needed(4, 3) + 1)) and len(starts) > 5


def test_same_seed_epoch_index_gives_the_same_window_and_epochs_differ():
    first = [choose_indices(100, 4, 2, sample_rng(7, 0, i)) for i in range(20)]
    again = [choose_indices(100, 4, 2, sample_rng(7, 0, i)) for i in range(20)]
    other_epoch = [choose_indices(100, 4, 2, sample_rng(7, 1, i)) for i in range(20)]
    assert first == again
    assert first != other_epoch


def test_short_segment_raises_short_clip_error():
    with pytest.raises(ShortClipError) as caught:
        choose_indices(10, 4, 4)  # needs 13
    assert caught.value.reason == "short" and caught.value.needed == 13
    with pytest.raises(ShortClipError):
        choose_indices(11, 12, "uniform")


def test_clip_fps_divides_by_the_mean_spacing():
    assert clip_fps(12.0, [0, 2, 4, 6]) == pytest.approx(6.0)
    assert clip_fps(5.0, list(range(16))) == pytest.approx(5.0)


def test_bad_stride_and_size_are_rejected_with_the_value():
    with pytest.raises(ValueError, match="'fast'"):
        parse_stride("fast")
    with pytest.raises(ValueError, match="0"):
        parse_stride(0)
    assert parse_stride("3") == 3 and parse_stride("Uniform") == "uniform"
    with pytest.raises(ValueError, match="multiples of 8"):
        parse_size(250)
    assert parse_size([16, 32]) == (16, 32)


def test_frames_to_tensor_is_minus_one_to_one_and_centre_cropped():
    frames = [np.zeros((24, 32, 3), np.uint8), np.full((24, 32, 3), 255, np.uint8)]
    frames[0][:, 16:] = 255  # right half white: a centre crop keeps both halves
    out = frames_to_tensor(frames, (16, 16))
    assert out.shape == (2, 3, 16, 16) and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert out[1].mean().item() == pytest.approx(1.0)
    assert out[0, :, :, 0].mean() < -0.9 and out[0, :, :, -1].mean() > 0.9


# ----- decoding ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".webm", ".mp4", ".avi"])
def test_video_frames_are_the_chosen_ones(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", 20)
    clip = read_video_clip(path, lambda n: list(range(0, n, 4)))
    assert clip.available == 20 and clip.native_fps == pytest.approx(12.0)
    assert [level_of(f) for f in clip.frames] == [0, 4, 8, 12, 16]
    assert clip.frames[0].shape == (24, 32, 3) and clip.frames[0].dtype == np.uint8
    segment = read_video_clip(path, lambda n: [0, n - 1], start=5, end=15)
    assert segment.available == 10 and [level_of(f) for f in segment.frames] == [5, 14]


def test_a_segment_longer_than_the_video_is_resampled_from_the_true_count(tmp_path):
    path = write_video(tmp_path / "clip.webm", 20)
    clip = read_video_clip(path, lambda n: [0, n - 1], start=5, end=40)
    assert clip.available == 15 and [level_of(f) for f in clip.frames] == [5, 19]


def test_corrupt_video_raises_decode_error_naming_the_file(tmp_path):
    path = write_corrupt(tmp_path / "broken.webm")
    with pytest.raises(DecodeError, match=r"broken\.webm") as caught:
        read_video_clip(path, lambda n: [0])
    assert caught.value.reason == "unreadable"
    with pytest.raises(DecodeError) as missing:
        read_video_clip(tmp_path / "absent.mp4", lambda n: [0])
    assert missing.value.reason == "missing"


def test_too_short_video_is_reported_as_short(tmp_path):
    path = write_video(tmp_path / "clip.mp4", 6)
    with pytest.raises(DecodeError) as caught:
        read_video_clip(path, lambda n: choose_indices(n, 12, "uniform"))
    assert caught.value.reason == "short"


def test_pyav_reads_what_opencv_cannot(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.webm", 20)

    def opencv_fails(*args, **kwargs):
        raise DecodeError("codec not supported")

    monkeypatch.setattr(decode, "_read_with_opencv", opencv_fails)
    clip = read_video_clip(path, lambda n: [1, 3, n - 1])
    assert [level_of(f) for f in clip.frames] == [1, 3, 19]
    assert clip.native_fps == pytest.approx(12.0)


def test_image_frames_and_an_unreadable_image(tmp_path):
    folder = write_frames(tmp_path / "frames", 8)
    paths = sorted(folder.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    clip = read_image_clip(paths, lambda n: [0, n - 1], native_fps=5.0)
    assert [level_of(f) for f in clip.frames] == [0, 7] and clip.native_fps == 5.0
    paths[7].write_bytes(b"not a jpeg")
    with pytest.raises(DecodeError, match=r"im_7\.jpg"):
        read_image_clip(paths, lambda n: [0, n - 1])
