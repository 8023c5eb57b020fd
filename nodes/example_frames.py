"""AID Example Frame: a first frame shipped with the extension (workflows/frames/), by name.

The real-model workflows start from a frame that fits their instruction. Core Load Image
reads ComfyUI's input/ folder, which holds nothing of ours on a fresh ComfyUI (and which a
remote browser cannot fill from the extension's folder), so this node reads the extension's
own frames: the workflows run as shipped, and Load Image takes over for the user's frames.
"""

from __future__ import annotations

from pathlib import Path

FRAMES_DIR = Path(__file__).resolve().parents[1] / "workflows" / "frames"
CATEGORY = "AID/image"


def example_frames() -> list[str]:
    """PNG names in workflows/frames/, sorted."""
    if not FRAMES_DIR.is_dir():
        return []
    return sorted(path.name for path in FRAMES_DIR.glob("*.png"))


def load_frame(path: Path):
    """(1, H, W, 3) float32 in [0, 1]: a ComfyUI IMAGE of an RGB file (alpha dropped)."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as file:
        pixels = np.asarray(file.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels)[None]


class AIDExampleFrame:
    """AID Example Frame: a frame name from workflows/frames/ → IMAGE."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frame": (example_frames(), {"tooltip": (
                    "A first frame shipped with the extension (workflows/frames/), drawn to "
                    "fit the bundled workflows' instructions. For your own frames use core "
                    "Load Image instead.")}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The frame as an IMAGE batch of one (1, H, W, 3), for AID "
                       "Conditioning's reference_frames.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Loads one of the example frames shipped with the extension (workflows/frames/), so "
        "that the bundled workflows run on a fresh ComfyUI without uploading a picture. Swap "
        "it for core Load Image to start from your own frame."
    )

    @classmethod
    def VALIDATE_INPUTS(cls, frame=None):
        # ComfyUI's own check would say only "value not in list"; say where the files live.
        if frame is None or frame in example_frames():
            return True
        return (f"frame: '{frame}' is not among the extension's example frames in {FRAMES_DIR} "
                f"({', '.join(example_frames()) or 'none found'}); pick one of them, or use "
                "Load Image for a frame of your own")

    def load(self, frame: str):
        return (load_frame(FRAMES_DIR / frame),)
