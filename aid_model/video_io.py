"""Writing predicted videos: browser-playable H.264 mp4, GIF/WebP, PNG frames, contact sheets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from aid_model.atomic import atomic_path


def to_uint8(frames: Tensor) -> np.ndarray:
    """(T, H, W, 3) float in [0, 1] → uint8 array (T, H, W, 3)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames (T, H, W, 3), got shape {tuple(frames.shape)}")
    return (frames.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def write_mp4(frames: Tensor, path: str | Path, fps: float = 7.0, crf: int = 18) -> Path:
    """H.264 (yuv420p) mp4 through PyAV's bundled libx264: it plays in browsers, unlike
    OpenCV's mp4v. Odd sizes are padded by one pixel (4:2:0 needs even sizes)."""
    import av  # PyAV: imported here so the library works without it until a video is written

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = to_uint8(frames)
    pad_h, pad_w = array.shape[1] % 2, array.shape[2] % 2
    if pad_h or pad_w:
        array = np.pad(array, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    with atomic_path(path) as temporary, av.open(str(temporary), mode="w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height = array.shape[2], array.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for image in array:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_animation(frames: Tensor, path: str | Path, fps: float = 7.0) -> Path:
    """Animated GIF or WebP (by the suffix), looping."""
    path = Path(path)
    if path.suffix.lower() not in (".gif", ".webp"):
        raise ValueError(f"animation must end in .gif or .webp, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(image) for image in to_uint8(frames)]
    duration = max(1, round(1000 / fps))
    extra = {"lossless": True} if path.suffix.lower() == ".webp" else {}
    with atomic_path(path) as temporary:
        images[0].save(
            temporary, save_all=True, append_images=images[1:], duration=duration, loop=0,
            **extra,
        )
    return path


def write_frames(frames: Tensor, folder: str | Path, stem: str = "frame") -> list[Path]:
    """Each frame as ``{stem}_{index:03d}.png``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(to_uint8(frames)):
        path = folder / f"{stem}_{index:03d}.png"
        with atomic_path(path) as temporary:
            Image.fromarray(image).save(temporary)
        paths.append(path)
    return paths


# Width (px) of the margin that row labels are written in, and the space around them.
LABEL_MARGIN = 200
LABEL_PADDING = 4


def contact_sheet(rows: list[Tensor], gap: int = 2, background: int = 255,
                  labels: list[str] | None = None) -> Image.Image:
    """One row per video (each (T, H, W, 3)), frames left to right, as a PIL image.

    ``labels``: one text per row (a variant's name, an instruction), written in a margin left
    of its row, wrapped to the margin and cut with "…" where the row is too low for it."""
    arrays = [to_uint8(row) for row in rows]
    if labels is not None and len(labels) != len(arrays):
        raise ValueError(f"contact_sheet: {len(labels)} labels for {len(arrays)} rows; "
                         "give one label per row, or labels=None")
    height = max(a.shape[1] for a in arrays)
    width = max(a.shape[2] for a in arrays)
    columns = max(a.shape[0] for a in arrays)
    margin = 0 if labels is None else LABEL_MARGIN + gap
    sheet = np.full(
        (len(arrays) * (height + gap) - gap, margin + columns * (width + gap) - gap, 3),
        background,
        dtype=np.uint8,
    )
    for r, array in enumerate(arrays):
        for c, image in enumerate(array):
            top, left = r * (height + gap), margin + c * (width + gap)
            sheet[top : top + image.shape[0], left : left + image.shape[1]] = image
    image = Image.fromarray(sheet)
    if labels is not None:
        _write_labels(image, labels, row_pitch=height + gap, row_height=height)
    return image


def _write_labels(image: Image.Image, labels: list[str], row_pitch: int, row_height: int
                  ) -> None:
    """Each label in the left margin of its row, in PIL's default font, black."""
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    line_height = draw.textbbox((0, 0), "Ag", font=font)[3] + 2
    max_lines = max(1, (row_height - 2 * LABEL_PADDING) // line_height)
    for row, label in enumerate(labels):
        lines = _wrapped(label, lambda text: draw.textlength(text, font=font),
                         LABEL_MARGIN - 2 * LABEL_PADDING, max_lines)
        top = row * row_pitch + LABEL_PADDING
        draw.multiline_text((LABEL_PADDING, top), "\n".join(lines), fill=(0, 0, 0), font=font,
                            spacing=2)


def _wrapped(text: str, length: Callable[[str], float], width: float, max_lines: int
             ) -> list[str]:
    """``text`` in lines no longer than ``width`` by ``length(line)``, words kept whole
    unless one alone is too long; at most ``max_lines``, the last ended with "…" when
    words were left out."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and length(candidate) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _cut(lines[-1], length, width, words_left_out=True)
    return [_cut(line, length, width) for line in lines] or [""]


def _cut(line: str, length: Callable[[str], float], width: float,
         words_left_out: bool = False) -> str:
    """``line`` as it is when it fits and nothing after it was left out; else shortened
    from the end and ended with "…" so that it fits."""
    if not words_left_out and length(line) <= width:
        return line
    while line and length(line + "…") > width:
        line = line[:-1]
    return line.rstrip() + "…"


def write_contact_sheet(rows: list[Tensor], path: str | Path, gap: int = 2,
                        labels: list[str] | None = None) -> Path:
    """``contact_sheet(rows, gap, labels=labels)`` saved as ``path`` (PNG by its suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(rows, gap, labels=labels)
    with atomic_path(path) as temporary:
        sheet.save(temporary)
    return path


def read_video(path: str | Path) -> Tensor:
    """(T, H, W, 3) float in [0, 1] from a video file (PyAV), for checks and round trips."""
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        raise ValueError(f"{path} has no decodable video frames")
    return torch.from_numpy(np.stack(frames)).float() / 255.0
