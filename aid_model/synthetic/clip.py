"""One clip of the synthetic world from one integer seed: scene, motion, frames, words.

Two modes:
- instructed (stage 2, and every evaluation): one object is named by an instruction and
  moves as it says; the others stay. States describe the ground-truth trajectory.
- random motion (stage 1, the base image-to-video model): objects move at random, there
  is no instruction and there are no states.

The same ``(clip_seed, random_motion, config)`` always gives the same clip, bit for bit:
all randomness comes from ``numpy`` generators seeded by them (one for the scene, motion
and words; with ``config.palette == "varied"`` a second one for the palette, so a varied
clip shows the exact clip of its seed in other colours).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aid_model.synthetic.instructions import Instruction, sample_instruction_text
from aid_model.synthetic.motion import (
    instructed_trajectory,
    linear_trajectory,
    random_velocities,
    room,
    trajectory_clear,
)
from aid_model.synthetic.palette import ScenePalette, exact_palette, scene_palette
from aid_model.synthetic.render import render_clip
from aid_model.synthetic.scene import SceneObject, sample_scene
from aid_model.synthetic.states import trajectory_states
from aid_model.synthetic.world import DIRECTIONS, WorldConfig

DEFAULT_NUM_STATES = 4
# Salt that keeps the two modes' random streams apart for the same clip seed.
_MODE_SALT = {False: 0x5EED, True: 0xD1CE}


@dataclass(frozen=True)
class SyntheticClip:
    """A generated clip with its ground truth.

    ``frames``: uint8 (T, H, W, 3). ``objects``: the scene at frame 0. ``trajectory``:
    (T, N, 2) box centres in px. ``instruction``: the text ("" in random-motion mode);
    ``command``: what it asks (None in random-motion mode); ``target``: the named object's
    index in ``objects``. ``travel``: the distance the instruction asked for, before the
    border could stop it. ``states``: S sentences ([] in random-motion mode).
    ``palette``: the colours and supersampling the frames were drawn with.
    """

    seed: int
    frames: np.ndarray
    objects: tuple[SceneObject, ...]
    trajectory: np.ndarray
    instruction: str = ""
    command: Instruction | None = None
    target: int | None = None
    travel: float = 0.0
    states: list[str] = field(default_factory=list)
    palette: ScenePalette = field(default_factory=lambda: exact_palette(WorldConfig()))

    @property
    def random_motion(self) -> bool:
        return self.command is None

    @property
    def sample_id(self) -> str:
        mode = "random" if self.random_motion else "instructed"
        # A varied clip shares its seed with an exact one; caches keyed by id keep them apart.
        tag = "-varied" if self.palette.kind == "varied" else ""
        return f"synthetic-{mode}{tag}-{self.seed:09d}"


def clip_rng(clip_seed: int, random_motion: bool = False) -> np.random.Generator:
    """The generator a clip is drawn from."""
    if clip_seed < 0:
        raise ValueError(f"clip seeds are non-negative integers, got {clip_seed}")
    return np.random.default_rng([int(clip_seed), _MODE_SALT[bool(random_motion)]])


def generate_clip(
    clip_seed: int,
    *,
    random_motion: bool = False,
    num_states: int = DEFAULT_NUM_STATES,
    config: WorldConfig | None = None,
) -> SyntheticClip:
    """The clip of ``clip_seed``: instructed by default, random motion if asked."""
    config = config or WorldConfig()
    rng = clip_rng(clip_seed, random_motion)
    palette = scene_palette(clip_seed, _MODE_SALT[bool(random_motion)], config)
    if random_motion:
        objects, trajectory = _random_motion(rng, config)
        return SyntheticClip(
            clip_seed,
            render_clip(objects, trajectory, config, palette),
            objects,
            trajectory,
            palette=palette,
        )
    objects, target, direction, travel, trajectory = _instructed_motion(rng, config)
    command = Instruction(objects[target].colour, objects[target].shape, direction)
    return SyntheticClip(
        seed=clip_seed,
        frames=render_clip(objects, trajectory, config, palette),
        objects=objects,
        trajectory=trajectory,
        instruction=sample_instruction_text(command, rng),
        command=command,
        target=target,
        travel=travel,
        states=trajectory_states(objects[target], trajectory[:, target], num_states, config),
        palette=palette,
    )


def _instructed_motion(
    rng: np.random.Generator, config: WorldConfig
) -> tuple[tuple[SceneObject, ...], int, str, float, np.ndarray]:
    """A scene and one (object, direction) whose move shows (``min_room``) and hits nothing."""
    while True:
        objects = sample_scene(rng, config)
        travel = float(rng.integers(config.min_travel, config.max_travel + 1))
        options = []
        for target, obj in enumerate(objects):
            for direction in DIRECTIONS:
                if room(obj, direction, config) < config.min_room:
                    continue
                trajectory = instructed_trajectory(objects, target, direction, travel, config)
                if trajectory_clear(objects, trajectory, config.gap):
                    options.append((target, direction, trajectory))
        if options:
            target, direction, trajectory = options[int(rng.integers(len(options)))]
            return objects, target, direction, travel, trajectory


def _random_motion(
    rng: np.random.Generator, config: WorldConfig
) -> tuple[tuple[SceneObject, ...], np.ndarray]:
    """A scene and random straight-line motion that keeps every object clear of the others."""
    while True:
        objects = sample_scene(rng, config)
        trajectory = linear_trajectory(objects, random_velocities(objects, rng, config), config)
        if trajectory_clear(objects, trajectory, config.gap):
            return objects, trajectory
