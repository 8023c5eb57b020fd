"""Dual-CFG EDM Sampler and AID Decode: conditions → video latents → frames."""

from __future__ import annotations

import torch

from . import comfy_services as services
from .errors import InputError, about_input
from .handles import AID_CONDITIONING, AID_MODEL, expect

SEED_MAX = 0xFFFFFFFFFFFFFFFF
# Where the LATENT dict keeps what decoding needs beyond ComfyUI's "samples".
VIDEO_KEY = "aid_video"


def sampler_names() -> list[str]:
    from aid_model.sampling import SAMPLERS

    return sorted(SAMPLERS)


def sampling_inputs(seed_max: int = SEED_MAX) -> tuple[dict, dict]:
    """(required, optional) inputs shared by the sampler and AID Long Video."""
    from aid_model.pipeline.options import PredictionOptions

    defaults = PredictionOptions()

    required = {
        "seed": ("INT", {"default": 0, "min": 0, "max": seed_max, "control_after_generate": True,
                         "tooltip": ("Noise seed. Every video of a batch uses it, so a batch "
                                     "differs only by its conditions.")}),
        "steps": ("INT", {"default": 25, "min": 1, "max": 1000, "tooltip": (
            "EDM sampling steps on the Karras schedule (σ 700 → 0.002).")}),
        "sampler": (sampler_names(), {"default": "euler", "tooltip": (
            "euler (SVD's default), heun (2 evaluations a step) or dpmpp_2m.")}),
        "frame_scale": ("FLOAT", {"default": defaults.frame_scale, "min": 0.0, "max": 30.0,
                                  "step": 0.05, "round": 0.01, "tooltip": (
            "s_f, guidance towards the reference frames (paper eq. 8). 1 = none.")}),
        "text_scale": ("FLOAT", {"default": defaults.text_scale, "min": 0.0, "max": 30.0,
                                 "step": 0.05, "round": 0.01, "tooltip": (
            "s_t, guidance towards the instruction and states (paper eq. 8). 0 = plain SVD "
            "guidance (2 UNet evaluations a step instead of 3).")}),
        "frames": ("INT", {"default": 0, "min": 0, "max": 256, "tooltip": (
            "T, frames of the video including the K given ones. 0: the model's own (an AID "
            "model's T is fixed by its weights; plain SVD: 14). Must exceed K.")}),
        "fps": ("INT", {"default": 7, "min": 1, "max": 120, "tooltip": (
            "SVD's frame-rate conditioning (it embeds fps - 1); 7 as in SVD's training.")}),
        "motion_bucket_id": ("INT", {"default": 127, "min": 0, "max": 1023, "tooltip": (
            "SVD's motion conditioning: higher asks for more motion.")}),
        "cond_aug": ("FLOAT", {"default": 0.02, "min": 0.0, "max": 10.0, "step": 0.01,
                               "tooltip": ("Noise added to the reference frames before "
                                           "encoding (SVD's conditioning augmentation).")}),
    }
    optional = {
        "frame_scale_first": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 30.0, "step": 0.05,
                                        "round": 0.01, "tooltip": (
            "s_f on frame 0, ramping linearly to frame_scale on the last frame (SVD's linear "
            "guidance). Negative: no ramp.")}),
        "guidance_sigma_low": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1000.0,
                                         "step": 0.01, "tooltip": (
            "Guidance interval, lower σ: below it only the fully conditional branch runs (one "
            "UNet evaluation a step).")}),
        "guidance_sigma_high": ("FLOAT", {"default": 1000.0, "min": 0.0, "max": 1000.0,
                                          "step": 0.01, "tooltip": (
            "Guidance interval, upper σ (the schedule starts at 700, so 1000 guides every "
            "step).")}),
    }
    return required, optional


def prediction_options(height: int, width: int, seed: int, steps: int, sampler: str,
                       frame_scale: float, text_scale: float, frames: int, fps: int,
                       motion_bucket_id: int, cond_aug: float, frame_scale_first: float = -1.0,
                       guidance_sigma_low: float = 0.0, guidance_sigma_high: float = 1000.0,
                       decode_chunk_size: int | None = 8):
    """The sampling inputs as the library's ``PredictionOptions``."""
    from aid_model.pipeline import PredictionOptions

    if guidance_sigma_low > guidance_sigma_high:
        raise InputError("guidance_sigma_low", guidance_sigma_low,
                         f"must not exceed guidance_sigma_high ({guidance_sigma_high})")
    return PredictionOptions(
        num_frames=frames or None, height=height, width=width, steps=steps, sampler=sampler,
        frame_scale=frame_scale, text_scale=text_scale,
        frame_scale_first=None if frame_scale_first < 0 else frame_scale_first,
        guidance_interval=(guidance_sigma_low, guidance_sigma_high), seed=seed, fps=fps,
        motion_bucket_id=motion_bucket_id, cond_aug=cond_aug,
        decode_chunk_size=decode_chunk_size,
    )


def resolve_frames(pipeline, options, frames: int, reference_counts: list[int],
                   references_input: str):
    """Fills T from the model and checks K < T, naming the inputs to change."""
    with about_input("frames", frames):
        try:
            options = pipeline.resolve(options)
        except ValueError as error:
            raise ValueError(f"{error} (frames = 0 uses the model's own T)") from error
    count = options.num_frames
    largest = max(reference_counts)
    if largest >= count:
        raise InputError("frames", frames, (
            f"the video would have T={count} frames but {references_input} holds K={largest} "
            f"reference frames, and K must be smaller than T: give fewer reference frames"
            + ("" if pipeline.aid is not None else " or raise 'frames'")
            + (f" (this AID model's T is fixed at {count})" if pipeline.aid is not None else "")))
    # The remaining checks (sampler name, fps, cond_aug, guidance) name the input themselves.
    options.validate(largest, pipeline.size_multiple)
    return options


class DualCFGSampler:
    """Dual-CFG EDM Sampler: AID_CONDITIONING → LATENT (video latents)."""

    @classmethod
    def INPUT_TYPES(cls):
        required, optional = sampling_inputs()
        return {
            "required": {
                "model": (AID_MODEL, {"tooltip": (
                    "The model from 'Load AID Model' (the one the conditioning was built "
                    "with).")}),
                "conditioning": (AID_CONDITIONING, {"tooltip": (
                    "From 'Build MCondition (DQFormer)' (or 'Batch AID Conditioning').")}),
                **required,
            },
            "optional": optional,
        }

    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("Video latents, (videos × frames, 4, H/8, W/8) as ComfyUI's SVD "
                       "latents; decode with AID Decode (which also restores the given frames).",)
    FUNCTION = "sample"
    CATEGORY = "AID"
    DESCRIPTION = (
        "Samples the video latents with AID's dual classifier-free guidance (paper eq. 8) on "
        "SVD's EDM schedule: D = D(∅,∅) + s_f·(D(c_f,∅) − D(∅,∅)) + s_t·(D(c_f,c_t) − D(c_f,∅)). "
        "Only branches with a non-zero weight run, batched in one UNet call. Cancel stops it "
        "between steps."
    )

    def sample(self, model, conditioning, seed: int, steps: int, sampler: str,
               frame_scale: float, text_scale: float, frames: int, fps: int,
               motion_bucket_id: int, cond_aug: float, frame_scale_first: float = -1.0,
               guidance_sigma_low: float = 0.0, guidance_sigma_high: float = 1000.0):
        handle = expect(model, AID_MODEL, "model")
        cond = expect(conditioning, AID_CONDITIONING, "conditioning")
        if cond.model is not handle:
            raise InputError("conditioning", cond.model.label, (
                f"it was built with another model than the one on 'model' ({handle.label}); "
                "connect the same 'Load AID Model' to Build MCondition and to the sampler"))
        pipeline = handle.pipeline(cond.text_encoder if handle.aid is not None else None)
        options = prediction_options(
            cond.height, cond.width, seed, steps, sampler, frame_scale, text_scale, frames, fps,
            motion_bucket_id, cond_aug, frame_scale_first, guidance_sigma_low,
            guidance_sigma_high)
        options = resolve_frames(pipeline, options, frames, cond.reference_counts,
                                 "Build MCondition's reference_frames")
        services.throw_if_interrupted()
        progress = services.StepProgress(steps)
        with handle.managed.loaded():
            latents = pipeline.sample_latents(
                cond.conditions, options, [seed] * cond.batch_size, progress)
        return (video_latent(latents, cond.conditions.references),)


def video_latent(latents: torch.Tensor, references: list[torch.Tensor]) -> dict:
    """(B, T, C, h, w) → ComfyUI LATENT: "samples" (B·T, C, h, w) as ComfyUI's SVD latents
    (unscaled VAE space), plus the video layout and the reference frames for AID Decode."""
    batch, frames = latents.shape[:2]
    device = services.intermediate_device()
    return {
        "samples": latents.flatten(0, 1).to(device),
        VIDEO_KEY: {
            "num_videos": batch,
            "num_frames": frames,
            "reference_frames": [reference.cpu() for reference in references],
        },
    }


def video_layout(latent: dict) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """LATENT → ((B, T, C, h, w) latents, reference frames or None). A LATENT without the
    AID layout (e.g. from ComfyUI's own SVD sampling) is read as one video."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if samples is None or samples.ndim != 4:
        shape = tuple(getattr(samples, "shape", ())) if samples is not None else None
        raise InputError("latent", shape, (
            "expected a video LATENT with 'samples' of shape (frames, 4, H/8, W/8), e.g. from "
            "the Dual-CFG EDM Sampler"))
    layout = latent.get(VIDEO_KEY)
    if layout is None:
        return samples.unsqueeze(0), None
    batch, frames = layout["num_videos"], layout["num_frames"]
    if samples.shape[0] != batch * frames:
        raise InputError("latent", tuple(samples.shape), (
            f"holds {samples.shape[0]} latent frames but its AID layout says {batch} videos of "
            f"{frames} frames; a node between the sampler and AID Decode changed the batch"))
    return samples.reshape(batch, frames, *samples.shape[1:]), layout["reference_frames"]


class AIDDecode:
    """AID Decode: video LATENT → IMAGE frames (chunked temporal VAE decoding)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (AID_MODEL, {"tooltip": "The model from 'Load AID Model' (its VAE)."}),
                "latent": ("LATENT", {"tooltip": "Video latents from the Dual-CFG EDM Sampler."}),
                "decode_chunk_size": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip": (
                    "Frames per temporal VAE decode: each chunk is decoded as its own short "
                    "video (SVD's decoding_t). Smaller uses less memory.")}),
                "keep_reference_frames": ("BOOLEAN", {"default": True, "tooltip": (
                    "Put the K given frames back at their places instead of their decoded "
                    "(slightly changed) versions.")}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("All frames of all videos, one video after the other: (videos × T, H, "
                       "W, 3) for Save Animated WEBP, Create Video + Save Video, or "
                       "VideoHelperSuite's Video Combine.",)
    FUNCTION = "decode"
    CATEGORY = "AID"
    DESCRIPTION = (
        "Decodes video latents with SVD's temporal VAE decoder, chunk by chunk, and restores "
        "the given reference frames."
    )

    def decode(self, model, latent, decode_chunk_size: int, keep_reference_frames: bool):
        from aid_model.pipeline import keep_reference_frames as restore

        handle = expect(model, AID_MODEL, "model")
        latents, references = video_layout(latent)
        channels = handle.components.vae.config.latent_channels
        if latents.shape[2] != channels:
            raise InputError("latent", tuple(latent["samples"].shape), (
                f"has {latents.shape[2]} channels but this model's VAE uses {channels}"))
        services.throw_if_interrupted()
        with handle.managed.loaded():
            videos = handle.decoder().decode(latents, decode_chunk_size)
        if keep_reference_frames and references is not None:
            videos = torch.stack(restore(videos, references))
        return (videos.flatten(0, 1).float().to(services.intermediate_device()),)
