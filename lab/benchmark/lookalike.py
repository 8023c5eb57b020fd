"""Look-alike scenes: the named object shares its colour with another object of the scene.

In such a scene only the shape word of the instruction ("move the yellow *circle* left"
beside a yellow triangle) tells which object is meant. They are about a sixth of the
world's scenes (34 of the benchmark's 200), and the bundled model, which picks objects by
colour, fails most of them (docs/results.md, known limits; lab/NOTES.md, "Look-alike
scenes"). The benchmark reports them apart.
"""

from __future__ import annotations

from aid_model.synthetic.clip import SyntheticClip


def has_lookalike(clip: SyntheticClip) -> bool:
    """Whether another object of ``clip``'s scene has the named object's colour
    (False for random-motion clips, which name no object)."""
    if clip.target is None:
        return False
    named = clip.objects[clip.target]
    return any(obj.colour == named.colour for i, obj in enumerate(clip.objects)
               if i != clip.target)


def lookalike_scenes(num_scenes: int, split: str = "heldout", seed: int = 0) -> str:
    """Which of the first ``num_scenes`` scenes of ``split`` from ``seed`` (the scenes of
    ``SyntheticClipDataset(num_scenes, split=split, seed=seed)``) are look-alike scenes:
    "1" where they are, "0" where not, in scene order (as a benchmark row's
    ``passed_scenes``)."""
    from aid_model.synthetic.dataset import SyntheticClipDataset

    scenes = SyntheticClipDataset(num_scenes, split=split, seed=seed)
    return "".join("1" if has_lookalike(scenes.clip(i)) else "0" for i in range(num_scenes))
