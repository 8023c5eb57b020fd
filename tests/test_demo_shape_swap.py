"""The shape-swap probe: which object leaves its place when the instruction names the
other shape of a colour. Checked with two stand-in predictors: one that follows the
instruction exactly (the world's own renderer) and one that ignores it."""

from __future__ import annotations

import torch

from aid_model.demo.shape_swap import (
    OUTCOMES,
    lookalike_of,
    outcome,
    shape_swap,
    summary,
    vacated_share,
)
from aid_model.synthetic import SyntheticClipDataset
from aid_model.synthetic.instructions import parse_instruction
from aid_model.synthetic.lookalike import has_lookalike
from aid_model.synthetic.motion import instructed_trajectory
from aid_model.synthetic.render import render_clip
from aid_model.synthetic.world import WorldConfig

SCENES = 60
SCENES_SET = SyntheticClipDataset(SCENES, split="heldout")


def _video(frames) -> torch.Tensor:
    return torch.from_numpy(frames).float() / 255.0


def ignoring_the_text(starts, texts, seeds):
    """The scene's own clip whatever the instruction says."""
    return [_video(SCENES_SET.clip(seed).frames) for seed in seeds]


def following_the_text(starts, texts, seeds):
    """The named object moved 20 px the named way, by the world's renderer."""
    videos = []
    for text, seed in zip(texts, seeds, strict=True):
        objects = SCENES_SET.clip(seed).objects
        command = parse_instruction(text)
        target = next(i for i, obj in enumerate(objects) if obj.identity == command.target)
        trajectory = instructed_trajectory(objects, target, command.direction, 20.0,
                                           WorldConfig())
        videos.append(_video(render_clip(objects, trajectory, WorldConfig())))
    return videos


def test_vacated_share_tells_a_moved_object_from_a_still_one():
    for index in range(10):
        clip = SCENES_SET.clip(index)
        video = _video(clip.frames)
        for number, obj in enumerate(clip.objects):
            share = vacated_share(video, obj)
            if number != clip.target:
                assert share == 0.0, (index, obj)
            elif clip.travel >= 16:  # moved more than its size (10–16 px) away
                assert share > 0.9, (index, obj, share)
    assert outcome(0.9, 0.1) == "the named one" and outcome(0.2, 0.8) == "the other one"
    assert outcome(0.9, 0.9) == "both" and outcome(0.0, 0.1) == "neither"


def test_a_model_that_reads_the_shape_moves_the_object_it_is_told_to():
    results = shape_swap(following_the_text, SCENES)
    looks = [i for i in range(SCENES) if has_lookalike(SCENES_SET.clip(i))]
    assert [r.scene for r in results] == looks and len(looks) >= 5
    for result in results:
        clip = SCENES_SET.clip(result.scene)
        assert result.instruction == clip.instruction
        assert parse_instruction(result.swapped).target == lookalike_of(clip).identity
        assert result.naming_target == "the named one"
        assert result.naming_lookalike in ("the named one", "neither")  # the border may stop it
    assert sum(r.naming_lookalike == "the named one" for r in results) >= len(results) - 1
    assert sum(r.same_object_moved for r in results) <= 1


def test_a_model_that_ignores_the_text_is_counted_shape_blind():
    results = shape_swap(ignoring_the_text, SCENES)
    assert all(r.naming_target == "the named one" for r in results)
    assert all(r.naming_lookalike == "the other one" for r in results)
    assert all(r.same_object_moved for r in results)
    table = summary(results)
    assert f"| the scene's target | {len(results)} | 0 | 0 | 0 |" in table
    assert f"| its look-alike | 0 | {len(results)} | 0 | 0 |" in table
    assert f"whichever was named: {len(results)} of {len(results)}" in table
    assert len(OUTCOMES) == 4
