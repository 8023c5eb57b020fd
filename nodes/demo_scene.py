"""AID Demo Scene: a first frame of the miniature's world, an instruction for it and its future
states, from a seed.

Nothing to upload: the frame is drawn by the same generator the miniature was trained and
evaluated on (``aid_model.synthetic``), and the states are written by that world's stand-in
for the VLM, as ``python -m aid_model demo`` does, so the demo workflow runs on a fresh
ComfyUI.
"""

from __future__ import annotations

CATEGORY = "AID/demo"
DIRECTIONS = ("random", "left", "right", "up", "down")
# A scene the miniature was not trained on (training seeds are below 10⁹), as `python -m
# aid_model demo` uses.
DEFAULT_SEED = 1_000_000_007
# S of the bundled miniature (demo_model/demo_model.json); AID Conditioning fits any count.
DEMO_NUM_STATES = 4


def demo_scene(seed: int, direction: str):
    """(IMAGE (1, 64, 64, 3) float32 in [0, 1], instruction, states) of scene ``seed``.

    The instruction names the scene's target object, as ``aid_model.demo.run`` does:
    "move the {colour} {shape} {direction}"; ``random`` takes the direction the world drew
    for this scene (one the object has room for). The states (one a line) are what the
    world's stand-in prompter writes for that frame and instruction.
    """
    import torch

    from aid_model.synthetic import generate_clip
    from aid_model.synthetic.prompter import SyntheticStatePrompter

    if direction not in DIRECTIONS:
        raise ValueError(f"input 'direction' = {direction!r}: use one of {', '.join(DIRECTIONS)}")
    clip = generate_clip(seed)
    chosen = clip.command.direction if direction == "random" else direction
    instruction = f"move the {clip.objects[clip.target].name} {chosen}"
    (states,) = SyntheticStatePrompter().predict_states([clip.frames[0]], [instruction],
                                                        DEMO_NUM_STATES)
    frame = torch.from_numpy(clip.frames[0]).float().div(255.0)
    return frame[None], instruction, "\n".join(states)


class AIDDemoScene:
    """AID Demo Scene: seed + direction → the first frame (IMAGE), the instruction and its
    future states (STRING, one a line)."""

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

    RETURN_TYPES = ("IMAGE", "STRING", "STRING")
    RETURN_NAMES = ("image", "instruction", "states")
    OUTPUT_TOOLTIPS = (
        "The scene's first frame, 64×64 RGB: the reference frame for the demo model.",
        "'move the <colour> <shape> <direction>' for the scene's target object, in the words "
        "the demo model's text encoder knows.",
        f"{DEMO_NUM_STATES} future states of the scene under the instruction, one a line, as "
        "the miniature was trained with them (written by its world's stand-in for the VLM): "
        "for AID Conditioning's states.",
    )
    FUNCTION = "draw"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Draws a first frame of the demo model's synthetic world (coloured circles, squares "
        "and triangles on a light-grey background) from a seed, with an instruction for one "
        "of its objects and the future states its world's stand-in for the VLM writes, so the "
        "demo workflow needs no uploaded picture and no VLM."
    )

    def draw(self, seed: int, direction: str):
        return demo_scene(seed, direction)
