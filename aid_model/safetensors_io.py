"""Reading weight files safely, for every loader of the project: safetensors only, with errors
that say what to do.

Pickled checkpoints (.ckpt, .pt, .bin, .pth) can execute code when loaded, so they are
refused with the one-line conversion a user can run once on a file they trust.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors import safe_open

PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl"}
_SAFETENSORS_HEADER_LIMIT = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A weight file or folder that cannot be used as it is; the message says why and what to do."""


def _conversion_hint(path: Path) -> str:
    target = path.with_suffix(".safetensors")
    return (
        "convert it once, on a file you trust, with:\n"
        '  python -c "import torch; from safetensors.torch import save_file; '
        f"sd = torch.load('{path}', map_location='cpu', weights_only=True); "
        "sd = sd.get('state_dict', sd); "
        f"save_file({{k: v.contiguous() for k, v in sd.items()}}, '{target}')\""
    )


def check_safetensors_file(path: str | Path) -> Path:
    """Returns ``path`` if it is a complete safetensors file, else raises CheckpointError.

    Checks the extension, the 8-byte header length and the JSON header, and that the
    file is as long as the header says (a truncated download is the common failure).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weight file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"expected a .safetensors file, got the folder {path}")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"refusing to load the pickled checkpoint {path}: pickles can run code, and this "
            f"project loads safetensors only; {_conversion_hint(path)}"
        )
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(9)
        header_len = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else -1
        looks_valid = (
            0 < header_len <= min(size - 8, _SAFETENSORS_HEADER_LIMIT) and head[8:9] == b"{"
        )
        if not looks_valid:
            # Only now ask what it is instead: zip (torch.save) or a raw pickle stream.
            if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
                raise CheckpointError(
                    f"{path} is a pickled PyTorch checkpoint despite its name; "
                    f"{_conversion_hint(path)}"
                )
            raise CheckpointError(
                f"{path} is not a safetensors file, or its header is damaged or truncated "
                f"({size} bytes)"
            )
        handle.seek(8)
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointError(f"{path} has an unreadable safetensors header: {error}") from None
    data_end = max(
        (info["data_offsets"][1] for k, info in header.items() if k != "__metadata__"), default=0
    )
    if 8 + header_len + data_end > size:
        raise CheckpointError(
            f"{path} is truncated: its header describes {8 + header_len + data_end} bytes, the "
            f"file has {size}; download or copy it again"
        )
    return path


def read_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape, read from the header alone (no tensor data is loaded)."""
    path = check_safetensors_file(path)
    with safe_open(str(path), framework="pt") as handle:
        return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118


def read_metadata(path: str | Path) -> dict[str, str]:
    path = check_safetensors_file(path)
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def read_tensors(
    path: str | Path,
    keys: set[str] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Loads the tensors named in ``keys`` (all when None), cast to ``dtype`` if given."""
    path = check_safetensors_file(path)
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        for key in handle.keys():  # noqa: SIM118
            if keys is not None and key not in keys:
                continue
            tensor = handle.get_tensor(key)
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            tensors[key] = tensor.to(device)
    return tensors
