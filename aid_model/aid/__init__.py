"""AID on SVD: adapters, DQFormer, per-frame MCondition, AID weight files.

Where does the instruction enter the UNet? ``mcondition_attention.py``.

Names resolve lazily (PEP 562): the host-agnostic modules (``config``, ``adapters``,
``mcondition_attention``, ``dqformer``, ``weight_file``, ``parts``) import no diffusers, so
a host other than the library (the ComfyUI nodes) does not pay for it.
"""

from __future__ import annotations

from aid_model.lazy_exports import lazy_exports

_EXPORTS = {
    "LongTermTemporalAdapter": "aid_model.aid.adapters",
    "ShortTermTemporalAdapter": "aid_model.aid.adapters",
    "SpatialAdapter": "aid_model.aid.adapters",
    "AIDConfig": "aid_model.aid.config",
    "DQFormer": "aid_model.aid.dqformer",
    "clip_image_context": "aid_model.aid.image_context",
    "MConditionAttnProcessor": "aid_model.aid.mcondition_attention",
    "MConditionBranch": "aid_model.aid.mcondition_attention",
    "AIDModel": "aid_model.aid.model",
    "AIDUNet": "aid_model.aid.model",
    "ParameterCounts": "aid_model.aid.model",
    "aid_parameters": "aid_model.aid.model",
    "attach_aid": "aid_model.aid.model",
    "count_parameters": "aid_model.aid.model",
    "has_aid_attached": "aid_model.aid.model",
    "parameter_groups": "aid_model.aid.model",
    "trainable_parameters": "aid_model.aid.model",
    "AIDParts": "aid_model.aid.parts",
    "reference_concat_latents": "aid_model.aid.reference",
    "AIDFile": "aid_model.aid.weight_file",
    "AIDWeightsError": "aid_model.aid.weight_file",
    "read_aid_config": "aid_model.aid.weight_file",
    "read_aid_file": "aid_model.aid.weight_file",
    "attach_aid_from_file": "aid_model.aid.weights",
    "load_aid_weights": "aid_model.aid.weights",
    "save_aid_weights": "aid_model.aid.weights",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("aid_model.aid", _EXPORTS, globals())
