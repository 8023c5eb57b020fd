"""Predict Future States: the VLM writes S states of the video, one a line (paper §3.3)."""

from __future__ import annotations

from .errors import InputError, about_input
from .state_prompter import AID_VLM, expect


class PredictFutureStates:
    """Predict Future States: (image, instruction) → STRING of S states, one a line."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vlm": (AID_VLM, {"tooltip": "The model from 'Load State Prompter'."}),
                "image": ("IMAGE", {"tooltip": (
                    "The first frame of the video (the first image of a batch is used).")}),
                "instruction": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    "What happens in the video, e.g. 'put the corn in the pot'.")}),
                "num_states": ("INT", {"default": 4, "min": 1, "max": 16, "tooltip": (
                    "S, the number of states to write (the paper uses 4: the start, two "
                    "intermediate moments, the end). AID Conditioning fits any count to the "
                    "AID model's own S.")}),
            },
        }

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("states",)
    OUTPUT_TOOLTIPS = ("S states in video order, one a line; connect to AID Conditioning's "
                       "'states', or copy, edit and type them there.",)
    FUNCTION = "predict"
    CATEGORY = "AID/states"
    DESCRIPTION = (
        "Asks the vision-language model what the scene looks like at S moments of the video, "
        "from the first frame and the instruction. Answers it cannot parse fall back to the "
        "instruction (with a warning in the console). Unless Load State Prompter's "
        "keep_loaded is on, the model is unloaded after answering (the CUDA cache emptied), so "
        "it and SVD are never on the GPU together."
    )

    def predict(self, vlm, image, instruction: str, num_states: int):
        handle = expect(vlm, AID_VLM, "vlm")
        if image.ndim != 4 or image.shape[0] < 1:
            raise InputError("image", tuple(image.shape), "expected an IMAGE batch (N, H, W, 3)")
        if not instruction.strip():
            raise InputError("instruction", instruction, "the VLM needs an instruction to "
                             "predict the states of; type what should happen")
        with handle.managed.loaded(), about_input("vlm", handle.label):
            states = handle.prompter.predict_states(image[0], instruction, num_states)[0]
        return ("\n".join(states),)
