"""AID Long Video on ComfyUI's own SVD: one segment per instruction, each continuing from the
last frames of the one before (paper Appendix B).

Each segment is what a native graph computes (AID Conditioning → AID Guider →
SamplerCustomAdvanced with KSampler's sigmas → VAE Decode → AID Keep Reference Frames),
chained as the library's ``predict_long_video``: segment i uses seed + i, its reference
frames are the last ``overlap`` frames of segment i − 1, and the joined video keeps those
frames once. ComfyUI is imported on first use, so the extension loads without it.
"""

from __future__ import annotations

from .aid_conditioning import AIDConditioning, conditioning_defaults
from .errors import InputError
from .guider import NO_RAMP, SIGMA_LIMIT, make_guider
from .guider import defaults as guider_defaults
from .keep_reference_frames import keep_reference_frames
from .native_patch import aid_attachment
from .text_inputs import blocks, lines

CATEGORY = "AID/video"
# Segment i is seeded with seed + i, which must stay a seed torch takes (below 2⁶⁴).
SEED_MAX = 2**63 - 1
# The sigmas of KSampler for this scheduler: SVD's EDM range (700 → 0.002) with Karras'
# spacing, as the library's ``karras_sigmas`` and ComfyUI's SVD workflows use.
SCHEDULER = "karras"


def sampler_names() -> list[str]:
    """KSampler's sampler names (ComfyUI's list; the library's outside ComfyUI)."""
    try:
        import comfy.samplers
    except ImportError:  # outside ComfyUI (definition tests): the library's samplers
        from aid_model.sampling import SAMPLERS

        return sorted(SAMPLERS)
    return list(comfy.samplers.KSampler.SAMPLERS)


class AIDLongVideo:
    """AID Long Video: Apply-AID'd MODEL + first reference frames + instructions (one a line)
    → IMAGE of all segments."""

    @classmethod
    def INPUT_TYPES(cls):
        guidance = guider_defaults()
        conditioning = conditioning_defaults()
        scale = {"min": 0.0, "max": 100.0, "step": 0.05, "round": 0.01}
        samplers = sampler_names()
        return {
            "required": {
                "model": ("MODEL", {"tooltip": (
                    "The SVD MODEL with AID applied (Apply AID). Its AID model fixes T, the "
                    "frames of each segment.")}),
                "clip_vision": ("CLIP_VISION", {"tooltip": (
                    "SVD's CLIP image encoder (Image Only Checkpoint Loader's CLIP_VISION).")}),
                "vae": ("VAE", {"tooltip": (
                    "SVD's VAE: encodes each segment's reference frames and decodes its "
                    "video.")}),
                "clip": ("CLIP", {"tooltip": (
                    "OpenCLIP ViT-H/14's text tower (Load CLIP, type stable_diffusion): "
                    "encodes the instructions and states.")}),
                "reference_frames": ("IMAGE", {"tooltip": (
                    "The K given frames of the first segment (a batch of K ≥ 1), in order. "
                    "Resized to cover width × height and centre-cropped.")}),
                "instructions": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    "One instruction per line, one segment each, in order, e.g. 'open the "
                    "drawer', then 'put the cup in the drawer'. Blank lines are skipped.")}),
                "overlap": ("INT", {"default": 2, "min": 1, "max": 64, "tooltip": (
                    "k: the last k frames of a segment become the next one's reference frames "
                    "(the paper uses 2); they appear once in the output. Below T.")}),
                "width": ("INT", {"default": 256, "min": 16, "max": 4096, "step": 8,
                                  "tooltip": (
                    "Video width in pixels; a multiple of the model's size factor (64 for "
                    "SVD). AID models are trained at 256.")}),
                "height": ("INT", {"default": 256, "min": 16, "max": 4096, "step": 8,
                                   "tooltip": "Video height in pixels (as width)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX,
                                 "control_after_generate": True, "tooltip": (
                    "Noise seed of the first segment; segment i uses seed + i.")}),
                "steps": ("INT", {"default": conditioning["steps"], "min": 1, "max": 10000,
                                  "tooltip": "Sampling steps of each segment."}),
                "sampler_name": (samplers, {"default": conditioning["sampler_name"],
                                            "tooltip": (
                    "ComfyUI's sampler (as KSampler's), on KSampler's karras sigmas for SVD. "
                    "euler is what the library and the paper's settings use.")}),
                "frame_scale": ("FLOAT", {"default": guidance["frame_scale"], **scale,
                                          "tooltip": (
                    "s_f, guidance towards the reference frames (eq. 8), on the last frame "
                    "(as AID Guider's).")}),
                "text_scale": ("FLOAT", {"default": guidance["text_scale"], **scale,
                                         "tooltip": (
                    "s_t, guidance towards the instruction and states (eq. 8; as AID "
                    "Guider's).")}),
            },
            "optional": {
                "states": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    "Future states: one block per instruction, blocks separated by a blank "
                    "line, one state a line. Empty: each instruction stands for its "
                    "states.")}),
                "frame_scale_first": ("FLOAT", {
                    "default": guidance["frame_scale_first"], "min": NO_RAMP, "max": 100.0,
                    "step": 0.05, "round": 0.01, "advanced": True, "tooltip": (
                        "s_f on frame 0, ramping linearly to frame_scale on the last frame "
                        "(as AID Guider's). -1: no ramp.")}),
                "sigma_min": ("FLOAT", {
                    "default": guidance["sigma_min"], "min": 0.0, "max": SIGMA_LIMIT,
                    "step": 0.001, "round": False, "advanced": True, "tooltip": (
                        "Guidance interval, lower end in σ (as AID Guider's): below it only "
                        "the positive branch runs.")}),
                "sigma_max": ("FLOAT", {
                    "default": guidance["sigma_max"], "min": 0.0, "max": SIGMA_LIMIT,
                    "step": 0.001, "round": False, "advanced": True, "tooltip": (
                        f"Guidance interval, upper end in σ (as AID Guider's). {SIGMA_LIMIT:g} "
                        "(with sigma_min 0) guides every step.")}),
                "motion_bucket_id": ("INT", {
                    "default": conditioning["motion_bucket_id"], "min": 0, "max": 1023,
                    "advanced": True, "tooltip": (
                        "SVD's motion micro-conditioning: higher, more motion.")}),
                "fps": ("INT", {"default": conditioning["fps"], "min": 1, "max": 1024,
                                "advanced": True, "tooltip": (
                    "SVD's frame-rate micro-conditioning (fps − 1).")}),
                "augmentation_level": ("FLOAT", {
                    "default": conditioning["augmentation_level"], "min": 0.0, "max": 10.0,
                    "step": 0.01, "advanced": True, "tooltip": (
                        "Noise on each segment's reference frames before encoding (std in "
                        "SVD's [−1, 1] pixel range, as AID Conditioning's).")}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The joined video: T + (N − 1)·(T − overlap) frames for N "
                       "instructions, the K given frames first.",)
    FUNCTION = "generate"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Chains AID predictions on ComfyUI's SVD: segment i follows instruction i (and its "
        "block of states), starts from the last 'overlap' frames of segment i − 1 and uses "
        "seed + i; each segment is AID Conditioning → AID Guider → sampler (KSampler's "
        "karras sigmas) → VAE Decode, with its reference frames kept. The segments are "
        "joined without repeating the overlap; progress counts the steps of all segments."
    )

    @classmethod
    def VALIDATE_INPUTS(cls, instructions=None, states=None):
        # When the prompt is queued (a linked input arrives as None and is checked at run).
        try:
            check_texts(instructions, states)
        except InputError as error:
            return str(error)
        return True

    def generate(self, model, clip_vision, vae, clip, reference_frames, instructions: str,
                 overlap: int, width: int, height: int, seed: int, steps: int,
                 sampler_name: str, frame_scale: float, text_scale: float, states: str = "",
                 frame_scale_first: float | None = None, sigma_min: float | None = None,
                 sigma_max: float | None = None, motion_bucket_id: int | None = None,
                 fps: int | None = None, augmentation_level: float | None = None):
        import comfy.model_management
        import comfy.sample
        import comfy.samplers
        import torch

        # 1. Inputs, checked before any model runs. An API prompt may leave the advanced
        # inputs out: they take the node's defaults.
        guidance, conditioning = guider_defaults(), conditioning_defaults()
        frame_scale_first = _given(frame_scale_first, guidance["frame_scale_first"])
        sigma_min = _given(sigma_min, guidance["sigma_min"])
        sigma_max = _given(sigma_max, guidance["sigma_max"])
        motion_bucket_id = _given(motion_bucket_id, conditioning["motion_bucket_id"])
        fps = _given(fps, conditioning["fps"])
        augmentation_level = _given(augmentation_level, conditioning["augmentation_level"])
        segments, state_blocks = check_texts(instructions, states)
        frames = aid_attachment(model).config.num_frames
        given = reference_frames.shape[0]
        if not 1 <= given < frames:
            raise InputError("reference_frames", f"{given} frames", (
                f"this AID model predicts T = {frames} frames a segment, the K given ones "
                f"included, so K must be below {frames}; give at most {frames - 1} reference "
                "frames"))
        if not overlap < frames:
            raise InputError("overlap", overlap, (
                f"each segment has T = {frames} frames (this AID model's), and at least one "
                f"must be new; set overlap below {frames} (the paper uses 2)"))
        if sampler_name not in comfy.samplers.KSampler.SAMPLERS:
            raise InputError("sampler_name", sampler_name, "choose one of KSampler's samplers, "
                             "e.g. euler")
        sigmas = comfy.samplers.KSampler(model, steps, "cpu", sampler_name, SCHEDULER).sigmas
        sampler = comfy.samplers.sampler_object(sampler_name)
        progress = SegmentProgress(model, (len(sigmas) - 1) * len(segments))

        # 2. The segments, each from the last frames of the one before.
        pieces = []
        references = reference_frames
        for index, instruction in enumerate(segments):
            comfy.model_management.throw_exception_if_processing_interrupted()
            segment_seed = seed + index
            # AID Conditioning draws the augmentation noise from ComfyUI's global generator;
            # seeded here, it draws what the library's per-segment generator draws first.
            torch.manual_seed(segment_seed)
            positive, frame_only, negative, latent = AIDConditioning().encode(
                model, clip_vision, vae, clip, references, instruction, width, height, frames,
                motion_bucket_id, fps, augmentation_level,
                "\n".join(state_blocks[index]) if state_blocks else "")
            guider = make_guider(model, positive, frame_only, negative, frame_scale,
                                 text_scale, frame_scale_first, sigma_min, sigma_max)
            empty = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
            noise = segment_noise(segment_seed, (references.shape[0], 3, height, width),
                                  empty.shape)
            samples = guider.sample(noise, empty, sampler, sigmas,
                                    callback=progress.segment(index), disable_pbar=True,
                                    seed=segment_seed)
            video = vae.decode(samples.to(comfy.model_management.intermediate_device()))
            (video,) = keep_reference_frames(video, references, frames)
            pieces.append(video if index == 0 else video[overlap:])
            references = video[-overlap:]
        comfy.model_management.throw_exception_if_processing_interrupted()
        return (torch.cat(pieces).to(comfy.model_management.intermediate_device()),)


def check_texts(instructions: str | None, states: str | None
                ) -> tuple[list[str], list[list[str]]]:
    """(one instruction per segment, its block of states or [] for none); InputError naming
    the input otherwise. None (a linked input, not known yet) passes."""
    segments = lines(instructions) if instructions is not None else None
    if segments is not None and not segments:
        raise InputError("instructions", instructions or "", (
            "type at least one instruction, one per line: each line is one segment of the "
            "video"))
    state_blocks = blocks(states) if states is not None else []
    if segments is not None and state_blocks and len(state_blocks) != len(segments):
        raise InputError("states", f"{len(state_blocks)} blocks", (
            f"there are {len(segments)} instructions, so give {len(segments)} blocks of "
            "states separated by blank lines, one per instruction (or leave 'states' "
            "empty)"))
    return segments or [], state_blocks


def segment_noise(seed: int, reference_shape: tuple[int, ...], latent_shape):
    """The initial latent noise (T, C, h, w) of a segment, as the library draws it.

    The library's generator, seeded with the segment's seed, draws the augmentation noise
    of the K reference frames (``reference_shape``, (K, 3, H, W)) and then the initial
    noise; the first draw is AID Conditioning's, replayed here so that the video equals
    ``predict_long_video``'s whatever else used ComfyUI's global generator in between.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    torch.randn(reference_shape, generator=generator)
    return torch.randn(tuple(latent_shape), generator=generator)


class SegmentProgress:
    """ComfyUI's progress bar over the steps of every segment, with a preview of the last
    frame, and the interrupt check between steps."""

    def __init__(self, model, total: int):
        import comfy.utils
        import latent_preview

        self.total = total
        self.done = 0
        self.bar = comfy.utils.ProgressBar(total)
        self.previewer = latent_preview.get_previewer(model.load_device,
                                                      model.model.latent_format)

    def segment(self, index: int):
        """The sampler callback of segment ``index`` (its steps follow the earlier ones')."""
        import comfy.model_management

        start = self.done

        def callback(step, denoised, x, total_steps):
            comfy.model_management.throw_exception_if_processing_interrupted()
            self.done = start + step + 1
            preview = None
            if self.previewer is not None:
                # The last frame shows whether the instruction is being carried out.
                preview = self.previewer.decode_latent_to_preview_image("JPEG", denoised[-1:])
            self.bar.update_absolute(self.done, self.total, preview)

        return callback


def _given(value, default):
    return default if value is None else value
