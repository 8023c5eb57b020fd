"""Shared set-up of the node and workflow tests (no tests of its own).

The extension is imported the way ComfyUI imports it: the repository root loaded as a
package from its ``__init__.py`` under a name that is not a valid identifier, so relative
imports and the ``sys.path`` entry for ``aid_model`` are exercised as in ComfyUI. A models
folder with tiny files (the shared fixtures) stands in for ComfyUI's ``models/``.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_NAME = "custom_nodes.comfyui-aid"  # what ComfyUI's loader would make of the folder

# Names the tiny files get in the test models folder.
SVD_FILE = "svd_tiny.safetensors"
AID_FILE = "aid_tiny.safetensors"
TEXT_ENCODER_FILE = "openclip_tiny.safetensors"
BARE_TEXT_ENCODER_FILE = "bare/openclip_tiny_no_tokenizer.safetensors"


@functools.cache
def load_package() -> ModuleType:
    """The repository root as ComfyUI loads a custom node folder."""
    spec = importlib.util.spec_from_file_location(
        PACKAGE_NAME, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE_NAME] = module
    spec.loader.exec_module(module)
    return module


def services() -> ModuleType:
    return sys.modules[f"{load_package().__name__}.nodes.comfy_services"]


def node(type_name: str):
    """An instance of the node class registered as ``type_name``."""
    return load_package().NODE_CLASS_MAPPINGS[type_name]()


def build_models_dir(root: Path, svd_checkpoint: Path, clip_text_dir: Path) -> Path:
    """checkpoints/, aid/, text_encoders/ with tiny files, as a user's ComfyUI models/."""
    from tiny_models import tiny_aid_pipeline

    from aid_model.aid import save_aid_weights

    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints" / SVD_FILE).symlink_to(svd_checkpoint)
    pipeline = tiny_aid_pipeline(svd_checkpoint, clip_text_dir)
    save_aid_weights(pipeline.aid, root / "aid" / AID_FILE)
    encoders = root / "text_encoders"
    (encoders / "bare").mkdir(parents=True)
    (encoders / TEXT_ENCODER_FILE).symlink_to(clip_text_dir / "openclip_text.safetensors")
    (encoders / BARE_TEXT_ENCODER_FILE).symlink_to(clip_text_dir / "openclip_text.safetensors")
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(clip_text_dir / name, encoders / name)
    return root


# Test modules import these fixtures by name; a fixture imported into several modules is
# set up once per module, so the heavy work behind them is cached here, once per session.


@functools.cache
def _models_dir(base: Path, svd_checkpoint: Path, clip_text_dir: Path) -> Path:
    return build_models_dir(base / "comfy-models", svd_checkpoint, clip_text_dir)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory, svd_fixture_checkpoint, clip_text_fixture_dir) -> Path:
    return _models_dir(tmp_path_factory.getbasetemp(), svd_fixture_checkpoint,
                       clip_text_fixture_dir)


@pytest.fixture
def models_dir(tiny_models_dir, monkeypatch) -> Path:
    """The fallback services pointed at the tiny models folder."""
    monkeypatch.setattr(services(), "_models_dir_override", tiny_models_dir)
    return tiny_models_dir


def image(frames: int = 1, height: int = 24, width: int = 20, seed: int = 0) -> torch.Tensor:
    """A ComfyUI IMAGE: (frames, H, W, 3) float in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(frames, height, width, 3, generator=generator)


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from a second thread, and on shared cores OpenMP's waiting
    threads can make them a hundred times slower; restored after the test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
