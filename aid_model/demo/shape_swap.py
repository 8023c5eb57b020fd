"""``python -m aid_model.demo.shape_swap``: does the shape word decide which object moves?

In a look-alike scene (``aid_model.synthetic.lookalike``) two objects share a colour and
only the instruction's shape word tells them apart. For each look-alike scene of the
benchmark's held-out set this predicts twice from the same first frame and noise seed:
once with the scene's instruction (naming object A) and once with the same words naming
the look-alike B, each with the states the stand-in VLM writes for it. In each prediction
an object *left its place* when most of its first-frame pixels no longer show its colour
in the last frame (``vacated_share`` > 0.5). A model that reads the shape word moves A
for the first instruction and B for the second; one that reads only the colour moves the
same object (or both) whichever is named.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from aid_model.demo.load import DEMO_OPTIONS
from aid_model.synthetic import SyntheticClip, SyntheticClipDataset
from aid_model.synthetic.lookalike import has_lookalike
from aid_model.synthetic.scene import SceneObject
from aid_model.synthetic.world import COLOURS

# A pixel shows an object's colour when no channel is further than this from it ([0, 1]):
# every other colour of the world is 1.0 away in some channel and the grey background
# (0.78 in each) at least 0.78, so a generated pixel may drift a quarter and still count.
COLOUR_TOLERANCE = 0.25
LEFT_ITS_PLACE = 0.5
OUTCOMES = ("the named one", "the other one", "both", "neither")

# (first frames (3, H, W) in [0, 1], instructions, seeds) → videos (T, H, W, 3) in [0, 1]
Predict = Callable[[list[Tensor], list[str], list[int]], list[Tensor]]


def colour_mask(frame: np.ndarray, obj: SceneObject) -> np.ndarray:
    """(H, W) bool: the pixels of ``obj``'s bounding box (1 px margin) within
    ``COLOUR_TOLERANCE`` of its colour; ``frame`` (H, W, 3) in [0, 1]."""
    half = obj.size / 2 + 1
    rows, columns = np.mgrid[0:frame.shape[0], 0:frame.shape[1]] + 0.5  # pixel centres
    box = (np.abs(columns - obj.x) <= half) & (np.abs(rows - obj.y) <= half)
    colour = np.asarray(COLOURS[obj.colour], dtype=np.float64) / 255.0
    return box & (np.abs(frame - colour).max(axis=-1) < COLOUR_TOLERANCE)


def vacated_share(video: Tensor, obj: SceneObject) -> float:
    """The share of ``obj``'s first-frame pixels that no longer show its colour in the last
    frame of ``video`` (T, H, W, 3) in [0, 1]: 0 for an object that stayed, near 1 for one
    that moved more than its size away (or was dropped)."""
    before = colour_mask(video[0].numpy(), obj)
    kept = before & colour_mask(video[-1].numpy(), obj)
    return 1.0 - kept.sum() / max(int(before.sum()), 1)


def outcome(named: float, other: float) -> str:
    """Which of the two same-colour objects left its place, from their vacated shares."""
    moved = (named > LEFT_ITS_PLACE, other > LEFT_ITS_PLACE)
    return {(True, False): OUTCOMES[0], (False, True): OUTCOMES[1],
            (True, True): OUTCOMES[2], (False, False): OUTCOMES[3]}[moved]


@dataclass(frozen=True)
class SwapResult:
    """One look-alike scene: the outcome when naming its target and when naming the
    look-alike (each from the named object's point of view), and the vacated shares
    (target, look-alike) of both predictions."""

    scene: int
    instruction: str
    swapped: str
    naming_target: str
    naming_lookalike: str
    shares: tuple[tuple[float, float], tuple[float, float]]

    @property
    def same_object_moved(self) -> bool:
        """The same object (or both, or neither) left its place whichever was named."""
        flipped = {OUTCOMES[0]: OUTCOMES[1], OUTCOMES[1]: OUTCOMES[0]}
        return self.naming_target == flipped.get(self.naming_lookalike, self.naming_lookalike)


def lookalike_of(clip: SyntheticClip) -> SceneObject:
    """The first other object of ``clip``'s scene with the named object's colour."""
    named = clip.objects[clip.target]
    return next(obj for index, obj in enumerate(clip.objects)
                if index != clip.target and obj.colour == named.colour)


def shape_swap(predict: Predict, num_scenes: int = 200, seed: int = 0) -> list[SwapResult]:
    """The two predictions of every look-alike scene among the first ``num_scenes``
    held-out scenes from ``seed``; scene i's noise seed is ``seed + i``, as the
    benchmark's."""
    scenes = SyntheticClipDataset(num_scenes, split="heldout", seed=seed)
    results = []
    for index in range(num_scenes):
        clip = scenes.clip(index)
        if not has_lookalike(clip):
            continue
        target, other = clip.objects[clip.target], lookalike_of(clip)
        swapped = clip.instruction.replace(target.shape, other.shape)
        start = torch.from_numpy(clip.frames[0]).permute(2, 0, 1).float() / 255.0
        videos = predict([start, start], [clip.instruction, swapped], [seed + index] * 2)
        shares = tuple((vacated_share(v, target), vacated_share(v, other)) for v in videos)
        results.append(SwapResult(index, clip.instruction, swapped,
                                  outcome(*shares[0]), outcome(*reversed(shares[1])), shares))
    return results


def pipeline_predictor(pipeline, options=DEMO_OPTIONS) -> Predict:
    """``Predict`` for an ``AIDPipeline``, with the stand-in VLM's states for each text (as
    the benchmark predicts)."""
    from aid_model.demo.benchmark import predict_with_stand_in_states
    from aid_model.synthetic.prompter import SyntheticStatePrompter

    prompter = SyntheticStatePrompter()
    return lambda starts, texts, seeds: predict_with_stand_in_states(
        pipeline, prompter, starts, texts, seeds, options)


def summary(results: Sequence[SwapResult]) -> str:
    """A Markdown table of the outcomes for both instructions, and the shape-blind count."""
    lines = ["| instruction names | " + " | ".join(f"{o} moved" for o in OUTCOMES) + " |",
             "|---" * (len(OUTCOMES) + 1) + "|"]
    for label, attribute in (("the scene's target", "naming_target"),
                             ("its look-alike", "naming_lookalike")):
        counts = Counter(getattr(r, attribute) for r in results)
        lines.append(f"| {label} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    same = sum(r.same_object_moved for r in results)
    lines.append(f"\nthe same object(s) left their place whichever was named: {same} of "
                 f"{len(results)} look-alike scenes")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=200,
                        help="held-out scenes to search for look-alike ones (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="first held-out scene (default 0)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="an AID weight file over the bundled base (default: the bundled "
                        "model)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the benchmark: one process per core
    from aid_model.demo.benchmark import variant_pipeline
    from aid_model.demo.load import load_demo_pipeline

    if args.weights is not None and not args.weights.is_file():
        raise SystemExit(f"--weights {args.weights}: no such file; give an AID weight file "
                         "(a training run's aid_final.safetensors)")
    pipeline = variant_pipeline(args.weights) if args.weights else load_demo_pipeline()
    results = shape_swap(pipeline_predictor(pipeline), args.scenes, args.seed)
    for result in results:
        print(f"scene {result.scene}: {result.instruction!r}: {result.naming_target} moved; "
              f"{result.swapped!r}: {result.naming_lookalike} moved")
    print(summary(results))


if __name__ == "__main__":
    main()
