"""Opening a user-supplied feature-network file: TorchScript archive or state dict, with
errors that say which file, what was found and where a suitable one is published.
Nothing is ever downloaded."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import torch


class FeatureModelError(ValueError):
    """A feature-network file that is missing, unreadable or not the expected network."""


def existing_file(path: str | Path, what: str, where: str) -> Path:
    """``path`` if it is a file; else ``FeatureModelError`` saying ``where`` to get one."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FeatureModelError(f"{what} file {str(path)!r} does not exist. {where}")
    if not path.is_file():
        raise FeatureModelError(f"{what} path {str(path)!r} is a folder; pass the file. {where}")
    return path


def is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive (a zip holding ``*/code/`` and ``*/constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any("/code/" in name for name in names) and any(
        name.endswith("constants.pkl") for name in names
    )


def load_torchscript(path: Path, device: torch.device, what: str) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated in recent torch, but the published I3D and Inception
            # files are TorchScript archives and loading is the only way to use them.
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError) as error:
        raise FeatureModelError(f"cannot load {what} TorchScript {str(path)!r}: {error}") from None


def load_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A plain state dict (``torch.save(model.state_dict())`` or safetensors), tensors only;
    a "module." prefix (DataParallel) is removed."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds for foreign files
        raise FeatureModelError(
            f"{what} file {str(path)!r} is neither TorchScript nor a readable state dict: "
            f"{type(error).__name__}: {error}"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FeatureModelError(
            f"{what} file {str(path)!r} holds a {type(state).__name__}, not a state dict of tensors"
        )
    return {key.removeprefix("module."): value for key, value in state.items()}
