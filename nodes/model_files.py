"""Model files the nodes pick from ComfyUI's model folders: where they are, and what to do when
one is missing (said when the prompt is queued, in the input's name)."""

from __future__ import annotations

from pathlib import Path

from . import comfy_services as services
from .errors import InputError

AID_FOLDERS = ("aid",)
VLM_FOLDERS = ("LLM", "llava")


def missing(folders: tuple[str, ...], name: str, what: str) -> str | None:
    """None when ``name`` is found in ``folders``, else what to do about it."""
    if services.resolve_model_path(folders, name) is not None:
        return None
    existing = [path for folder in folders for path in services.folder_dirs(folder)
                if path.is_dir()]
    if not existing:
        return (f"'{name}' not found: no folder for {what} exists yet; create "
                f"{services.describe_folders(folders)}, put it there and press R in ComfyUI "
                "to refresh the lists")
    return (f"'{name}' is not in {services.describe_folders(folders)}; put {what} there (or "
            "pick one from the list) and press R in ComfyUI to refresh the lists")


def model_path(folders: tuple[str, ...], name: str, input_name: str, what: str) -> Path:
    """The path of ``name`` in ``folders``; an InputError naming ``input_name`` if absent."""
    problem = missing(folders, name, what)
    if problem is not None:
        raise InputError(input_name, name, problem)
    return services.resolve_model_path(folders, name)
