"""Thin ComfyUI layer: one class per node, on ComfyUI's own types wherever one fits.

Apply AID patches ComfyUI's own SVD MODEL; AID Conditioning, AID Guider and AID Long Video
take and give ComfyUI's MODEL, CLIP_VISION, VAE, CLIP, CONDITIONING, GUIDER, LATENT and
IMAGE. The one type of the extension is AID_VLM (Load State Prompter → Predict Future
States). ComfyUI reads ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` from the
extension's root ``__init__.py``, which re-exports these. Modules here import each other
relatively (ComfyUI has its own top-level ``nodes`` module) and import ComfyUI and
``aid_model`` inside the node functions, so ComfyUI starts without loading diffusers.
"""

from .aid_conditioning import AIDConditioning
from .apply_aid import ApplyAID
from .comfy_services import register_model_folders
from .demo_model import AIDDemoModel
from .demo_scene import AIDDemoScene
from .example_frames import AIDExampleFrame
from .guider import AIDGuider
from .instruction_list import AIDInstructionList
from .keep_reference_frames import AIDKeepReferenceFrames
from .long_video import AIDLongVideo
from .state_prompter import LoadStatePrompter
from .states import PredictFutureStates

NODE_CLASS_MAPPINGS: dict[str, type] = {
    "AIDDemoModel": AIDDemoModel,
    "AIDDemoScene": AIDDemoScene,
    "AIDApply": ApplyAID,
    "AIDExampleFrame": AIDExampleFrame,
    "AIDInstructionList": AIDInstructionList,
    "AIDConditioning": AIDConditioning,
    "AIDGuider": AIDGuider,
    "AIDKeepReferenceFrames": AIDKeepReferenceFrames,
    "AIDLongVideo": AIDLongVideo,
    "AIDLoadStatePrompter": LoadStatePrompter,
    "AIDPredictFutureStates": PredictFutureStates,
}

NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {
    "AIDDemoModel": "Load AID Demo Model",
    "AIDDemoScene": "AID Demo Scene",
    "AIDApply": "Apply AID",
    "AIDExampleFrame": "AID Example Frame",
    "AIDInstructionList": "AID Instruction List",
    "AIDConditioning": "AID Conditioning",
    "AIDGuider": "AID Guider",
    "AIDKeepReferenceFrames": "AID Keep Reference Frames",
    "AIDLongVideo": "AID Long Video",
    "AIDLoadStatePrompter": "Load State Prompter",
    "AIDPredictFutureStates": "Predict Future States",
}

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
