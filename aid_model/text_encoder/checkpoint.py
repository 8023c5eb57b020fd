"""Reading an OpenCLIP text tower out of a safetensors file; pickled files are refused.

Two layouts are recognised by their keys: an open_clip model file (``token_embedding.weight``,
``transformer.resblocks.*``, maybe ``visual.*``) and an SD 2.x single-file checkpoint (the
same keys under ``cond_stage_model.model.``, next to the UNet and VAE). Only the text
tower's tensors are read, so a 5 GB SD checkpoint costs the text tower's memory alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

from aid_model.safetensors_io import check_safetensors_file

from .convert import is_non_text_key

SD2_TEXT_PREFIX = "cond_stage_model.model."
_OPENCLIP_MARKER = "token_embedding.weight"
_TRANSFORMERS_MARKER = "text_model."
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
    path = check_safetensors_file(path)  # refuses pickles, names truncated/foreign files
    with safe_open(str(path), framework="pt") as handle:
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
