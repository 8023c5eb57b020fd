"""Shared test set-up: offline Hugging Face, the golden fixtures in tests/fixtures, small thread
count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Nothing in the suite may reach the hub; a missing local file must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]

# The test models are tiny: one thread is as fast on a quiet machine and up to 100x faster
# on a busy 2-core one, where two threads wait on each other (measured; docs/training.md).
torch.set_num_threads(1)


# Tiny random-weight models and the goldens of their reference implementations
# (tests/fixtures/README.md says what each file is and how it was made).
FIXTURES = REPO_ROOT / "tests" / "fixtures"
SVD_FIXTURE = FIXTURES / "svd-parity-A"
CLIP_TEXT_FIXTURE = FIXTURES / "clip-text"


@pytest.fixture(scope="session")
def svd_fixture_dir() -> Path:
    return SVD_FIXTURE


@pytest.fixture(scope="session")
def clip_text_fixture_dir() -> Path:
    return CLIP_TEXT_FIXTURE


@pytest.fixture(scope="session")
def svd_fixture_checkpoint(svd_fixture_dir: Path) -> Path:
    return svd_fixture_dir / "svd_tiny_sgm.safetensors"


@pytest.fixture(scope="session")
def fixture_svd(svd_fixture_dir: Path):
    """The parity fixture's checkpoint loaded once (float32, CPU); tests must not modify it."""
    from aid_model.svd import load_svd

    return load_svd(
        svd_fixture_dir / "svd_tiny_sgm.safetensors", unet_head_channels=16, clip_num_heads=2
    )
