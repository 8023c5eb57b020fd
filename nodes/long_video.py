"""AID Long Video: one segment per instruction, each continuing from the last frames of the
one before (paper Appendix B)."""

from __future__ import annotations

from contextlib import ExitStack

from . import comfy_services as services
from .conditioning import SIZE_TOOLTIP, image_frames
from .errors import InputError
from .handles import AID_MODEL, AID_TEXT_ENCODER, check_text_encoder, expect
from .sampling import prediction_options, resolve_frames, sampling_inputs
from .text_inputs import blocks, lines

# Long videos seed segment i with seed + i, which must stay a valid 64-bit seed.
LONG_SEED_MAX = 2**63 - 1


class AIDLongVideo:
    """AID Long Video: reference frames + instructions (one a line) → IMAGE of all segments."""

    @classmethod
    def INPUT_TYPES(cls):
        required, optional = sampling_inputs(LONG_SEED_MAX)
        return {
            "required": {
                "model": (AID_MODEL, {"tooltip": "The model from 'Load AID Model'."}),
                "reference_frames": ("IMAGE", {"tooltip": (
                    "The K given frames of the first segment, in order.")}),
                "instructions": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    "One instruction per line, one segment each, in order.")}),
                "states": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    "Optional future states: one block per instruction, blocks separated by a "
                    "blank line, one state a line. Empty: each instruction alone.")}),
                "overlap": ("INT", {"default": 2, "min": 1, "max": 64, "tooltip": (
                    "Frames carried from one segment to the next as its reference frames (the "
                    "paper uses 2); they appear once in the output.")}),
                "width": ("INT", {"default": 256, "min": 16, "max": 4096, "step": 16,
                                  "tooltip": SIZE_TOOLTIP.format("Width")}),
                "height": ("INT", {"default": 256, "min": 16, "max": 4096, "step": 16,
                                   "tooltip": SIZE_TOOLTIP.format("Height")}),
                **required,
                "decode_chunk_size": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip": (
                    "Frames per temporal VAE decode call (smaller uses less memory).")}),
            },
            "optional": {
                "text_encoder": (AID_TEXT_ENCODER, {"tooltip": (
                    "The text encoder from 'Load AID Text Encoder'; required with AID weights.")}),
                **optional,
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The joined video: T + (N − 1)·(T − overlap) frames for N "
                       "instructions.",)
    FUNCTION = "generate"
    CATEGORY = "AID"
    DESCRIPTION = (
        "Chains predictions: segment i > 0 starts from the last 'overlap' frames of segment "
        "i − 1, follows instruction i and uses seed + i; segments are joined without repeating "
        "the overlap. Progress counts the steps of all segments."
    )

    def generate(self, model, reference_frames, instructions: str, states: str, overlap: int,
                 width: int, height: int, seed: int, steps: int, sampler: str,
                 frame_scale: float, text_scale: float, frames: int, fps: int,
                 motion_bucket_id: int, cond_aug: float, decode_chunk_size: int,
                 text_encoder=None, frame_scale_first: float = -1.0,
                 guidance_sigma_low: float = 0.0, guidance_sigma_high: float = 1000.0):
        from aid_model.pipeline import predict_long_video

        handle = expect(model, AID_MODEL, "model")
        encoder = None if text_encoder is None else expect(
            text_encoder, AID_TEXT_ENCODER, "text_encoder")
        check_text_encoder(handle, encoder)
        segments = lines(instructions)
        if not segments:
            raise InputError("instructions", instructions,
                             "type at least one instruction (one per line, one per segment)")
        state_blocks = blocks(states)
        if state_blocks and len(state_blocks) != len(segments):
            raise InputError("states", f"{len(state_blocks)} blocks", (
                f"there are {len(segments)} instructions, so give {len(segments)} blocks of "
                "states separated by blank lines (or leave 'states' empty)"))
        frames_in = image_frames(reference_frames, "reference_frames")
        pipeline = handle.pipeline(encoder if handle.aid is not None else None)
        options = prediction_options(
            height, width, seed, steps, sampler, frame_scale, text_scale, frames, fps,
            motion_bucket_id, cond_aug, frame_scale_first, guidance_sigma_low,
            guidance_sigma_high, decode_chunk_size)
        options = resolve_frames(pipeline, options, frames, [len(frames_in), overlap],
                                 "reference_frames (or 'overlap')")
        services.throw_if_interrupted()
        progress = services.StepProgress(steps * len(segments))
        with ExitStack() as stack:
            stack.enter_context(handle.managed.loaded())
            if handle.aid is not None:
                stack.enter_context(encoder.managed.loaded())
            video = predict_long_video(pipeline, frames_in, segments, overlap,
                                       state_blocks or None, options, progress)
        return (video.float().to(services.intermediate_device()),)
