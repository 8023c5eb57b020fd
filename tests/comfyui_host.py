"""ComfyUI imported into the test process, for tests that call its classes directly.

``import_comfyui()`` puts ``$COMFYUI_PATH`` first on ``sys.path`` (so ``import nodes`` is
ComfyUI's ``nodes.py``, not this repository's ``nodes/`` package), selects the CPU before
``comfy.model_management`` is imported, and loads the built-in extra nodes (the
``comfy_extras`` ones: SVD conditioning, DualCFGGuider, SamplerCustomAdvanced, …). It needs
an interpreter with ComfyUI's requirements: run these tests with ``make test-comfyui``.
Without ``COMFYUI_PATH`` the calling test module is skipped with one line saying so.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from types import ModuleType

import pytest

SKIP_REASON = ("real-ComfyUI tests: to run them, `make test-comfyui` (or set COMFYUI_PATH to an "
               "unpacked ComfyUI and run pytest with a Python that has its requirements)")


def import_comfyui() -> ModuleType:
    """ComfyUI's ``nodes`` module with the built-in extra nodes registered; skips the calling
    module when ``COMFYUI_PATH`` is unset."""
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.skip(SKIP_REASON, allow_module_level=True)
    path = os.path.abspath(path)
    if sys.path[0] != path:
        sys.path.insert(0, path)
    loaded = sys.modules.get("nodes")
    if loaded is not None and not (getattr(loaded, "__file__", "") or "").startswith(path):
        del sys.modules["nodes"]  # this repository's nodes/ package, imported by name
    from comfy.cli_args import args

    args.cpu = True
    comfy_nodes = importlib.import_module("nodes")
    if "DualCFGGuider" not in comfy_nodes.NODE_CLASS_MAPPINGS:
        asyncio.run(comfy_nodes.init_builtin_extra_nodes())
    return comfy_nodes
