"""AID Keep Reference Frames: the K given frames put back at the start of the decoded video.

The sampler regenerates every frame, the K given ones included (the VAE round trip and the
noise alter them slightly); the library returns the given frames themselves
(``aid_model.pipeline.keep_reference_frames``), and so does a native graph with this node
after VAE Decode.
"""

from __future__ import annotations

from .errors import InputError

CATEGORY = "AID/video"


def keep_reference_frames(images, reference_frames, video_frames: int = 0) -> tuple:
    """(N·T, H, W, 3) decoded videos, (K, h, w, C) given frames → (N·T, H, W, 3) with the
    first K frames of each T-frame video replaced by the given ones, resized to cover H × W
    and centre-cropped as AID Conditioning prepares them. ``video_frames`` 0: one video."""
    import torch

    from aid_model.images import resize_and_center_crop

    total, height, width = images.shape[:3]
    frames = video_frames or total
    given = reference_frames.shape[0]
    if total % frames:
        raise InputError("video_frames", video_frames, (
            f"the images hold {total} frames, which is not a whole number of {frames}-frame "
            "videos; set video_frames to the T of AID Conditioning (0: one video)"))
    if not 1 <= given < frames:
        raise InputError("reference_frames", f"{given} frames", (
            f"each video has {frames} frames, and at least one must be predicted; connect the "
            "reference frames given to AID Conditioning"))
    prepared = torch.stack([
        resize_and_center_crop(frame.movedim(-1, 0)[:3].float().cpu(), height, width)
        for frame in reference_frames]).movedim(1, -1).to(images.device, images.dtype)
    kept = images.clone()
    for start in range(0, total, frames):
        kept[start:start + given] = prepared
    return (kept,)


class AIDKeepReferenceFrames:
    """AID Keep Reference Frames: decoded IMAGE + reference IMAGE → IMAGE with the first K
    frames of each video replaced by the given ones."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": (
                    "The decoded video (VAE Decode's IMAGE): T frames, or several T-frame "
                    "videos one after the other.")}),
                "reference_frames": ("IMAGE", {"tooltip": (
                    "The K given frames, as connected to AID Conditioning's reference_frames "
                    "(resized and centre-cropped to the video's size as it does).")}),
            },
            "optional": {
                "video_frames": ("INT", {"default": 0, "min": 0, "max": 4096, "advanced": True,
                                         "tooltip": (
                    "T, frames per video, when the images hold several videos one after the "
                    "other: the first K of each are replaced. 0: the images are one video.")}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The video with the K given frames first, exactly as given (resized "
                       "to the video's size), then the predicted ones.",)
    FUNCTION = "keep"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Puts the K given reference frames back at the start of the decoded video: sampling "
        "regenerates them too, slightly changed by the VAE and the noise. Connect VAE "
        "Decode's IMAGE and the frames given to AID Conditioning; the result is what the "
        "library and the CLI return."
    )

    def keep(self, images, reference_frames, video_frames: int = 0):
        return keep_reference_frames(images, reference_frames, video_frames)
