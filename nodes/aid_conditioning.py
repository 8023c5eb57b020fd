"""AID Conditioning: SVD's image-to-video conditioning for K reference frames, plus the
MCondition of the instruction and its states, as ComfyUI CONDITIONINGs."""

from __future__ import annotations

import torch

from .native_patch import (
    aid_attachment,
    clip_image_outputs,
    encode_texts,
    load_aid_modules,
    mcondition_cond,
    unet_size_factor,
)

CATEGORY = "AID/conditioning"


def conditioning_defaults() -> dict[str, float]:
    """SVD micro-conditioning (and sampling) defaults, from the library's ``PredictionOptions``
    (the one place the library, the CLI and the nodes take their defaults from)."""
    from aid_model.pipeline.options import PredictionOptions

    options = PredictionOptions()
    return {"motion_bucket_id": options.motion_bucket_id, "fps": int(options.fps),
            "augmentation_level": options.cond_aug, "steps": options.steps,
            "sampler_name": options.sampler}


class AIDConditioning:
    """AID Conditioning: reference frames + instruction → three CONDITIONINGs + LATENT."""

    @classmethod
    def INPUT_TYPES(cls):
        defaults = conditioning_defaults()
        return {
            "required": {
                "model": ("MODEL", {"tooltip": (
                    "The MODEL from Apply AID: its DQFormer turns the instruction, the states "
                    "and the first frame into the MCondition.")}),
                "clip_vision": ("CLIP_VISION", {"tooltip": (
                    "SVD's CLIP image encoder (Image Only Checkpoint Loader's CLIP_VISION): "
                    "the first frame's image token and e_v.")}),
                "vae": ("VAE", {"tooltip": "SVD's VAE: encodes the reference frames."}),
                "clip": ("CLIP", {"tooltip": (
                    "OpenCLIP ViT-H/14's text tower, loaded by Load CLIP with type "
                    "stable_diffusion (as SD 2.x uses it): encodes the instruction and states.")}),
                "reference_frames": ("IMAGE", {"tooltip": (
                    "The K given frames (a batch of K ≥ 1), in order; the video continues from "
                    "the last. Resized to cover width × height and centre-cropped.")}),
                "instruction": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    "What should happen, e.g. 'put the corn in the pot'. Read literally: "
                    "ComfyUI's (prompt:1.2) weighting is not applied.")}),
                "width": ("INT", {"default": 256, "min": 16, "max": 4096, "step": 8, "tooltip": (
                    "Video width in pixels; a multiple of the model's size factor (64 for "
                    "SVD). AID models are trained at 256.")}),
                "height": ("INT", {"default": 256, "min": 16, "max": 4096, "step": 8,
                                   "tooltip": "Video height in pixels (as width)."}),
                "video_frames": ("INT", {"default": 16, "min": 2, "max": 4096, "tooltip": (
                    "T, frames of the video, the K given ones included. An AID model with "
                    "MCondition predicts exactly the T it was trained with.")}),
                "motion_bucket_id": ("INT", {"default": defaults["motion_bucket_id"], "min": 0,
                                             "max": 1023, "advanced": True, "tooltip": (
                    "SVD's motion micro-conditioning: higher, more motion.")}),
                "fps": ("INT", {"default": defaults["fps"], "min": 1, "max": 1024, "advanced": True,
                                "tooltip": "SVD's frame-rate micro-conditioning (fps − 1)."}),
                "augmentation_level": ("FLOAT", {"default": defaults["augmentation_level"],
                                                 "min": 0.0, "max": 10.0,
                                                 "step": 0.01, "advanced": True, "tooltip": (
                    "Noise on the reference frames before encoding (std in SVD's [−1, 1] pixel "
                    "range, as the library and SVD's training; core SVD_img2vid_Conditioning's "
                    "level is in [0, 1], i.e. half of this); also enters the "
                    "micro-conditioning. Drawn from ComfyUI's global generator.")}),
            },
            "optional": {
                "states": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    "Future states, one a line (typed, or from Predict Future States). Empty: "
                    "the instruction stands for every state.")}),
            },
        }

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("frame_and_text", "frame_only", "neither", "latent")
    OUTPUT_TOOLTIPS = (
        "c_f + c_t: the frames and the instruction (DualCFGGuider's cond1).",
        "c_f + ∅: the frames with the null text (DualCFGGuider's cond2).",
        "∅ + ∅: zero image token and frames, null text (DualCFGGuider's negative).",
        "The empty video latent of T frames for the sampler.",
    )
    FUNCTION = "encode"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "SVD image-to-video conditioning for K reference frames with AID's MCondition: the "
        "DQFormer reads the instruction, the states and the first frame once per clip. The "
        "three outputs are eq. 8's branches; DualCFGGuider (style regular) with "
        "cfg_conds = text scale and cfg_cond2_negative = frame scale is AID's dual guidance."
    )

    def encode(self, model, clip_vision, vae, clip, reference_frames, instruction: str,
               width: int, height: int, video_frames: int, motion_bucket_id: int, fps: int,
               augmentation_level: float, states: str = ""):
        from aid_model.aid.reference import reference_concat_latents
        from aid_model.conditioning import clip_pixel_values
        from aid_model.images import resize_and_center_crop
        from aid_model.text_condition import NULL_TEXT, fit_states

        # 1. Inputs, checked before any model runs.
        attachment = aid_attachment(model)
        config = attachment.config
        given = reference_frames.shape[0]
        if not 1 <= given < video_frames:
            raise ValueError(
                f"reference_frames: {given} frames given for video_frames = {video_frames}; "
                "at least one frame must be predicted: give fewer reference frames or more "
                "video_frames"
            )
        if config.use_mcondition and video_frames != config.num_frames:
            raise ValueError(
                f"video_frames: {video_frames}, but this AID model ({attachment.name}) "
                f"predicts T = {config.num_frames} frames (its DQFormer has queries for that "
                f"many); set video_frames to {config.num_frames}"
            )
        factor = vae.downscale_ratio * unet_size_factor(model)
        for name, value in (("width", width), ("height", height)):
            if value % factor:
                raise ValueError(
                    f"{name}: {value} is not a multiple of {factor} (VAE × UNet downsampling); "
                    f"use {max(factor, round(value / factor) * factor)}"
                )
        frames = torch.stack([resize_and_center_crop(frame.movedim(-1, 0)[:3].float().cpu(),
                                                     height, width)
                              for frame in reference_frames])  # (K, 3, H, W) in [0, 1]

        # 2. Frame condition c_f: the first frame's CLIP image token and e_v; the concat
        # latents of the K frames, noised as the library does (cond_aug in [−1, 1] space).
        image_embeds, tokens = clip_image_outputs(
            clip_vision, clip_pixel_values(frames[:1] * 2.0 - 1.0, clip_vision.image_size))
        pooled = image_embeds[:, None]  # (1, 1, d)
        noise = torch.randn(frames.shape, dtype=torch.float32)
        latents = vae.encode((frames + augmentation_level / 2.0 * noise).movedim(1, -1))
        concat = reference_concat_latents(latents[None].float(), video_frames,
                                          config.concat_fill)[0]  # (T, C, h, w)

        # 3. Text condition c_t: the MCondition of the instruction and of the null text.
        full = null = None
        if config.use_mcondition:
            full, null = self._mconditions(model, attachment, clip, instruction, states,
                                           tokens if config.image_context == "tokens"
                                           else pooled, fit_states, NULL_TEXT)

        common = {"motion_bucket_id": motion_bucket_id, "fps": fps,
                  "augmentation_level": augmentation_level}

        def conditioning(context, concat_latent, mcondition):
            values = {**common, "concat_latent_image": concat_latent}
            if mcondition is not None:
                values["model_conds"] = mcondition_cond(mcondition)
            return [[context, values]]

        latent = torch.zeros(video_frames, *concat.shape[1:])
        return (conditioning(pooled, concat, full), conditioning(pooled, concat, null),
                conditioning(torch.zeros_like(pooled), torch.zeros_like(concat), null),
                {"samples": latent})

    @staticmethod
    def _mconditions(model, attachment, clip, instruction, states, image_tokens, fit_states,
                     null_text):
        """(full, null) MCondition, (T, L, d) each, on the intermediate device."""
        config, parts = attachment.config, attachment.parts
        lines = [line for line in (states or "").splitlines() if line.strip()]
        fitted = fit_states(lines, config.num_states, instruction)
        encoded = encode_texts(clip, [instruction, *fitted])
        null = encode_texts(clip, [null_text])
        if encoded.shape[-1] != parts.context_width:
            raise ValueError(
                f"clip: this CLIP gives {encoded.shape[-1]}-wide text embeddings but the AID "
                f"model reads {parts.context_width}-wide ones; load OpenCLIP ViT-H/14's text "
                "weights with Load CLIP, type stable_diffusion"
            )
        if image_tokens.shape[-1] != parts.image_width:
            raise ValueError(
                f"clip_vision: this CLIP vision model gives {image_tokens.shape[-1]}-wide "
                f"embeddings but the AID model reads {parts.image_width}-wide ones; connect "
                "the CLIP_VISION of the SVD checkpoint the AID weights were trained on"
            )
        e_t = encoded[:1]
        e_s = encoded[1:].reshape(1, -1, encoded.shape[-1])  # the S states on the token axis
        null_s = null.repeat(1, config.num_states, 1)
        device, dtype = load_aid_modules(model, attachment)
        with torch.no_grad():
            full, empty = (
                parts.build_mcondition(t.to(device, dtype), s.to(device, dtype),
                                       image_tokens.to(device, dtype))
                for t, s in ((e_t, e_s), (null, null_s)))
        return full[0].float().cpu(), empty[0].float().cpu()
