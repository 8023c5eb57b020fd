"""The synthetic world as a map-style torch ``Dataset``, generated in memory on demand.

Items follow the data loader's sample contract, so the trainer takes this dataset where
it takes one read from disk:

    {"frames": float (T, 3, H, W) in [−1, 1], "instruction": str, "states": list[str],
     "num_reference_frames": 1, "sample_id": str, "fps": 8.0, "skipped": []}

(``skipped`` is the contract's bookkeeping key; nothing is ever skipped here.)

Item ``i`` is the clip of seed ``first_seed(split) + seed + i``, so it depends only on
(split, seed, index), never on the order items are read in or on worker processes. The
train and held-out splits draw from disjoint seed ranges of ``SPLIT_SIZE`` seeds each.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch.utils.data import Dataset

from aid_model.data.sample import make_sample
from aid_model.synthetic.clip import DEFAULT_NUM_STATES, SyntheticClip, generate_clip
from aid_model.synthetic.world import WorldConfig

SPLIT_SIZE = 1_000_000_000
SPLITS: dict[str, int] = {"train": 0, "heldout": SPLIT_SIZE}  # split → its first clip seed
FPS = 8.0


def first_seed(split: str) -> int:
    """The first clip seed of ``split`` ("train" or "heldout")."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return SPLITS[split]


def clip_seeds(split: str, seed: int, num_clips: int) -> range:
    """The clip seeds of ``num_clips`` clips from offset ``seed`` in ``split``."""
    if seed < 0 or num_clips < 0 or seed + num_clips > SPLIT_SIZE:
        raise ValueError(
            f"seed {seed} and num_clips {num_clips} must be non-negative with seed + "
            f"num_clips <= {SPLIT_SIZE}, so the clips stay inside the {split!r} split"
        )
    start = first_seed(split) + seed
    return range(start, start + num_clips)


def clip_to_sample(clip: SyntheticClip, fps: float = FPS) -> dict[str, Any]:
    """A clip in the data loader's sample contract (``aid_model.data.sample``)."""
    frames = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return make_sample(
        frames.contiguous(),
        clip.instruction,
        clip.states,
        num_reference_frames=1,
        sample_id=clip.sample_id,
        fps=fps,
    )


class SyntheticClipDataset(Dataset):
    """``num_clips`` synthetic clips, generated when indexed (nothing is cached or stored).

    ``split``: "train" or "heldout". ``seed``: offset of the first clip seed within the
    split. ``random_motion``: clips for the base model (no instruction, no states).
    ``num_states``: S. ``config``: the world (default: issue 7's). ``palette``: "exact" or
    "varied", overriding ``config.palette`` (the held-out benchmark's second palette is
    ``split="heldout", palette="varied"``: the same scenes, each in its own colours).
    """

    def __init__(
        self,
        num_clips: int,
        *,
        split: str = "train",
        seed: int = 0,
        random_motion: bool = False,
        num_states: int = DEFAULT_NUM_STATES,
        config: WorldConfig | None = None,
        palette: str | None = None,
        fps: float = FPS,
    ) -> None:
        self.seeds = clip_seeds(split, seed, num_clips)
        self.split = split
        self.random_motion = random_motion
        self.num_states = num_states
        self.config = config or WorldConfig()
        if palette is not None:
            self.config = replace(self.config, palette=palette)
        self.fps = fps

    def __len__(self) -> int:
        return len(self.seeds)

    def clip(self, index: int) -> SyntheticClip:
        """Item ``index`` with its ground truth (objects, trajectory, command)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        return generate_clip(
            self.seeds[index],
            random_motion=self.random_motion,
            num_states=self.num_states,
            config=self.config,
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        return clip_to_sample(self.clip(index), self.fps)
