"""The user-facing job: predict a video from reference frames and an instruction."""

from aid_model.pipeline.loading import load_pipeline, parse_dtype
from aid_model.pipeline.long_video import predict_long_video
from aid_model.pipeline.options import PredictionOptions
from aid_model.pipeline.pipeline import (
    AIDPipeline,
    PredictionRequest,
    SemanticConditions,
    keep_reference_frames,
)

__all__ = [
    "AIDPipeline",
    "PredictionOptions",
    "PredictionRequest",
    "SemanticConditions",
    "keep_reference_frames",
    "load_pipeline",
    "parse_dtype",
    "predict_long_video",
]
