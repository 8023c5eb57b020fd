"""The user-facing job: predict a video from reference frames and an instruction.

Names resolve lazily (PEP 562) so that ``aid_model.pipeline.options`` — read by every CLI
start — does not import diffusers.
"""

from __future__ import annotations

from aid_model.lazy_exports import lazy_exports

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

__getattr__, __dir__ = lazy_exports("aid_model.pipeline", _EXPORTS, globals())
