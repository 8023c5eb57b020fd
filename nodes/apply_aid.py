"""Apply AID: AID's adapters, MCondition attention and DQFormer on ComfyUI's own SVD MODEL."""

from __future__ import annotations

from .comfy_services import list_weight_files
from .model_files import AID_FOLDERS, missing, model_path
from .native_patch import apply_aid, check_svd_model

CATEGORY = "AID/model"


def aid_weight_choices() -> list[str]:
    return list_weight_files("aid")


class ApplyAID:
    """Apply AID: SVD MODEL + AID weight file → the MODEL with AID attached (a clone)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": (
                    "A Stable Video Diffusion image-to-video MODEL, e.g. from Image Only "
                    "Checkpoint Loader (svd.safetensors, svd_xt.safetensors) or Load AID Demo "
                    "Model. It is not changed: AID goes on a clone.")}),
                "aid_weights": (aid_weight_choices(), {"tooltip": (
                    "AID weights (.safetensors) from models/aid, written by training "
                    "(docs/training.md) for this SVD variant; checked against the MODEL.")}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05,
                                       "advanced": True, "tooltip": (
                    "How much of AID acts: 1 as trained, 0 plain SVD (the instruction is then "
                    "ignored). Scales the trained cross-attention change, the adapters and "
                    "the MCondition branch alike.")}),
            },
        }

    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The SVD MODEL with AID attached: for AID Conditioning and ComfyUI's "
                       "samplers (SamplerCustomAdvanced with DualCFGGuider).",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Attaches AID to ComfyUI's own SVD model through its model patcher: the trained "
        "spatial cross-attention as weight patches, the spatial and temporal adapters and "
        "the MCondition cross-attention as hooks that come and go with the patched model, "
        "and the DQFormer for AID Conditioning. No second copy of SVD is loaded; ComfyUI "
        "loads, offloads and casts AID's modules with the UNet."
    )

    @classmethod
    def VALIDATE_INPUTS(cls, aid_weights=None):
        if aid_weights is None:
            return True
        problem = missing(AID_FOLDERS, aid_weights, "the AID weights")
        return f"aid_weights: {problem}" if problem else True

    def apply(self, model, aid_weights: str, strength: float):
        from aid_model.aid.weight_file import AIDWeightsError, read_aid_file

        check_svd_model(model)  # before reading a file that may be large
        path = model_path(AID_FOLDERS, aid_weights, "aid_weights", "the AID weights")
        try:
            aid_file = read_aid_file(path)
            return (apply_aid(model, aid_file, strength, aid_weights),)
        except AIDWeightsError as error:
            raise ValueError(f"aid_weights: {error}") from error
