"""Batch runs over ComfyUI's HTTP API: one CSV row, one run of an API-format workflow.

    python -m comfy_batch --server http://127.0.0.1:8188 \\
        --workflow workflows/api/aid_predict_typed_states.json --jobs jobs.csv --out runs/

Pure Python (standard library, and Pillow to check images before they are uploaded), no
ComfyUI import: it talks to a running ComfyUI.
Modules: ``jobs`` (CSV columns → workflow inputs), ``server`` (endpoints, retries),
``manifest`` (what is finished, what is queued), ``names`` (safe output names),
``runner`` (the loop). See docs/comfyui.md, "Batch runs".
"""

from comfy_batch.jobs import Job, JobsError, Target, load_workflow, read_jobs
from comfy_batch.manifest import Manifest
from comfy_batch.names import path_inside, safe_name
from comfy_batch.runner import BatchOptions, BatchReport, run_batch
from comfy_batch.server import (
    ComfyServer,
    RetryPolicy,
    ServerError,
    ServerUnavailable,
    TransportError,
)

__all__ = [
    "BatchOptions",
    "BatchReport",
    "ComfyServer",
    "Job",
    "JobsError",
    "Manifest",
    "RetryPolicy",
    "ServerError",
    "ServerUnavailable",
    "Target",
    "TransportError",
    "load_workflow",
    "path_inside",
    "read_jobs",
    "run_batch",
    "safe_name",
]
