"""Reading weight files safely, for every loader of the project: safetensors only, with errors
that say what to do.

Pickled checkpoints (.ckpt, .pt, .bin, .pth) can execute code when loaded, so they are
refused with the one-line conversion a user can run once on a file they trust.
"""

from __future__ import annotations

import json
import shlex
import struct
from pathlib import Path

import torch
from safetensors import safe_open

PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl"}
_SAFETENSORS_HEADER_LIMIT = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A weight file or folder that cannot be used as it is; the message says why and what to do."""


def _conversion_hint(path: Path) -> str:
    """The one command that converts the pickle ``path`` to safetensors, written beside it
    under a new name (never over the input, nor over an existing file), shell-quoted."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    target = path.with_name(f"{stem}.safetensors")
    if target == path or target.exists():
        target = path.with_name(f"{stem}.converted.safetensors")
    code = (
        "import torch; from safetensors.torch import save_file; "
        # A file object: torch.load reads a path ending in .safetensors as safetensors.
        f"sd = torch.load(open({str(path)!r}, 'rb'), map_location='cpu', weights_only=True); "
        "sd = sd.get('state_dict', sd); "
        f"save_file({{k: v.contiguous() for k, v in sd.items()}}, {str(target)!r})"
    )
    return f"convert it once, on a file you trust, with:\n  python -c {shlex.quote(code)}"


def _is_pickle(head: bytes) -> bool:
    """torch.save's zip container, or a raw pickle stream (protocol 2 and later)."""
    return head[:4] == b"PK\x03\x04" or head[:1] == b"\x80"


def check_safetensors_file(path: str | Path) -> Path:
    """Returns ``path`` if it is a complete safetensors file, else raises CheckpointError.

    Decides by content, not by name: a safetensors file named ``.ckpt`` is read, a pickle
    named ``.safetensors`` is refused as a pickle. Checks the 8-byte header length, the JSON
    header's structure (every tensor entry with dtype, shape and data offsets), and that the
    file is as long as the header says (a truncated download is the common failure).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weight file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"expected a .safetensors file, got the folder {path}")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(9)
        header_len = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else -1
        looks_valid = (
            0 < header_len <= min(size - 8, _SAFETENSORS_HEADER_LIMIT) and head[8:9] == b"{"
        )
        if not looks_valid:
            if _is_pickle(head):
                disguised = path.suffix.lower() not in PICKLE_SUFFIXES
                raise CheckpointError(
                    f"refusing to load the pickled PyTorch checkpoint {path}"
                    f"{' (a pickled PyTorch checkpoint despite its name)' if disguised else ''}"
                    ": pickles can run "
                    f"code, and this project loads safetensors only; {_conversion_hint(path)}"
                )
            kind = "a pickle" if path.suffix.lower() in PICKLE_SUFFIXES else "a safetensors file"
            raise CheckpointError(
                f"{path} is not a safetensors file, or its header is damaged or truncated "
                f"({size} bytes; judged by its content, its name suggests {kind})"
            )
        handle.seek(8)
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointError(f"{path} has an unreadable safetensors header: {error}") from None
    data_end = _check_header(header, path)
    if 8 + header_len + data_end > size:
        raise CheckpointError(
            f"{path} is truncated: its header describes {8 + header_len + data_end} bytes, the "
            f"file has {size}; download or copy it again"
        )
    return path


def _check_header(header, path: Path) -> int:
    """The end of the tensor data the header describes; CheckpointError naming the file and
    the entry when the header is not safetensors' {name: {dtype, shape, data_offsets}}."""
    def damaged(what: str) -> CheckpointError:
        return CheckpointError(f"{path} has a malformed safetensors header: {what}; the file "
                               "is damaged or was not written by safetensors")

    if not isinstance(header, dict):
        raise damaged(f"a JSON {type(header).__name__} instead of an object")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise damaged("__metadata__ is not a mapping of strings to strings")
    data_end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise damaged(f"the entry of tensor {key!r} is {info!r}, not an object")
        offsets, shape = info.get("data_offsets"), info.get("shape")
        if not (isinstance(info.get("dtype"), str) and _integers(shape) and _integers(offsets)
                and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1]):
            raise damaged(f"tensor {key!r} lacks a valid dtype, shape or data_offsets "
                          f"(got {json.dumps(info)[:200]})")
        data_end = max(data_end, offsets[1])
    return data_end


def _integers(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


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
