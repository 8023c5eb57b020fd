"""The VAE check's object count (lab.miniature.vae_check)."""

from __future__ import annotations

import numpy as np

from aid_model.synthetic import SyntheticClipDataset
from lab.miniature.vae_check import objects_found


def test_every_object_is_found_in_its_own_frame_and_not_in_an_empty_one():
    dataset = SyntheticClipDataset(3, split="heldout", palette="varied")
    for index in range(3):
        frame = dataset.clip(index).frames[-1]
        found, total = objects_found(frame, frame, dataset.config)
        assert total >= 1 and found == total
        empty = np.broadcast_to(frame[:1, :1], frame.shape).copy()
        assert objects_found(frame, empty, dataset.config) == (0, total)
