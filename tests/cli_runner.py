"""Running ``python -m aid_model ...`` as a user would: a fresh process, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_aid_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m aid_model ARGS`` from the repository root, with the hub turned off;
    returns the finished process (stdout and stderr captured as text)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "aid_model", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
