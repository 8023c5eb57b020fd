"""Learning-rate schedule: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine_factor(step: int, warmup_steps: int, max_steps: int,
                         min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based).

    Steps 0 … warmup−1 ramp linearly from 1/warmup to 1 (step 0 already moves the
    weights); the remaining steps follow half a cosine from 1 down to ``min_ratio``,
    reached at ``max_steps``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int,
                           max_steps: int, min_ratio: float = 0.0) -> LambdaLR:
    """A ``LambdaLR`` applying ``warmup_cosine_factor``; call ``step()`` after each
    optimizer step. Its state (``state_dict``) is the step count only."""
    return LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, warmup_steps, max_steps, min_ratio)
    )
