"""Per-sample random streams derived from (seed, step, micro-step, sample index, stream).

Every random draw of a training step (σ, ε, condition dropout, cond_aug and its pixel
noise) comes from a generator seeded by what identifies the draw, not from a global RNG
state. So a resumed run draws exactly what the uninterrupted run drew, and a sample gets
the same noise whichever rank holds it: N processes with batch b reproduce one process
with batch N·b.
"""

from __future__ import annotations

import numpy as np
import torch

# Stream ids: independent sequences for the same sample.
NOISE_STREAM = 0  # condition dropout, σ, ε
AUGMENT_STREAM = 1  # cond_aug value and its pixel noise
CACHE_STREAM = 2  # the cond_aug pixel noise frozen into cached reference latents


def sample_generator(seed: int, step: int, micro_step: int, index: int,
                     stream: int) -> torch.Generator:
    """A CPU generator for one sample's draws of one (micro-)step."""
    words = np.random.SeedSequence([seed, step, micro_step, index, stream]).generate_state(
        2, np.uint32)
    value = (int(words[0]) << 32 | int(words[1])) & ((1 << 63) - 1)
    return torch.Generator().manual_seed(value)
