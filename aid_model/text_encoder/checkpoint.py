"""Reading an OpenCLIP text tower out of a safetensors file; pickled files are refused.

Two layouts are recognised by their keys: an open_clip model file (``token_embedding.weight``,
``transformer.resblocks.*``, maybe ``visual.*``) and an SD 2.x single-file checkpoint (the
same keys under ``cond_stage_model.model.``, next to the UNet and VAE). Only the text
tower's tensors are read, so a 5 GB SD checkpoint costs the text tower's memory alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .convert import is_non_text_key

SD2_TEXT_PREFIX = "cond_stage_model.model."
_OPENCLIP_MARKER = "token_embedding.weight"
_TRANSFORMERS_MARKER = "text_model."
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# torch.save writes a zip archive; older files are a bare pickle (protocol ≥ 2 starts 0x80).
_PICKLE_MAGICS = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def pickle_refusal(path: Path) -> ValueError:
    """The error for a pickled checkpoint, with the one-off conversion to safetensors."""
    return ValueError(
        f"{str(path)!r} is a pickled PyTorch checkpoint; only safetensors files are loaded "
        "(unpickling can run arbitrary code). Convert it once, where you trust the file:\n"
        "  import torch, safetensors.torch\n"
        f"  sd = torch.load({str(path)!r}, map_location='cpu', weights_only=True)\n"
        "  sd = sd.get('state_dict', sd)\n"
        "  safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()"
        " if isinstance(v, torch.Tensor)}, 'model.safetensors')\n"
        "or use the '.safetensors' file the model's publisher ships."
    )


def _looks_pickled(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4).startswith(_PICKLE_MAGICS)


def read_openclip_text_tower(path: str | Path) -> dict[str, torch.Tensor]:
    """Load the text tower of an open_clip or SD 2.x safetensors file, OpenCLIP key names.

    Args:
        path: ``*.safetensors`` with open_clip keys, or an SD 2.x single file.

    Returns:
        Tensors as stored (dtype unchanged), keys without the ``cond_stage_model.model.``
        prefix; image-side keys (``visual.*``) are not read. Text keys the conversion does
        not know are kept so that it can report them.

    Raises:
        ValueError: pickled file, unreadable file, or no OpenCLIP text tower in it.
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise pickle_refusal(path)
    try:
        handle = safe_open(str(path), framework="pt")
    except (SafetensorError, OSError) as error:
        if _looks_pickled(path):
            raise pickle_refusal(path) from error
        raise ValueError(f"{str(path)!r} is not a readable safetensors file: {error}") from error
    with handle:
        keys = list(handle.keys())
        if any(key.startswith(SD2_TEXT_PREFIX) for key in keys):
            prefix = SD2_TEXT_PREFIX
        elif _OPENCLIP_MARKER in keys:
            prefix = ""
        elif any(key.startswith(_TRANSFORMERS_MARKER) for key in keys):
            raise ValueError(
                f"{str(path)!r} is in transformers layout (keys 'text_model.*'); pass the "
                "folder that holds it with its config.json instead of the file"
            )
        else:
            raise ValueError(
                f"no OpenCLIP text tower in {str(path)!r}: expected keys "
                f"'{_OPENCLIP_MARKER}', 'transformer.resblocks.*' (open_clip file) or "
                f"'{SD2_TEXT_PREFIX}*' (SD 2.x checkpoint), found {len(keys)} keys such as "
                f"{keys[:5]}"
            )
        # In an SD 2.x file everything outside the prefix is UNet, VAE or EMA: not ours.
        return {
            key[len(prefix) :]: handle.get_tensor(key)
            for key in keys
            if key.startswith(prefix) and not is_non_text_key(key[len(prefix) :])
        }
