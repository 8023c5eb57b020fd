"""The VAE check's background mask and object count (lab.miniature.vae_check)."""

from __future__ import annotations

import numpy as np

from aid_model.synthetic import SyntheticClipDataset
from lab.miniature.vae_check import background_mask, objects_found


def test_background_mask_keeps_a_margin_around_every_object_of_every_frame():
    frames = np.full((2, 16, 16, 3), 200, dtype=np.uint8)
    frames[0, 4, 4] = (255, 0, 0)
    frames[1, 12, 12] = (0, 0, 255)
    mask = background_mask(frames, (200, 200, 200), margin=2)
    assert not mask[2:7, 2:7].any() and not mask[10:15, 10:15].any()
    assert mask[0, 15] and mask[8, 8] and mask[15, 0]
    assert mask.sum() == 16 * 16 - 2 * 25


def test_every_object_is_found_in_its_own_frame_and_not_in_an_empty_one():
    dataset = SyntheticClipDataset(3, split="heldout", palette="varied")
    for index in range(3):
        frame = dataset.clip(index).frames[-1]
        found, total = objects_found(frame, frame, dataset.config)
        assert total >= 1 and found == total
        empty = np.broadcast_to(frame[:1, :1], frame.shape).copy()
        assert objects_found(frame, empty, dataset.config) == (0, total)
