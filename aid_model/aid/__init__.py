"""AID on SVD: adapters, DQFormer, per-frame MCondition, AID weight files.

Where does the instruction enter the UNet? ``mcondition_attention.py``.
"""

from aid_model.aid.adapters import (
    LongTermTemporalAdapter,
    ShortTermTemporalAdapter,
    SpatialAdapter,
)
from aid_model.aid.config import AIDConfig
from aid_model.aid.dqformer import DQFormer
from aid_model.aid.image_context import clip_image_context
from aid_model.aid.mcondition_attention import MConditionAttnProcessor
from aid_model.aid.model import (
    AIDModel,
    AIDUNet,
    ParameterCounts,
    aid_parameters,
    attach_aid,
    count_parameters,
    has_aid_attached,
    parameter_groups,
    trainable_parameters,
)
from aid_model.aid.reference import reference_concat_latents
from aid_model.aid.weights import (
    AIDWeightsError,
    attach_aid_from_file,
    load_aid_weights,
    read_aid_config,
    save_aid_weights,
)

__all__ = [
    "AIDConfig",
    "AIDModel",
    "AIDUNet",
    "AIDWeightsError",
    "DQFormer",
    "LongTermTemporalAdapter",
    "MConditionAttnProcessor",
    "ParameterCounts",
    "ShortTermTemporalAdapter",
    "SpatialAdapter",
    "aid_parameters",
    "attach_aid",
    "attach_aid_from_file",
    "clip_image_context",
    "count_parameters",
    "has_aid_attached",
    "load_aid_weights",
    "parameter_groups",
    "read_aid_config",
    "reference_concat_latents",
    "save_aid_weights",
    "trainable_parameters",
]
