"""The synthetic world's object detector and the direction-accuracy criterion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aid_model.synthetic import (
    SyntheticClipDataset,
    WorldConfig,
    check_direction,
    detect_objects,
    direction_accuracy,
    direction_accuracy_batch,
    generate_clip,
    render_frame,
)
from aid_model.synthetic.accuracy import FAILURES
from aid_model.synthetic.scene import SceneObject, centroid_offset

CONFIG = WorldConfig()


@pytest.fixture(scope="module")
def clips():
    return [generate_clip(seed) for seed in range(120)]


def _soften(frame: np.ndarray) -> np.ndarray:
    """A generated-looking frame: Gaussian blur (σ = 1 px) and noise, as a decoder might give."""
    taps = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    taps /= taps.sum()
    image = frame.astype(float)
    for axis in (0, 1):
        padded = np.pad(image, [(3, 3) if a == axis else (0, 0) for a in range(3)], mode="edge")
        image = sum(w * np.take(padded, range(i, i + 64), axis=axis) for i, w in enumerate(taps))
    noise = np.random.default_rng(0).normal(0, 6, image.shape)
    return np.rint(image + noise).clip(0, 255).astype(np.uint8)


def test_detector_recovers_every_object_exactly(clips):
    for clip in clips:
        for frame_index in (0, 4, 7):  # whole-pixel first frames and sub-pixel positions
            found = detect_objects(clip.frames[frame_index])
            truth = sorted(
                (obj.at(*clip.trajectory[frame_index, i]) for i, obj in enumerate(clip.objects)),
                key=lambda obj: obj.identity,
            )
            assert [obj.identity for obj in found] == [obj.identity for obj in truth]
            for detected, obj in zip(found, truth, strict=True):
                dx, dy = centroid_offset(obj.shape, obj.size)
                assert detected.x == pytest.approx(obj.x + dx, abs=0.1)
                assert detected.y == pytest.approx(obj.y + dy, abs=0.1)
                assert round(detected.size) == obj.size
                assert detected.as_scene_object().identity == obj.identity


def test_detector_tells_same_colour_objects_apart():
    objects = [
        SceneObject("blue", "circle", 12, 14.0, 14.0),
        SceneObject("blue", "square", 12, 30.0, 14.0),  # 4 px from the circle's box
        SceneObject("blue", "triangle", 12, 14.0, 40.0),
    ]
    found = detect_objects(render_frame(objects, CONFIG))
    assert [(obj.shape, round(obj.x), round(obj.y)) for obj in found] == [
        ("circle", 14, 14),
        ("square", 30, 14),
        ("triangle", 14, 42),
    ]


def test_detector_accepts_tensors_and_float_ranges(clips):
    frame = clips[0].frames[0]
    expected = detect_objects(frame)
    as_unit = torch.from_numpy(frame).permute(2, 0, 1).float() / 255
    assert detect_objects(as_unit) == expected  # (3, H, W) in [0, 1]
    assert detect_objects(as_unit * 2 - 1, value_range=(-1, 1)) == expected
    with pytest.raises(ValueError, match="one RGB frame"):
        detect_objects(clips[0].frames)


def test_detector_tolerates_blur_and_noise(clips):
    right = 0
    for clip in clips[:60]:
        found = detect_objects(_soften(clip.frames[-1]))
        truth = sorted(obj.identity for obj in clip.objects)
        right += [obj.identity for obj in found] == truth
    assert right >= 55


def test_accuracy_is_true_on_ground_truth(clips):
    checks = [check_direction(c.frames[0], c.frames[-1], c.instruction) for c in clips]
    assert all(check.passed for check in checks), [c.reason for c in checks if not c.passed]
    assert min(check.moved for check in checks) >= 6  # min_room keeps every move visible


def test_accuracy_is_false_on_reversed_static_and_vanished_clips(clips):
    for clip in clips[:60]:
        first, last = clip.frames[0], clip.frames[-1]
        assert not direction_accuracy(last, first, clip.instruction)  # played backwards
        assert not direction_accuracy(first, first, clip.instruction)  # nothing moves
        vanished = check_direction(first, _blank(), clip.instruction)  # objects vanish
        assert not vanished.passed and len(vanished.lost) == len(clip.objects)


def test_accuracy_is_false_when_another_object_moves():
    still = SceneObject("green", "square", 12, 50.0, 50.0)
    mover = SceneObject("red", "circle", 12, 30.0, 20.0)
    first = render_frame([mover, still], CONFIG)
    moved = mover.at(20.0, 20.0)
    assert direction_accuracy(
        first, render_frame([moved, still], CONFIG), "move the red circle left"
    )
    assert direction_accuracy(
        first, render_frame([moved, still.at(48.0, 50.0)], CONFIG), "move the red circle left"
    )  # 2 px is "still"
    check = check_direction(
        first, render_frame([moved, still.at(50.0, 46.0)], CONFIG), "move the red circle left"
    )
    assert not check.passed and check.largest_other_move == pytest.approx(4.0, abs=0.05)
    # 3.5 px in the right direction is too small a move; 4.5 px is enough.
    assert not direction_accuracy(
        first, render_frame([mover.at(26.5, 20.0), still], CONFIG), "move the red circle left"
    )
    assert direction_accuracy(
        first, render_frame([mover.at(25.5, 20.0), still], CONFIG), "move the red circle left"
    )
    # The instruction must name an object of the first frame.
    assert not direction_accuracy(first, first, "move the blue circle left")


def test_each_failure_has_one_kind():
    """The benchmark counts failures by kind: lost, short (or wrong-way) move, another object
    moved, no target; checked in that order, so a clip that loses an object counts as lost."""
    still = SceneObject("green", "square", 12, 50.0, 50.0)
    mover = SceneObject("red", "circle", 12, 30.0, 20.0)
    first = render_frame([mover, still], CONFIG)
    instruction = "move the red circle left"

    def kind(objects, text=instruction):
        return check_direction(first, render_frame(objects, CONFIG), text).failure

    assert kind([mover.at(20.0, 20.0), still]) is None
    assert kind([mover.at(20.0, 20.0)]) == "lost"
    assert kind([mover.at(40.0, 20.0), still]) == "short move"  # the wrong way
    assert kind([mover, still]) == "short move"  # not at all
    assert kind([mover.at(20.0, 20.0), still.at(50.0, 40.0)]) == "other moved"
    assert kind([mover, still], "move the blue circle left") == "no target"
    assert set(FAILURES) == {"no target", "lost", "short move", "other moved"}


def test_each_verdict_counts_the_objects_kept_by_the_last_frame():
    """The benchmark's per-object share of objects kept: every verdict counts the objects of
    the first frame and how many of them the last frame still has."""
    still = SceneObject("green", "square", 12, 50.0, 50.0)
    mover = SceneObject("red", "circle", 12, 30.0, 20.0)
    other = SceneObject("blue", "triangle", 12, 10.0, 50.0)
    first = render_frame([mover, still, other], CONFIG)
    instruction = "move the red circle left"

    def counts(objects, text=instruction):
        check = check_direction(first, render_frame(objects, CONFIG), text)
        return check.first_objects, check.kept_objects

    assert counts([mover.at(20.0, 20.0), still, other]) == (3, 3)  # passes
    assert counts([mover.at(20.0, 20.0), other]) == (3, 2)  # lost the square
    assert counts([mover, still, other]) == (3, 3)  # a short move keeps them all
    assert counts([still], "move the blue circle left") == (3, 1)  # no target: still counted
    assert counts([]) == (3, 0)


def test_accuracy_batch_on_dataset_samples():
    dataset = SyntheticClipDataset(6, split="heldout")
    samples = [dataset[i] for i in range(len(dataset))]
    firsts = torch.stack([sample["frames"][0] for sample in samples])  # (B, 3, H, W) in [−1, 1]
    lasts = torch.stack([sample["frames"][-1] for sample in samples])
    instructions = [sample["instruction"] for sample in samples]
    assert direction_accuracy_batch(firsts, lasts, instructions, value_range=(-1, 1)) == [True] * 6
    assert direction_accuracy_batch(lasts, firsts, instructions, value_range=(-1, 1)) == [False] * 6
    with pytest.raises(ValueError, match="one of each"):
        direction_accuracy_batch(firsts, lasts[:2], instructions)


def test_accuracy_pairs_a_misread_shape_by_its_colour():
    # A blurred generated square can read as a circle; with one red object it still pairs.
    first = render_frame([SceneObject("red", "square", 14, 32.0, 32.0)], CONFIG)
    last = render_frame([SceneObject("red", "circle", 15, 32.0, 24.0)], CONFIG)
    assert direction_accuracy(first, last, "push the red square up")


def _blank() -> np.ndarray:
    return render_frame([], CONFIG)
