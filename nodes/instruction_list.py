"""AID Instruction List: several instructions, one a line, as a list that runs the nodes after
it once per instruction (manipulation: one frame, several futures).

ComfyUI's SVD reads a LATENT batch as the frames of one video, so several videos cannot share
one batch. A list output (``OUTPUT_IS_LIST``) is ComfyUI's way to repeat a graph: every node
downstream runs once per item (inputs that are not lists are reused), and each save node
writes one video per instruction.
"""

from __future__ import annotations

from .errors import InputError
from .text_inputs import lines

CATEGORY = "AID/conditioning"


class AIDInstructionList:
    """AID Instruction List: multi-line text → a STRING list, one instruction per item."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "instructions": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    "One instruction a line, e.g. 'push the blue ball to the left'. Blank "
                    "lines are skipped.")}),
            },
        }

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("instruction",)
    OUTPUT_IS_LIST = (True,)
    OUTPUT_TOOLTIPS = ("The instructions as a list: AID Conditioning and every node after it "
                       "run once per instruction, one video each.",)
    FUNCTION = "split"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Splits instructions (one a line) into a list, so that one first frame gives one "
        "video per instruction: AID Conditioning, the guider, the sampler, VAE Decode and the "
        "save node after it run once per instruction (ComfyUI's list execution), with the "
        "same noise seed, so the videos differ only by their instruction."
    )

    def split(self, instructions: str):
        found = lines(instructions)
        if not found:
            raise InputError("instructions", instructions,
                             "type at least one instruction, one a line")
        return (found,)
