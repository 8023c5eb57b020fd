"""Thin ComfyUI layer: one class per node, each calling one ``aid_model`` function.

ComfyUI reads ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` from the
extension's root ``__init__.py``, which re-exports these. Modules here import each other
relatively (ComfyUI has its own top-level ``nodes`` module) and import ``aid_model`` inside
the node functions, so ComfyUI starts without loading diffusers.
"""

from .aid_conditioning import AIDConditioning
from .apply_aid import ApplyAID
from .comfy_services import register_model_folders
from .conditioning import BatchAIDConditioning, BuildMCondition
from .demo_model import AIDDemoModel
from .demo_scene import AIDDemoScene
from .example_frames import AIDExampleFrame
from .guider import AIDGuider
from .instruction_list import AIDInstructionList
from .keep_reference_frames import AIDKeepReferenceFrames
from .loaders import LoadAIDDemoModel, LoadAIDModel, LoadAIDTextEncoder, LoadStatePrompter
from .long_video import AIDLongVideo
from .sampling import AIDDecode, DualCFGSampler
from .states import PredictFutureStates

NODE_CLASS_MAPPINGS: dict[str, type] = {
    "AIDLoadModel": LoadAIDModel,
    "AIDLoadTextEncoder": LoadAIDTextEncoder,
    "AIDLoadStatePrompter": LoadStatePrompter,
    "AIDPredictFutureStates": PredictFutureStates,
    "AIDBuildMCondition": BuildMCondition,
    "AIDBatchConditioning": BatchAIDConditioning,
    "AIDSampler": DualCFGSampler,
    "AIDDecode": AIDDecode,
    "AIDLongVideo": AIDLongVideo,
    "AIDLoadDemoModel": LoadAIDDemoModel,
    "AIDDemoModel": AIDDemoModel,
    "AIDDemoScene": AIDDemoScene,
    "AIDGuider": AIDGuider,
    "AIDApply": ApplyAID,
    "AIDConditioning": AIDConditioning,
    "AIDExampleFrame": AIDExampleFrame,
    "AIDInstructionList": AIDInstructionList,
    "AIDKeepReferenceFrames": AIDKeepReferenceFrames,
}

NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {
    "AIDLoadModel": "Load AID Model",
    "AIDLoadTextEncoder": "Load AID Text Encoder",
    "AIDLoadStatePrompter": "Load State Prompter",
    "AIDPredictFutureStates": "Predict Future States",
    "AIDBuildMCondition": "Build MCondition (DQFormer)",
    "AIDBatchConditioning": "Batch AID Conditioning",
    "AIDSampler": "Dual-CFG EDM Sampler",
    "AIDDecode": "AID Decode",
    "AIDLongVideo": "AID Long Video",
    "AIDLoadDemoModel": "Load AID Demo Model (AID_MODEL, old)",
    "AIDDemoModel": "Load AID Demo Model",
    "AIDDemoScene": "AID Demo Scene",
    "AIDGuider": "AID Guider",
    "AIDApply": "Apply AID",
    "AIDConditioning": "AID Conditioning",
    "AIDExampleFrame": "AID Example Frame",
    "AIDInstructionList": "AID Instruction List",
    "AIDKeepReferenceFrames": "AID Keep Reference Frames",
}

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
