"""Look-alike scenes (the named object shares its colour with another object)."""

from __future__ import annotations

from aid_model.synthetic import generate_clip
from lab.benchmark.lookalike import has_lookalike


def _clips(start: int = 0, stop: int = 400):
    return (generate_clip(seed) for seed in range(start, stop))


def test_a_lookalike_is_another_object_of_the_named_colour():
    seen = {True: 0, False: 0}
    for clip in _clips(0, 200):
        named = clip.objects[clip.target]
        others = [obj for i, obj in enumerate(clip.objects) if i != clip.target]
        expected = any(obj.colour == named.colour for obj in others)
        assert has_lookalike(clip) == expected
        # An object of the named colour is never of the named shape (the world's rule).
        assert all(obj.shape != named.shape for obj in others if obj.colour == named.colour)
        seen[expected] += 1
    assert seen[True] >= 10 and seen[False] >= 100  # both kinds occur, look-alikes rarer
    assert not has_lookalike(generate_clip(0, random_motion=True))
