"""Build MCondition (DQFormer) and Batch AID Conditioning: the seed-free part of a prediction."""

from __future__ import annotations

from contextlib import ExitStack

from . import comfy_services as services
from .errors import InputError, about_input
from .handles import (
    AID_CONDITIONING,
    AID_MODEL,
    AID_TEXT_ENCODER,
    AIDConditioning,
    check_text_encoder,
    expect,
)
from .text_inputs import lines

SIZE_TOOLTIP = (
    "{} of the video in pixels. Reference frames are scaled to cover it and centre-cropped. "
    "A multiple of 64 for SVD (the model's size factor); AID was trained at 256×256."
)


def image_frames(image, input_name: str) -> list:
    """ComfyUI IMAGE (K, H, W, C) → K frames (C, H, W) as the library takes them."""
    if getattr(image, "ndim", 0) != 4 or image.shape[0] < 1 or image.shape[-1] not in (1, 3, 4):
        shape = tuple(getattr(image, "shape", ()))
        raise InputError(input_name, shape, "expected an IMAGE batch (K, H, W, 3)")
    return [frame.permute(2, 0, 1) for frame in image]


class BuildMCondition:
    """Build MCondition (DQFormer): reference frames + instruction + states → AID_CONDITIONING."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (AID_MODEL, {"tooltip": "The model from 'Load AID Model'."}),
                "reference_frames": ("IMAGE", {"tooltip": (
                    "The K given frames of the video, in order (an IMAGE batch: 1 frame from "
                    "Load Image, or several joined with Batch Images). They stay frames 0..K-1 "
                    "of the output.")}),
                "instruction": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    "What should happen, e.g. 'put the corn in the pot'. Empty: no text "
                    "guidance (the sampler's text_scale is then ignored).")}),
                "states": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    "Future states of the video, one a line (from Predict Future States, or "
                    "typed). Fitted to the model's S (evenly spread or repeated). Empty: the "
                    "instruction alone.")}),
                "width": ("INT", {"default": 256, "min": 16, "max": 4096, "step": 16,
                                  "tooltip": SIZE_TOOLTIP.format("Width")}),
                "height": ("INT", {"default": 256, "min": 16, "max": 4096, "step": 16,
                                   "tooltip": SIZE_TOOLTIP.format("Height")}),
            },
            "optional": {
                "text_encoder": (AID_TEXT_ENCODER, {"tooltip": (
                    "The text encoder from 'Load AID Text Encoder'; required when the model has "
                    "AID weights, unused for plain SVD.")}),
            },
        }

    RETURN_TYPES = (AID_CONDITIONING,)
    RETURN_NAMES = ("conditioning",)
    OUTPUT_TOOLTIPS = ("Per-video conditions for the Dual-CFG EDM Sampler: reference frames, "
                       "CLIP image token, MCondition of the instruction and of the null text.",)
    FUNCTION = "build"
    CATEGORY = "AID"
    DESCRIPTION = (
        "Encodes one video's conditions, which do not depend on the seed: the CLIP image "
        "embedding of the first frame, and (with AID weights) the DQFormer's MCondition from the "
        "instruction (e_t), the states (e_s) and the first frame (e_v), plus the MCondition of "
        "the empty text for dual classifier-free guidance."
    )

    def build(self, model, reference_frames, instruction: str, states: str, width: int,
              height: int, text_encoder=None):
        from aid_model.pipeline import PredictionOptions, PredictionRequest

        handle = expect(model, AID_MODEL, "model")
        encoder = None if text_encoder is None else expect(
            text_encoder, AID_TEXT_ENCODER, "text_encoder")
        check_text_encoder(handle, encoder)
        frames = image_frames(reference_frames, "reference_frames")
        pipeline = handle.pipeline(encoder if handle.aid is not None else None)
        # Sizes are checked here, before any encoding, with the library's own rule (the
        # number of frames is the sampler's business: K + 1 always passes).
        with about_input("width/height", (width, height)):
            PredictionOptions(num_frames=len(frames) + 1, height=height, width=width).validate(
                len(frames), pipeline.size_multiple)
        request = PredictionRequest(frames, instruction, lines(states) or None)
        services.throw_if_interrupted()
        with ExitStack() as stack:
            stack.enter_context(handle.managed.loaded())
            if handle.aid is not None:  # plain SVD never reads the text
                stack.enter_context(encoder.managed.loaded())
            conditions = pipeline.encode_conditions([request], height, width)
        return (AIDConditioning(handle, encoder, conditions, height, width, [instruction]),)


class BatchAIDConditioning:
    """Batch AID Conditioning: two AID_CONDITIONING → one batch (one sampling run)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "conditioning_1": (AID_CONDITIONING, {"tooltip": "The first video(s)."}),
                "conditioning_2": (AID_CONDITIONING, {"tooltip": (
                    "The video(s) to append; same model and same width/height.")}),
            },
        }

    RETURN_TYPES = (AID_CONDITIONING,)
    RETURN_NAMES = ("conditioning",)
    OUTPUT_TOOLTIPS = ("Both batches in one: the sampler makes all the videos in one batched "
                       "run, each with the same seed, so only the conditions differ.",)
    FUNCTION = "batch"
    CATEGORY = "AID"
    DESCRIPTION = (
        "Joins conditions into one batch, e.g. one frame with several instructions "
        "(manipulation): chain one of these per extra instruction. AID Decode returns the "
        "videos one after the other."
    )

    def batch(self, conditioning_1, conditioning_2):
        from aid_model.pipeline.batching import concat_conditions

        first = expect(conditioning_1, AID_CONDITIONING, "conditioning_1")
        second = expect(conditioning_2, AID_CONDITIONING, "conditioning_2")
        if second.model is not first.model:
            raise InputError("conditioning_2", second.model.label, (
                f"built with another model than conditioning_1 ({first.model.label}); connect "
                "the same 'Load AID Model' to every Build MCondition of a batch"))
        with about_input("conditioning_2", f"{second.width}×{second.height}"):
            conditions = concat_conditions([first.conditions, second.conditions])
        return (AIDConditioning(first.model, first.text_encoder or second.text_encoder,
                                conditions, first.height, first.width,
                                first.instructions + second.instructions),)

