"""Reading and preparing reference frames: any size and mode in, model-ready tensors out.

``read_image`` is the one reader of image files, for the CLI, the state prompter and the
datasets: it converts by the pixel mode and its range, applies the EXIF orientation, and
refuses, naming the file, what has no faithful RGB reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

FrameLike = str | Path | Image.Image | np.ndarray | Tensor

# Modes PIL converts to 8-bit RGB without losing what they hold: 8 bits a channel, or a
# colour model it converts (CMYK, YCbCr, LAB, HSV).
_EIGHT_BIT_MODES = {
    "1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
}
# Unsigned 16-bit greyscale (PNG, TIFF), 65535 is white. PIL's convert("RGB") clips these
# at 255, which turns a mid-grey frame white.
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
# Float pixels are read as [0, 1]; this much rounding outside it is clipped, more is refused.
_FLOAT_SLACK = 1e-3


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB version of an 8-bit PIL image; transparency is composited over white (what a
    viewer shows), grayscale and palette images are expanded."""
    if image.mode in ("RGBA", "RGBa", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def image_to_array(image: Image.Image, source: str = "the image") -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from a PIL image, upright (EXIF orientation applied).

    8-bit modes are divided by 255 (transparency over white), 16-bit greyscale by 65535,
    float greyscale is taken as [0, 1]. Raises ``ValueError`` naming ``source`` for what
    has no faithful reading: 32-bit integer pixels (no white level), float pixels outside
    [0, 1] or not finite, modes PIL cannot convert.
    """
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in _EIGHT_BIT_MODES:
        return np.asarray(to_rgb(image), dtype=np.float32) / 255.0
    if mode in _SIXTEEN_BIT_MODES:
        grey = np.asarray(image).astype(np.float32) / 65535.0
    elif mode == "F":
        grey = np.asarray(image, dtype=np.float32)
        low, high = (float(grey.min()), float(grey.max())) if grey.size else (0.0, 0.0)
        if not np.isfinite(grey).all() or low < -_FLOAT_SLACK or high > 1.0 + _FLOAT_SLACK:
            raise ValueError(
                f"{source}: float pixels from {low:g} to {high:g}, expected 0 to 1; save it "
                "as an 8- or 16-bit PNG"
            )
        grey = grey.clip(0.0, 1.0)
    elif mode == "I":
        raise ValueError(
            f"{source}: 32-bit integer pixels have no white level to scale by; save it as "
            "an 8- or 16-bit PNG"
        )
    else:
        raise ValueError(
            f"{source}: pixel mode {mode!r} has no faithful RGB reading; save it as an 8- or "
            "16-bit PNG"
        )
    return np.repeat(grey[:, :, None], 3, axis=2)


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from an image file (see ``image_to_array``).

    Raises ``FileNotFoundError`` when there is no such file and ``ValueError``, one line
    naming the file, when it is not an image or has no faithful RGB reading.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            return image_to_array(image, source=str(path))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as error:
        # SyntaxError: what some PIL decoders raise for a malformed header.
        reason = " ".join(str(error).split())
        raise ValueError(f"cannot read {path} as an image ({reason}); use PNG, JPEG or WebP"
                         ) from None


def to_uint8(array: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] → uint8; an 8-bit image comes back exactly as it was."""
    return (array * 255.0).round().clip(0, 255).astype(np.uint8)


def load_image(path: str | Path) -> Tensor:
    """(3, H, W) float in [0, 1] from an image file, with a clear error when unreadable."""
    return torch.from_numpy(read_image(path)).permute(2, 0, 1).contiguous()


def pil_to_tensor(image: Image.Image) -> Tensor:
    """(3, H, W) float in [0, 1] from a PIL image of any mode (see ``image_to_array``)."""
    return torch.from_numpy(image_to_array(image)).permute(2, 0, 1).contiguous()


def as_frame(frame: FrameLike) -> Tensor:
    """One frame as (3, H, W) float in [0, 1].

    Accepts a path, a PIL image, an (H, W, C) uint8/uint16/float array, or a tensor
    (3, H, W) / (H, W, 3) / (H, W) in [0, 1]; C may be 1, 3 or 4 (alpha composited over
    white).
    """
    if isinstance(frame, (str, Path)):
        return load_image(frame)
    if isinstance(frame, Image.Image):
        return pil_to_tensor(frame)
    if isinstance(frame, np.ndarray) and frame.dtype == np.uint16:
        frame = frame.astype(np.float32) / 65535.0
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
