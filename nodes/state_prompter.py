"""Load State Prompter: a local vision-language model (LLaVA in the paper) for Predict Future
States, as the extension's AID_VLM type (ComfyUI has no type for a VLM)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import comfy_services as services
from .errors import about_input
from .model_files import VLM_FOLDERS, missing, model_path

AID_VLM = "AID_VLM"
CATEGORY = "AID/states"
DTYPES = ["auto", "fp32", "fp16", "bf16"]
DTYPE_TOOLTIP = (
    "Weights' precision. auto: ComfyUI's choice for this device (bf16 where supported, else "
    "fp16 on a GPU; fp32 on a CPU)."
)
KEEP_LOADED_TOOLTIP = (
    "On: the model stays on the GPU after a run and ComfyUI moves it out only when another "
    "model needs the room (fast reruns). Off: it goes back to the offload device (CPU) after "
    "every node that uses it, so it and SVD are never on the GPU together."
)


@dataclass(eq=False)
class StatePrompterHandle:
    """AID_VLM: the library's ``StatePrompter`` (a vision-language model and its processor)."""

    prompter: Any  # aid_model.states.StatePrompter
    managed: services.ManagedModel
    label: str


def expect(value: Any, type_name: str, input_name: str) -> StatePrompterHandle:
    """``value`` if it is an AID_VLM, else a TypeError in ComfyUI's terms (a wrong link is
    possible through reroutes, "*" sockets or the API)."""
    if type_name == AID_VLM and isinstance(value, StatePrompterHandle):
        return value
    raise TypeError(
        f"input '{input_name}' expects an AID_VLM (output of 'Load State Prompter'), but got "
        f"a {type(value).__module__}.{type(value).__name__}; connect a 'Load State Prompter' "
        f"node to '{input_name}'"
    )


def _is_transformers_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def vlm_choices() -> list[str]:
    return sorted({name for folder in VLM_FOLDERS
                   for name in services.list_model_dirs(folder, _is_transformers_folder)})


def _dtype(name: str, device: torch.device) -> torch.dtype:
    from aid_model.pipeline import parse_dtype

    if name == "auto":
        return services.auto_dtype(device)
    with about_input("dtype", name):
        return parse_dtype(name)


class LoadStatePrompter:
    """Load State Prompter: a local vision-language model folder → AID_VLM."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vlm": (vlm_choices(), {"tooltip": (
                    "A transformers vision-language model folder (config.json, weights, "
                    "processor, chat template) from models/LLM or models/llava, e.g. "
                    "llava-onevision-qwen2-7b-ov-hf (the paper's choice), LLaVA-1.5, Qwen2-VL. "
                    "Nothing is downloaded.")}),
                "dtype": (DTYPES, {"default": "auto", "tooltip": DTYPE_TOOLTIP}),
                "keep_loaded": ("BOOLEAN", {"default": False, "tooltip": KEEP_LOADED_TOOLTIP}),
                "trust_remote_code": ("BOOLEAN", {"default": False, "tooltip": (
                    "Run Python files shipped in the model folder. Only for models transformers "
                    "has no built-in class for; leave off unless you trust the folder.")}),
            },
            "optional": {
                "max_new_tokens": ("INT", {"default": 0, "min": 0, "max": 4096, "tooltip": (
                    "Bound on each answer's length. 0: 48 + 40 per state.")}),
            },
        }

    RETURN_TYPES = (AID_VLM,)
    RETURN_NAMES = ("vlm",)
    OUTPUT_TOOLTIPS = ("The state prompter, for Predict Future States.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Loads a vision-language model (LLaVA in the paper) that writes the future states of "
        "the video from its first frame and the instruction. Greedy decoding: the same frame "
        "and instruction always give the same states."
    )

    @classmethod
    def VALIDATE_INPUTS(cls, vlm=None):
        return True if vlm is None else (
            missing(VLM_FOLDERS, vlm, "the vision-language model folder") or True)

    def load(self, vlm: str, dtype: str, keep_loaded: bool, trust_remote_code: bool,
             max_new_tokens: int = 0):
        from aid_model.states import StatePrompter

        path = model_path(VLM_FOLDERS, vlm, "vlm", "the vision-language model folder")
        with about_input("vlm", vlm):
            prompter = StatePrompter.from_pretrained(
                path,
                dtype=_dtype(dtype, services.load_device()),
                device=services.offload_device(),
                trust_remote_code=trust_remote_code,
                max_new_tokens=max_new_tokens or None,
            )
        managed = services.ManagedModel(vlm, {"vlm": prompter.model}, keep_loaded)
        return (StatePrompterHandle(prompter, managed, vlm),)
