"""First frames as the state prompter takes them, and the content hash that keys the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from PIL import Image

if TYPE_CHECKING:
    import numpy as np
    import torch

# A path, a PIL image, or an (H, W, C) array/tensor: uint8 in [0, 255] or float in [0, 1]
# (ComfyUI's IMAGE layout, one frame of it), with C = 1, 3 or 4.
ImageInput = Union[str, Path, Image.Image, "np.ndarray", "torch.Tensor"]


def load_image(image: ImageInput) -> Image.Image:
    """``image`` as an RGB PIL image; raises with the offending value if it is none of the forms.

    Files and PIL images are read as the reference frames are (``aid_model.images``): by
    their mode and range, upright, transparency over white.
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    if isinstance(image, (str, Path, Image.Image)):
        from aid_model.images import image_to_array, read_image, to_uint8  # imports torch

        array = read_image(image) if not isinstance(image, Image.Image) else image_to_array(image)
        return Image.fromarray(to_uint8(array))
    return _array_to_image(image)


def _array_to_image(image: Any) -> Image.Image:
    import numpy as np

    if hasattr(image, "detach"):  # a torch tensor; imported lazily to keep this module light
        image = image.detach().to("cpu").float().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"expected an image path, PIL image, numpy array or torch tensor, got "
            f"{type(image).__name__}"
        )
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]  # a batch of one frame
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"expected an image array of shape (height, width, channels) with 1, 3 or 4 "
            f"channels, got shape {tuple(image.shape)}; a (channels, height, width) tensor "
            f"needs .permute(1, 2, 0) first"
        )
    if image.dtype != np.uint8:
        # Floats are taken as [0, 1], as ComfyUI and torchvision store them.
        image = (np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(image[:, :, :3]))


def image_sha256(image: Image.Image) -> str:
    """SHA-256 of the decoded RGB pixels and the size, as hex.

    Pixels rather than file bytes, so the same frame read from a PNG, re-saved losslessly,
    or handed over as a tensor keys the same cache row.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()
