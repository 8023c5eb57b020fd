"""The synthetic instruction world (issue 7): scenes, instructed clips, states, detector.

    from aid_model.synthetic import SyntheticClipDataset, direction_accuracy, generate_clip

    clip = generate_clip(7)                  # deterministic from the seed
    clip.instruction                         # "nudge the yellow circle right"
    clip.states                              # ["the yellow circle is near the centre", …]
    clip.frames                              # uint8 (8, 64, 64, 3)
    direction_accuracy(clip.frames[0], clip.frames[-1], clip.instruction)   # True

64 × 64 frames on light grey; 1–3 circles, squares or triangles, 10–16 px, in red,
green, blue or yellow; "move the {colour} {shape} {left|right|up|down}" moves that object
12–24 px over 8 frames at constant speed, stopping at the border, while the others stay.
The modules, one concept each: ``world`` (the rules), ``scene``, ``render``,
``instructions``, ``motion``, ``states``, ``clip``, ``palette`` (exact or varied colours),
``detect``, ``accuracy``, ``prompter`` (the VLM stand-in), ``vocabulary`` (its words),
``dataset`` (in memory), ``writer`` (generic format on disk). See docs/synthetic-world.md.
"""

from aid_model.synthetic.accuracy import (
    MAX_STILL_MOVE,
    MIN_MOVE,
    DirectionCheck,
    check_direction,
    direction_accuracy,
    direction_accuracy_batch,
)
from aid_model.synthetic.clip import SyntheticClip, generate_clip
from aid_model.synthetic.dataset import (
    FPS,
    SPLITS,
    SyntheticClipDataset,
    clip_seeds,
    clip_to_sample,
)
from aid_model.synthetic.detect import DetectedObject, detect_objects
from aid_model.synthetic.instructions import TEMPLATES, Instruction, parse_instruction
from aid_model.synthetic.palette import ScenePalette, read_palette, scene_palette
from aid_model.synthetic.prompter import SyntheticStatePrompter
from aid_model.synthetic.render import render_clip, render_frame
from aid_model.synthetic.scene import SceneObject, sample_scene
from aid_model.synthetic.states import describe_position, state_frames, trajectory_states
from aid_model.synthetic.vocabulary import split_words, vocabulary
from aid_model.synthetic.world import COLOURS, DIRECTIONS, PALETTES, SHAPES, WorldConfig
from aid_model.synthetic.writer import write_dataset

__all__ = [
    "COLOURS",
    "DIRECTIONS",
    "FPS",
    "MAX_STILL_MOVE",
    "MIN_MOVE",
    "PALETTES",
    "SHAPES",
    "SPLITS",
    "TEMPLATES",
    "DetectedObject",
    "DirectionCheck",
    "Instruction",
    "SceneObject",
    "ScenePalette",
    "SyntheticClip",
    "SyntheticClipDataset",
    "SyntheticStatePrompter",
    "WorldConfig",
    "check_direction",
    "clip_seeds",
    "clip_to_sample",
    "describe_position",
    "detect_objects",
    "direction_accuracy",
    "direction_accuracy_batch",
    "generate_clip",
    "parse_instruction",
    "read_palette",
    "render_clip",
    "render_frame",
    "sample_scene",
    "scene_palette",
    "split_words",
    "state_frames",
    "trajectory_states",
    "vocabulary",
    "write_dataset",
]
