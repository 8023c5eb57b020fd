"""States of the synthetic world and the prompter that stands in for the VLM."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aid_model.states import StateCache, StateSample, annotate
from aid_model.synthetic import (
    SceneObject,
    SyntheticStatePrompter,
    WorldConfig,
    describe_position,
    generate_clip,
    render_frame,
    split_words,
    state_frames,
    trajectory_states,
    vocabulary,
)

CONFIG = WorldConfig()


@pytest.fixture(scope="module")
def clips():
    return [generate_clip(seed) for seed in range(200)]


def test_state_frames_are_evenly_spaced():
    assert state_frames(8, 4) == [0, 2, 5, 7]
    assert state_frames(8, 2) == [0, 7]
    assert state_frames(8, 1) == [7]  # one state: the goal
    assert state_frames(8, 8) == list(range(8))
    with pytest.raises(ValueError, match="num_states"):
        state_frames(8, 0)


@pytest.mark.parametrize(
    ("x", "y", "where"),
    [
        (32, 32, "near the centre"),
        (10, 32, "on the left"),
        (54, 10, "in the top right"),
        (32, 52, "near the bottom"),
        (6, 32, "at the left edge"),
        (6, 12, "at the left edge, near the top"),
        (32, 58, "at the bottom edge"),
        (58, 58, "in the bottom right corner"),
    ],
)
def test_positions_in_words(x, y, where):
    assert describe_position(SceneObject("red", "circle", 12, x, y), CONFIG) == where


def test_states_follow_the_clip(clips):
    for clip in clips:
        obj = clip.objects[clip.target]
        assert len(clip.states) == 4
        assert all(state.startswith(f"the {obj.name} ") for state in clip.states)
        start = describe_position(obj, CONFIG)
        end = describe_position(obj.at(*clip.trajectory[-1, clip.target]), CONFIG)
        direction = clip.command.direction
        assert clip.states[0] == f"the {obj.name} is {start}"
        assert clip.states[-1] == f"the {obj.name} has moved {direction} and is {end}"
        for state in clip.states[1:-1]:
            assert f"moves {direction}, now " in state or "stops" in state


def test_states_say_when_the_border_stops_the_object():
    obj = SceneObject("blue", "square", 12, 14.0, 32.0)  # 8 px from the left border
    path = np.array([[max(6.0, 14.0 - 4 * t), 32.0] for t in range(8)])
    states = trajectory_states(obj, path, 4, CONFIG)
    assert states == [
        "the blue square is on the left",
        "the blue square moves left, now at the left edge",
        "the blue square stops at the left edge",
        "the blue square has moved left and is at the left edge",
    ]
    assert len(trajectory_states(obj, path, 6, CONFIG)) == 6
    assert trajectory_states(obj, path, 1, CONFIG) == [states[-1]]


def test_prompter_recovers_the_clip_states_from_the_first_frame(clips):
    # Told the clip's own distance, it must write exactly the ground-truth states: the
    # detector found every object, its size and place, from the pixels alone.
    for clip in clips:
        prompter = SyntheticStatePrompter(travel=clip.travel)
        assert prompter.predict_states(clip.frames[0], clip.instruction) == [clip.states]


def test_prompter_has_the_vlm_prompter_interface(clips, tmp_path):
    prompter = SyntheticStatePrompter()  # imagines the typical 18-px move
    frames = [clip.frames[0] for clip in clips[:3]]
    instructions = [clip.instruction for clip in clips[:3]]
    states = prompter.predict_states(frames, instructions, num_states=4)
    assert len(states) == 3 and all(len(s) == 4 for s in states)
    for clip, written in zip(clips[:3], states, strict=True):
        assert written[0] == clip.states[0]  # the initial state needs no guess
    # Paths, PIL images and (frames, H, W, C) batches, S of any size, like StatePrompter.
    path = tmp_path / "first.png"
    Image.fromarray(frames[0]).save(path)
    assert prompter.predict_states(path, instructions[0], 6) == prompter.predict_states(
        Image.open(path), instructions[0], 6
    )
    assert len(prompter.predict_states(np.stack(frames), instructions)) == 3
    with pytest.raises(ValueError, match="3 images but 2 instructions"):
        prompter.predict_states(frames, instructions[:2])

    cache = StateCache(tmp_path / "states.jsonl")
    samples = [
        StateSample(frame, text, f"clip{i}")
        for i, (frame, text) in enumerate(zip(frames, instructions, strict=True))
    ]
    result = annotate(prompter, samples, cache, progress=False)
    assert [row.states for row in result.rows] == states
    assert result.generated == 3 and result.fallbacks == 0


def test_prompter_falls_back_to_the_instruction():
    prompter = SyntheticStatePrompter()
    frame = render_frame([SceneObject("red", "circle", 12, 32.0, 32.0)], CONFIG)
    for instruction, why in (
        ("move the green circle left", "0 green circle"),
        ("move the red circle", "no direction"),
    ):
        (prediction,) = prompter.predict(frame, instruction, 4)
        assert prediction.states == [instruction] * 4 and prediction.used_fallback
        assert why in prediction.warnings[0]


def test_vocabulary_holds_every_generated_word(clips):
    words = set(vocabulary())
    border = trajectory_states(
        SceneObject("blue", "square", 12, 14.0, 58.0),
        np.array([[max(6.0, 14.0 - 4 * t), 58.0] for t in range(8)]),
        4,
        CONFIG,
    )
    texts = [text for clip in clips for text in (clip.instruction, *clip.states)] + border
    used = {word for text in texts for word in split_words(text)}
    assert used <= words, used - words
    assert len(words) < 60  # a word-level tokenizer's whole vocabulary
    assert split_words("Push the red circle, now!") == [
        "push",
        "the",
        "red",
        "circle",
        ",",
        "now",
        "!",
    ]
