"""AID Demo Scene: a first frame of the miniature's world and an instruction for it, from a seed.

Nothing to upload: the frame is drawn by the same generator the miniature was trained and
evaluated on (``aid_model.synthetic``), so the demo workflow runs on a fresh ComfyUI.
"""

from __future__ import annotations

CATEGORY = "AID/demo"
DIRECTIONS = ("random", "left", "right", "up", "down")
# A scene the miniature was not trained on (training seeds are below 10⁹), as `python -m
# aid_model demo` uses.
DEFAULT_SEED = 1_000_000_007


def demo_scene(seed: int, direction: str):
    """(IMAGE (1, 64, 64, 3) float32 in [0, 1], instruction) of scene ``seed``.

    The instruction names the scene's target object, as ``aid_model.demo.run`` does:
    "move the {colour} {shape} {direction}"; ``random`` takes the direction the world drew
    for this scene (one the object has room for).
    """
    import torch

    from aid_model.synthetic import generate_clip

    if direction not in DIRECTIONS:
        raise ValueError(f"input 'direction' = {direction!r}: use one of {', '.join(DIRECTIONS)}")
    clip = generate_clip(seed)
    chosen = clip.command.direction if direction == "random" else direction
    instruction = f"move the {clip.objects[clip.target].name} {chosen}"
    frame = torch.from_numpy(clip.frames[0]).float().div(255.0)
    return frame[None], instruction


class AIDDemoScene:
    """AID Demo Scene: seed + direction → the first frame (IMAGE) and the instruction."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "seed": ("INT", {"default": DEFAULT_SEED, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "tooltip": (
                    "Which scene of the miniature's world to draw: the same seed always gives "
                    "the same objects. Seeds from 1,000,000,000 up are scenes the demo model "
                    "never saw in training.")}),
                "direction": (list(DIRECTIONS), {"default": "random", "tooltip": (
                    "Where the instruction moves the scene's target object. random: the "
                    "direction the world drew for this scene, one with room to move.")}),
            },
        }

    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("image", "instruction")
    OUTPUT_TOOLTIPS = (
        "The scene's first frame, 64×64 RGB: the reference frame for the demo model.",
        "'move the <colour> <shape> <direction>' for the scene's target object, in the words "
        "the demo model's text encoder knows.",
    )
    FUNCTION = "draw"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Draws a first frame of the demo model's synthetic world (coloured circles, squares "
        "and triangles on a light-grey background) from a seed, with an instruction for one "
        "of its objects, so the demo workflow needs no uploaded picture."
    )

    def draw(self, seed: int, direction: str):
        return demo_scene(seed, direction)
