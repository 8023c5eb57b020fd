"""Look-alike scenes: the named object shares its colour with another object of the scene.

In such a scene only the shape word of the instruction ("move the yellow *circle* left"
beside a yellow triangle) tells which object is meant. They are about a sixth of the
world's scenes (34 of the benchmark's 200), and the bundled model, which picks objects by
colour, fails most of them (docs/results.md, "Look-alike scenes"). ``mix_lookalikes``
draws a training set with a chosen share of them, walking the split's seeds in order, so
the same arguments always give the same clips.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from aid_model.synthetic.clip import SyntheticClip


def has_lookalike(clip: SyntheticClip) -> bool:
    """Whether another object of ``clip``'s scene has the named object's colour
    (False for random-motion clips, which name no object)."""
    if clip.target is None:
        return False
    named = clip.objects[clip.target]
    return any(obj.colour == named.colour for i, obj in enumerate(clip.objects)
               if i != clip.target)


def mix_lookalikes(clips: Iterable[SyntheticClip], num_clips: int,
                   share: float) -> Iterator[SyntheticClip]:
    """The first ``num_clips`` clips of ``clips`` that fill two quotas: ``round(share ×
    num_clips)`` look-alike clips and the rest others, each kind taken in the order it
    comes; the clips a full quota turns away are skipped.

    Raises:
        ValueError: ``share`` outside [0, 1], or ``clips`` ran out before the quotas filled.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the look-alike share must be within 0 and 1, got {share}")
    wanted = {True: round(share * num_clips)}
    wanted[False] = num_clips - wanted[True]
    for clip in clips:
        if not any(wanted.values()):
            return
        kind = has_lookalike(clip)
        if wanted[kind]:
            wanted[kind] -= 1
            yield clip
    if any(wanted.values()):
        raise ValueError(f"the clips ran out {wanted[True]} look-alike and {wanted[False]} "
                         "other clip(s) short; give more seeds or a share nearer to the "
                         "world's own (about 0.17)")


def lookalike_scenes(num_scenes: int, split: str = "heldout", seed: int = 0) -> str:
    """Which of the first ``num_scenes`` scenes of ``split`` from ``seed`` (the scenes of
    ``SyntheticClipDataset(num_scenes, split=split, seed=seed)``) are look-alike scenes:
    "1" where they are, "0" where not, in scene order (as a benchmark row's
    ``passed_scenes``)."""
    from aid_model.synthetic.dataset import SyntheticClipDataset

    scenes = SyntheticClipDataset(num_scenes, split=split, seed=seed)
    return "".join("1" if has_lookalike(scenes.clip(i)) else "0" for i in range(num_scenes))
