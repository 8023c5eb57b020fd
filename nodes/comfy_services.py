"""ComfyUI's services, imported lazily, with plain fallbacks when ComfyUI is absent.

What the model-file lists and the state prompter need from ComfyUI (``folder_paths``,
``comfy.model_management``, ``comfy.model_patcher``). Inside ComfyUI every function here
defers to ComfyUI; without it (tests, scripts) the same functions behave plainly:

- model folders: ``folder_paths`` (``aid``, ``LLM``, ``llava`` registered by us);
  without ComfyUI, subfolders of ``$AID_MODELS_DIR`` (else ``./models``).
- devices, dtype: ``comfy.model_management``; without it, cuda if available, else cpu.
- loading, offloading (the state prompter's VLM): a ``ModelPatcher`` and
  ``load_models_gpu``; without, ``module.to``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from aid_model.demo.paths import AID_FILE as DEMO_AID_FILE
from aid_model.demo.paths import DEMO_DIR

ENV_MODELS_DIR = "AID_MODELS_DIR"

# Model folder names → subfolders of the models directory. The first four are ComfyUI's
# own (``clip`` is its legacy name for ``text_encoders``); ``aid`` is ours; ``LLM`` and
# ``llava`` are where ComfyUI users keep vision-language models for other extensions.
MODEL_FOLDERS: dict[str, tuple[str, ...]] = {
    "checkpoints": ("checkpoints",),
    "diffusers": ("diffusers",),
    "text_encoders": ("text_encoders", "clip"),
    "aid": ("aid",),
    "LLM": ("LLM",),
    "llava": ("llava",),
}
# Folders this extension adds to ComfyUI's registry, with the file types listed in them.
REGISTERED_FOLDERS: dict[str, set[str]] = {"aid": {".safetensors"}, "LLM": set(), "llava": set()}
WEIGHT_SUFFIXES = (".safetensors", ".sft")

_models_dir_override: Path | None = None


# --- is ComfyUI there? -------------------------------------------------------------------


@functools.cache
def comfy() -> SimpleNamespace | None:
    """ComfyUI's modules when this process runs inside ComfyUI, else None."""
    try:
        import comfy.model_management as model_management
        import comfy.utils as utils
        import folder_paths
    except ImportError:
        return None
    return SimpleNamespace(folder_paths=folder_paths, mm=model_management, utils=utils)


def _optional_module(name: str) -> Any | None:
    """A ComfyUI module that some versions lack; None when it cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# --- model folders -----------------------------------------------------------------------


def set_models_dir(path: str | Path | None) -> None:
    """Outside ComfyUI: the models directory (None: ``$AID_MODELS_DIR``, else ./models)."""
    global _models_dir_override
    _models_dir_override = Path(path) if path is not None else None


def models_dir() -> Path:
    """The models directory: ComfyUI's, or the fallback one."""
    services = comfy()
    if services is not None:
        return Path(services.folder_paths.models_dir)
    if _models_dir_override is not None:
        return _models_dir_override
    return Path(os.environ.get(ENV_MODELS_DIR, "models"))


def register_model_folders() -> None:
    """Registers ``aid`` (.safetensors), ``LLM`` and ``llava`` with ComfyUI's folder_paths.

    Paths a user added in ``extra_model_paths.yaml`` (loaded before custom nodes) are kept;
    the default ``models/<name>`` folder is appended to them. No-op without ComfyUI.
    """
    services = comfy()
    if services is None:
        return
    folder_paths = services.folder_paths
    registry = folder_paths.folder_names_and_paths
    for name, suffixes in REGISTERED_FOLDERS.items():
        default = os.path.join(folder_paths.models_dir, name)
        paths, known_suffixes = registry.get(name, ([], set()))
        paths = list(paths) + ([default] if default not in paths else [])
        registry[name] = (paths, set(suffixes) or set(known_suffixes))
    # The bundled miniature's AID weights (demo_model/aid.safetensors), after the user's own;
    # list_weight_files leaves out the miniature's other weight files.
    demo = str(DEMO_DIR)
    if DEMO_DIR.is_dir() and demo not in registry["aid"][0]:
        registry["aid"][0].append(demo)


def _is_demo_part(folder: str, name: str) -> bool:
    """A weight file of the miniature's SVD or text encoder, listed from demo_model/."""
    if folder != "aid" or name == DEMO_AID_FILE:
        return False
    path = comfy().folder_paths.get_full_path(folder, name)
    return path is not None and Path(path).resolve().is_relative_to(DEMO_DIR.resolve())


def folder_dirs(folder: str) -> list[Path]:
    """The directories of a model folder name, in search order (missing ones included)."""
    services = comfy()
    if services is not None:
        try:
            return [Path(path) for path in services.folder_paths.get_folder_paths(folder)]
        except KeyError:
            return [Path(services.folder_paths.models_dir) / folder]
    return [models_dir() / sub for sub in MODEL_FOLDERS.get(folder, (folder,))]


def list_weight_files(folder: str) -> list[str]:
    """Weight files (.safetensors) in a model folder, as ComfyUI lists them: relative paths
    with forward slashes, sorted."""
    services = comfy()
    if services is not None:
        try:
            names = services.folder_paths.get_filename_list(folder)
        except KeyError:
            names = []
        return sorted(name.replace(os.sep, "/") for name in names
                      if name.lower().endswith(WEIGHT_SUFFIXES)
                      and not _is_demo_part(folder, name))
    found: set[str] = set()
    for base in folder_dirs(folder):
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if path.is_file() and path.suffix.lower() in WEIGHT_SUFFIXES:
                found.add(path.relative_to(base).as_posix())
    return sorted(found)


def list_model_dirs(folder: str, is_model: Callable[[Path], bool], depth: int = 2) -> list[str]:
    """Sub-folders (up to ``depth`` levels down) of a model folder that ``is_model`` accepts,
    as relative paths ending in "/" so that they never collide with file names."""
    found: set[str] = set()
    for base in folder_dirs(folder):
        if not base.is_dir():
            continue
        level = [base]
        for _ in range(depth):
            next_level = []
            for parent in level:
                try:
                    children = sorted(p for p in parent.iterdir() if p.is_dir())
                except OSError:
                    continue
                for child in children:
                    if child.name.startswith("."):
                        continue
                    if is_model(child):
                        found.add(child.relative_to(base).as_posix() + "/")
                    else:
                        next_level.append(child)
            level = next_level
    return sorted(found)


def resolve_model_path(folders: tuple[str, ...], name: str) -> Path | None:
    """The path of a listed entry (file, or folder ending in "/"), searched in ``folders``;
    None when it is in none of them. Names that would leave the folder are refused."""
    relative = Path(name.rstrip("/"))
    if not name.strip("/") or relative.is_absolute() or ".." in relative.parts:
        return None
    want_dir = name.endswith("/")
    for folder in folders:
        for base in folder_dirs(folder):
            candidate = base / relative
            if (candidate.is_dir() if want_dir else candidate.is_file()):
                return candidate
    return None


def describe_folders(folders: tuple[str, ...]) -> str:
    """'models/checkpoints, models/diffusers' for error messages."""
    return ", ".join(str(path) for folder in folders for path in folder_dirs(folder))


# --- devices and dtypes ------------------------------------------------------------------


def _fallback_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_device() -> torch.device:
    """Where the models compute (ComfyUI's torch device)."""
    services = comfy()
    return services.mm.get_torch_device() if services is not None else _fallback_device()


def offload_device() -> torch.device:
    """Where idle models wait (ComfyUI's UNet offload device; cpu without ComfyUI)."""
    services = comfy()
    return services.mm.unet_offload_device() if services is not None else torch.device("cpu")


def auto_dtype(device: torch.device) -> torch.dtype:
    """dtype "auto": bfloat16 where the device runs it well, else float16 on a GPU, float32
    on a CPU (ComfyUI's choice through ``unet_dtype`` with bfloat16 preferred)."""
    services = comfy()
    if services is not None:
        preferred = [torch.bfloat16, torch.float16, torch.float32]
        return services.mm.unet_dtype(device, supported_dtypes=preferred)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def soft_empty_cache() -> None:
    """Returns cached, unused GPU memory to the driver."""
    services = comfy()
    if services is not None:
        services.mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- loading and offloading --------------------------------------------------------------


class _ModuleGroup(nn.Module):
    """Modules that move together, as one ``nn.Module`` ComfyUI's ModelPatcher can hold
    (diffusers and transformers models have a read-only ``device``, which it sets)."""

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        self.parts = nn.ModuleDict(modules)


class ManagedModel:
    """Modules of one loaded model, on the load device while a node uses them.

    Inside ComfyUI they are handed to ComfyUI's model management (a ``ModelPatcher``):
    loading them frees memory held by other models, and ComfyUI moves them to the offload
    device when another model needs the room. ``keep_loaded=False`` moves them back to the
    offload device after every use instead (less VRAM held, slower next run).
    """

    def __init__(self, name: str, modules: dict[str, nn.Module], keep_loaded: bool,
                 devices: tuple[torch.device, torch.device] | None = None):
        self.name = name
        self.modules = modules
        self.keep_loaded = keep_loaded
        self.load_device, self.offload_device = devices or (load_device(), offload_device())
        self._patcher = None
        services = comfy()
        if services is not None:
            model_patcher = _optional_module("comfy.model_patcher")
            if model_patcher is not None:
                self._patcher = model_patcher.ModelPatcher(
                    _ModuleGroup(modules), self.load_device, self.offload_device
                )

    @contextmanager
    def loaded(self) -> Iterator[None]:
        """Puts the modules on the load device for the duration of the block."""
        services = comfy()
        if self._patcher is not None and services is not None:
            # force_full_load: these modules have no ComfyUI cast layers, so a partial
            # (low-VRAM) load would leave weights on the CPU.
            services.mm.load_models_gpu([self._patcher], force_full_load=True)
        else:
            for module in self.modules.values():
                module.to(self.load_device)
        try:
            yield
        finally:
            if not self.keep_loaded:
                self.offload()

    def offload(self) -> None:
        """Moves the modules to the offload device now and frees the cached memory."""
        services = comfy()
        if self._patcher is not None and services is not None:
            loaded = getattr(services.mm, "current_loaded_models", [])
            for index, entry in enumerate(list(loaded)):
                if getattr(entry, "model", None) is self._patcher:
                    entry.model_unload()
                    loaded.pop(index)
                    break
            else:
                self._patcher.detach()
        else:
            for module in self.modules.values():
                module.to(self.offload_device)
        soft_empty_cache()
