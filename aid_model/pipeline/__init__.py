"""The user-facing job: predict a video from reference frames and an instruction.

Names resolve lazily (PEP 562) so that ``aid_model.pipeline.options`` — read by every CLI
start — does not import diffusers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AIDPipeline": "aid_model.pipeline.pipeline",
    "PredictionRequest": "aid_model.pipeline.pipeline",
    "SemanticConditions": "aid_model.pipeline.pipeline",
    "keep_reference_frames": "aid_model.pipeline.pipeline",
    "PredictionOptions": "aid_model.pipeline.options",
    "concat_conditions": "aid_model.pipeline.batching",
    "load_pipeline": "aid_model.pipeline.loading",
    "parse_dtype": "aid_model.pipeline.loading",
    "predict_long_video": "aid_model.pipeline.long_video",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aid_model.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
