"""Reading and preparing reference frames: any size and mode in, model-ready tensors out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

FrameLike = str | Path | Image.Image | np.ndarray | Tensor


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB version of any PIL image; transparency is composited over white (what a viewer
    shows), grayscale and palette images are expanded."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | Path) -> Tensor:
    """(3, H, W) float in [0, 1] from an image file, with a clear error when unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            rgb = to_rgb(image)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(
            f"cannot read {path} as an image ({error}); use PNG, JPEG or WebP"
        ) from None
    return pil_to_tensor(rgb)


def pil_to_tensor(image: Image.Image) -> Tensor:
    array = np.asarray(to_rgb(image), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def as_frame(frame: FrameLike) -> Tensor:
    """One frame as (3, H, W) float in [0, 1].

    Accepts a path, a PIL image, an (H, W, C) uint8/float array, or a tensor (3, H, W) /
    (H, W, 3) / (H, W) in [0, 1]; C may be 1, 3 or 4 (alpha composited over white).
    """
    if isinstance(frame, (str, Path)):
        return load_image(frame)
    if isinstance(frame, Image.Image):
        return pil_to_tensor(frame)
    tensor = torch.as_tensor(np.asarray(frame) if isinstance(frame, np.ndarray) else frame)
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255.0
    tensor = tensor.float()
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    elif tensor.ndim == 3 and tensor.shape[-1] in (1, 3, 4) and tensor.shape[0] not in (1, 3, 4):
        tensor = tensor.permute(2, 0, 1)
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        raise ValueError(
            f"expected an image (3, H, W), (H, W, 3) or (H, W), got shape {tuple(tensor.shape)}"
        )
    if tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    elif tensor.shape[0] == 4:
        alpha = tensor[3:4]
        tensor = tensor[:3] * alpha + (1.0 - alpha)
    return tensor.clamp(0.0, 1.0).contiguous()


def resize_and_center_crop(frame: Tensor, height: int, width: int) -> Tensor:
    """(3, h, w) → (3, height, width): scale so the frame covers the target (aspect ratio
    kept, antialiased bicubic), then crop the centre."""
    _, source_h, source_w = frame.shape
    scale = max(height / source_h, width / source_w)
    new_h, new_w = max(height, round(source_h * scale)), max(width, round(source_w * scale))
    if (new_h, new_w) != (source_h, source_w):
        frame = F.interpolate(
            frame.unsqueeze(0),
            size=(new_h, new_w),
            mode="bicubic",
            antialias=True,
            align_corners=False,
        )[0].clamp(0.0, 1.0)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return frame[:, top : top + height, left : left + width].contiguous()


def prepare_frames(frames: Sequence[FrameLike], height: int, width: int) -> Tensor:
    """Reference frames of any size and mode → (K, 3, height, width) in [0, 1]."""
    if not frames:
        raise ValueError("at least one reference frame is needed")
    return torch.stack([resize_and_center_crop(as_frame(f), height, width) for f in frames])
