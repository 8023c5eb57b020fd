"""The synthetic world's generator: deterministic, and its clips obey the world's rules."""

from __future__ import annotations

import numpy as np
import pytest

from aid_model.synthetic import (
    COLOURS,
    DIRECTIONS,
    SHAPES,
    TEMPLATES,
    SyntheticClip,
    WorldConfig,
    generate_clip,
    parse_instruction,
)
from aid_model.synthetic.motion import room
from aid_model.synthetic.scene import boxes_apart

CONFIG = WorldConfig()
SEEDS = range(300)


@pytest.fixture(scope="module")
def clips() -> list[SyntheticClip]:
    return [generate_clip(seed) for seed in SEEDS]


@pytest.fixture(scope="module")
def random_clips() -> list[SyntheticClip]:
    return [generate_clip(seed, random_motion=True) for seed in range(150)]


def test_same_seed_same_clip_and_different_seeds_differ():
    first, again = generate_clip(12), generate_clip(12)
    assert np.array_equal(first.frames, again.frames)
    assert first.instruction == again.instruction and first.states == again.states
    assert np.array_equal(first.trajectory, again.trajectory)
    others = [generate_clip(seed) for seed in (11, 13, 14)]
    assert all(not np.array_equal(first.frames, other.frames) for other in others)
    # The two modes draw from separate streams: the same seed gives different clips.
    assert not np.array_equal(first.frames, generate_clip(12, random_motion=True).frames)


def test_frames_are_64px_rgb_with_1_to_3_distinct_objects(clips):
    counts = set()
    for clip in clips:
        assert clip.frames.shape == (8, 64, 64, 3) and clip.frames.dtype == np.uint8
        identities = [obj.identity for obj in clip.objects]
        assert len(set(identities)) == len(identities), f"seed {clip.seed}: {identities}"
        counts.add(len(clip.objects))
        for obj in clip.objects:
            assert obj.colour in COLOURS and obj.shape in SHAPES
            assert 10 <= obj.size <= 16
    assert counts == {1, 2, 3}


def test_objects_stay_on_canvas_and_apart_at_every_frame(clips, random_clips):
    for clip in [*clips, *random_clips]:
        for step in clip.trajectory:
            boxes = [(x, y, obj.size) for obj, (x, y) in zip(clip.objects, step, strict=True)]
            for x, y, size in boxes:
                assert size / 2 - 1e-9 <= x <= 64 - size / 2 + 1e-9
                assert size / 2 - 1e-9 <= y <= 64 - size / 2 + 1e-9
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    assert boxes_apart(boxes[i], boxes[j], CONFIG.gap), f"seed {clip.seed}"


def test_pixels_are_background_or_a_blend_toward_one_exact_primary(clips):
    background = np.array(CONFIG.background, dtype=float)
    rows, cols = np.mgrid[0:64, 0:64] + 0.5
    for clip in clips[:60]:
        frame = clip.frames[-1]
        far = np.ones((64, 64), dtype=bool)
        for obj, (x, y) in zip(clip.objects, clip.trajectory[-1], strict=True):
            # Interiors carry the exact primary (a triangle's centroid is size/6 below centre).
            inside = (
                (int(y + obj.size / 6), int(x)) if obj.shape == "triangle" else (int(y), int(x))
            )
            assert tuple(frame[inside]) == COLOURS[obj.colour], f"seed {clip.seed}"
            reach = obj.size / 2 + 1
            far &= (np.abs(cols - x) > reach) | (np.abs(rows - y) > reach)
        assert (frame[far] == CONFIG.background).all()
        offsets = frame.reshape(-1, 3).astype(float) - background
        residuals = []
        for rgb in COLOURS.values():
            direction = np.array(rgb, dtype=float) - background
            blend = np.clip(offsets @ direction / (direction @ direction), 0, 1)
            residuals.append(np.linalg.norm(offsets - blend[:, None] * direction, axis=1))
        # Rounding to uint8 is the only departure from "background + a·(primary − background)".
        assert np.min(residuals, axis=0).max() < 1.0


def test_named_object_moves_as_instructed_and_the_others_stay(clips):
    stopped = 0
    for clip in clips:
        command = parse_instruction(clip.instruction)
        target = clip.objects[clip.target]
        assert target.identity == command.target
        step = np.array(DIRECTIONS[command.direction], dtype=float)
        path = clip.trajectory[:, clip.target]
        moves = path[1:] - path[:-1]
        along = moves @ step
        # Never sideways, never backwards; constant speed until the border stops it.
        assert np.allclose(moves - along[:, None] * step, 0)
        assert (along >= -1e-9).all()
        speed = clip.travel / 7
        moving = along > 1e-9
        assert np.allclose(along[moving][:-1], speed)
        total = float((path[-1] - path[0]) @ step)
        if total < clip.travel - 1e-9:
            stopped += 1
            assert room(target.at(*path[-1]), command.direction, CONFIG) == pytest.approx(0)
            assert total >= CONFIG.min_room
        else:
            assert 12 <= total <= 24
        others = np.delete(clip.trajectory, clip.target, axis=1)
        assert np.array_equal(others, np.repeat(others[:1], 8, axis=0))
    assert 0 < stopped < len(clips)  # both cases occur


def test_instructions_cover_the_grammar(clips):
    directions = {parse_instruction(clip.instruction).direction for clip in clips}
    verbs = {clip.instruction.split()[0] for clip in clips}
    assert directions == set(DIRECTIONS)
    assert verbs == {template.split()[0] for template in TEMPLATES}


def test_parser_reads_paraphrases_and_rejects_ambiguity():
    parsed = parse_instruction("Please slide the Yellow triangle to the left.")
    assert (parsed.colour, parsed.shape, parsed.direction) == ("yellow", "triangle", "left")
    assert parse_instruction("push the blue square upwards").direction == "up"
    for bad in ("move the circle left", "move the red circle", "move the red circle left, right"):
        with pytest.raises(ValueError, match="names"):
            parse_instruction(bad)


def test_random_motion_moves_objects_without_words(random_clips):
    moved = []
    for clip in random_clips:
        assert clip.instruction == "" and clip.states == [] and clip.command is None
        steps = np.linalg.norm(np.diff(clip.trajectory, axis=0), axis=2)
        assert (steps <= 24 / 7 + 1e-9).all()  # never faster than the fastest instructed move
        moved.append(np.linalg.norm(clip.trajectory[-1] - clip.trajectory[0], axis=1))
    # Most clips show a visible move (a mover can start against the border it heads for),
    # some show several objects moving, some show still objects beside moving ones.
    assert np.mean([m.max() > 4 for m in moved]) > 0.9
    several = [m for m in moved if len(m) >= 2]
    assert np.mean([(m > 4).sum() >= 2 for m in several]) > 0.2
    assert np.mean([(m == 0).any() for m in several]) > 0.2
