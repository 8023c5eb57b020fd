"""Reading the frames of one clip: from a video file (OpenCV, PyAV where OpenCV cannot) or
from image files.

Frames come back as uint8 RGB arrays (H, W, 3). A clip is asked for through ``choose``, a
function from the number of frames available in the segment to the (relative, ascending)
indices wanted, so the caller's sampling rule sees the true frame count even when the
container's header is wrong about it (Matroska/WebM headers often carry only a duration).
Anything unreadable raises ``DecodeError``; the dataset skips and counts it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Decoding all frames from the start is exact; seeking a long video (Epic-Kitchens: tens of
# thousands of frames) is what makes it fast. Below this many frames we decode from 0.
_SEEK_AFTER = 300

IndexChooser = Callable[[int], Sequence[int]]


class DecodeError(Exception):
    """A clip that cannot be read. ``reason`` is a short tag for the skip report."""

    def __init__(self, message: str, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason


class ShortClipError(DecodeError):
    """The segment holds fewer frames than the sampling rule needs."""

    def __init__(self, available: int, needed: int) -> None:
        super().__init__(f"{available} frame(s) available, {needed} needed", reason="short")
        self.available = available
        self.needed = needed


@dataclass
class DecodedClip:
    """The chosen frames (uint8 (H, W, 3) RGB each), their indices relative to the segment
    start, how many frames the segment had, and the source's frame rate (0 if unknown)."""

    frames: list[np.ndarray]
    indices: list[int]
    available: int
    native_fps: float


def read_video_clip(
    path: str | Path, choose: IndexChooser, start: int = 0, end: int | None = None
) -> DecodedClip:
    """Frames ``choose(n)`` of the segment [start, end) of a video (``end`` None: to the end).

    Tries OpenCV, then PyAV when OpenCV cannot open the file or decodes nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise DecodeError(f"video {str(path)!r} does not exist", reason="missing")
    if start < 0 or (end is not None and end <= start):
        raise DecodeError(f"bad segment [{start}, {end}) for {path}", reason="bad segment")
    try:
        clip = _read_with_opencv(path, choose, start, end)
    except DecodeError as opencv_error:
        if opencv_error.reason == "short":
            raise  # the file was read; it is too short, and PyAV would find the same
        try:
            clip = _read_with_pyav(path, choose, start, end)
        except DecodeError as pyav_error:
            if pyav_error.reason == "short":
                raise
            raise DecodeError(
                f"cannot decode {path}: OpenCV: {opencv_error}; PyAV: {pyav_error}"
            ) from None
    return clip


def read_image_clip(
    paths: Sequence[Path], choose: IndexChooser, native_fps: float = 0.0
) -> DecodedClip:
    """Frames ``choose(len(paths))`` of a clip stored as one image file per frame."""
    indices = _checked_indices(choose(len(paths)), len(paths))
    return DecodedClip([read_image(paths[i]) for i in indices], indices, len(paths), native_fps)


def read_image(path: str | Path) -> np.ndarray:
    """One image file as uint8 (H, W, 3) RGB, read as reference frames are (by mode and
    range, upright)."""
    from aid_model.images import read_image as read_frame
    from aid_model.images import to_uint8

    try:
        return to_uint8(read_frame(path))
    except FileNotFoundError:
        raise DecodeError(f"frame {str(path)!r} does not exist", reason="missing") from None
    except (OSError, ValueError) as error:
        raise DecodeError(f"cannot read frame {path}: {error}") from None


def _checked_indices(indices: Sequence[int], available: int) -> list[int]:
    indices = [int(i) for i in indices]
    if not indices or any(b < a for a, b in itertools.pairwise(indices)):
        raise ValueError(f"frame indices must be a non-empty ascending list, got {indices}")
    if indices[0] < 0 or indices[-1] >= available:
        raise ShortClipError(available, indices[-1] + 1)
    return indices


def _segment_length(start: int, end: int | None, header_count: int) -> int | None:
    """Frames in [start, end) by the annotation or the header; None when neither knows."""
    if end is not None:
        return end - start
    if header_count > 0:
        return header_count - start
    return None


def _read_with_opencv(path: Path, choose: IndexChooser, start: int, end: int | None) -> DecodedClip:
    quiet_ffmpeg_logs()
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise DecodeError("cannot open")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        header_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()

    def frames_from(first: int):
        """Yield (absolute index, RGB frame) from ``first`` on, until the stream ends."""
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        try:
            position = 0
            if first > _SEEK_AFTER and capture.set(cv2.CAP_PROP_POS_FRAMES, first):
                position = first
            while position < first:  # short skips are grabbed: exact, and cheap
                if not capture.grab():
                    return
                position += 1
            while True:
                ok, frame = capture.read()
                if not ok or frame is None:
                    return
                yield position, frame
                position += 1
        finally:
            capture.release()

    return _collect(frames_from, choose, start, end, header_count, fps, to_rgb=_bgr_to_rgb)


def _read_with_pyav(path: Path, choose: IndexChooser, start: int, end: int | None) -> DecodedClip:
    try:
        import av
    except ImportError:
        raise DecodeError("PyAV is not installed (pip install av)") from None

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError("no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            header_count = int(stream.frames or 0)
    except av.FFmpegError as error:
        raise DecodeError(str(error)) from None

    def frames_from(first: int):
        try:
            with av.open(str(path)) as container:
                for position, frame in enumerate(container.decode(video=0)):
                    if position >= first:
                        yield position, frame.to_ndarray(format="rgb24")
        except av.FFmpegError:
            return  # a stream broken midway ends here; _collect reports what is missing

    return _collect(frames_from, choose, start, end, header_count, fps, to_rgb=None)


def _collect(
    frames_from: Callable,
    choose: IndexChooser,
    start: int,
    end: int | None,
    header_count: int,
    fps: float,
    to_rgb: Callable[[np.ndarray], np.ndarray] | None,
) -> DecodedClip:
    """Decode the chosen frames; when the stream holds fewer frames than the header or the
    annotation said, choose again from the true count and decode once more."""
    known = _segment_length(start, end, header_count)
    if known is None:
        # No count anywhere: count by decoding (only containers without a frame count
        # or duration end up here, and they are short ones in practice).
        with contextlib.closing(frames_from(start)) as frames:
            known = sum(1 for position, _ in frames if end is None or position < end)
        if known == 0:
            raise DecodeError("no decodable frames")
    if known <= 0:
        raise DecodeError(
            f"the segment starts at frame {start} but the video has {header_count}",
            reason="short",
        )
    for _ in range(2):
        indices = _checked_indices(choose(known), known)
        wanted = {start + i for i in indices}
        last = start + indices[-1]
        kept: dict[int, np.ndarray] = {}
        decoded_to = start - 1
        # closing(): release the decoder as soon as the last wanted frame is in.
        with contextlib.closing(frames_from(start)) as frames:
            for position, frame in frames:
                decoded_to = position
                if position in wanted:
                    kept[position] = to_rgb(frame) if to_rgb else frame
                if position >= last:
                    break
        if len(kept) == len(wanted):
            return DecodedClip([kept[start + i] for i in indices], indices, known, fps)
        # The stream ended early: decoded_to is the true last frame of the segment.
        true_count = decoded_to - start + 1
        if true_count <= 0:
            raise DecodeError(
                "no decodable frames" if start == 0 else f"no frames at or after {start}"
            )
        known = true_count
    raise DecodeError("frame count changed between two decodes")


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    return np.ascontiguousarray(frame[:, :, 2::-1])


def quiet_ffmpeg_logs() -> None:
    """Keep OpenCV's FFmpeg from printing a line per corrupt file (the skip report counts them)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
