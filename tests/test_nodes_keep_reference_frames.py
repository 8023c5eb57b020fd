"""AID Keep Reference Frames puts the K given frames back as the library does (no ComfyUI
needed: the node reads and writes plain IMAGE tensors)."""

from __future__ import annotations

import pytest
import torch
from test_nodes_support import image, node

from aid_model.images import prepare_frames
from aid_model.pipeline.pipeline import keep_reference_frames

FRAMES, SIZE = 6, 16


def decoded(videos: int = 1) -> torch.Tensor:
    return image(videos * FRAMES, SIZE, SIZE, seed=5)


def test_the_given_frames_replace_the_first_k_as_the_library_puts_them_back() -> None:
    reference = image(2, 24, 20, seed=1)  # resized to cover 16×16 and centre-cropped
    prepared = prepare_frames(list(reference.movedim(-1, 1)), SIZE, SIZE)
    video = decoded()
    (kept,) = node("AIDKeepReferenceFrames").keep(video, reference)
    assert torch.equal(kept, keep_reference_frames(video[None], [prepared])[0])
    assert torch.equal(kept[2:], video[2:]) and not torch.equal(kept[:2], video[:2])
    assert torch.equal(video, decoded())  # the input IMAGE is not changed


def test_each_video_of_a_batch_gets_the_given_frames() -> None:
    reference = image(1, SIZE, SIZE, seed=2)
    videos = decoded(3)
    (kept,) = node("AIDKeepReferenceFrames").keep(videos, reference, FRAMES)
    expected = keep_reference_frames(videos.reshape(3, FRAMES, SIZE, SIZE, 3),
                                     [reference.movedim(-1, 1)] * 3)
    assert torch.equal(kept, torch.cat(expected))


def test_counts_that_do_not_fit_are_refused_naming_the_input() -> None:
    keep = node("AIDKeepReferenceFrames").keep
    with pytest.raises(ValueError, match=r"^input 'video_frames' = 4: the images hold 6 "
                                         r"frames, which is not a whole number of 4-frame"):
        keep(decoded(), image(1), 4)
    with pytest.raises(ValueError, match=r"^input 'reference_frames' = '6 frames': each video "
                                         r"has 6 frames, and at least one must be predicted"):
        keep(decoded(), image(FRAMES))
