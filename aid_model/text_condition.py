"""The DQFormer's text inputs: e_t from the instruction, e_s from the S future states.

One place for what training and prediction must agree on: how a state list is fitted to
the model's S, what stands in when there are no states, and what the null text (the
text branch of classifier-free guidance, and text dropout in training) is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from torch import Tensor

from aid_model.states.parser import resample_states

logger = logging.getLogger(__name__)

NULL_TEXT = ""  # the null text condition: empty instruction and empty states
_WARNED_COUNTS: set[tuple[int, int]] = set()  # (given, wanted): warn once each, not per sample


def fit_states(states: Sequence[str] | None, num_states: int, instruction: str) -> list[str]:
    """Exactly ``num_states`` states.

    No states (None or empty) → the instruction repeated (paper: "else the instruction
    alone"); more or fewer than S → evenly spread with first and last kept, or repeated,
    with a logged warning.
    """
    cleaned = [s.strip() for s in (states or []) if s and s.strip()]
    if not cleaned:
        return [instruction] * num_states
    fitted, warning = resample_states(cleaned, num_states)
    counts = (len(cleaned), num_states)
    if warning and counts not in _WARNED_COUNTS:
        _WARNED_COUNTS.add(counts)
        logger.warning("states for %r: %s (said once for every list of %d states)",
                       instruction, warning, len(cleaned))
    return fitted


def encode_text_condition(
    text_encoder,
    instructions: Sequence[str],
    states: Sequence[Sequence[str] | None],
    num_states: int,
) -> tuple[Tensor, Tensor]:
    """(e_t, e_s) for a batch, in one text-encoder call.

    Returns:
        e_t: (B, 77, d) penultimate-layer instruction embeddings.
        e_s: (B, S·77, d) the S state embeddings concatenated on the token axis.
    """
    if len(instructions) != len(states):
        raise ValueError(f"{len(instructions)} instructions but {len(states)} state lists")
    fitted = [fit_states(s, num_states, i) for i, s in zip(instructions, states, strict=True)]
    texts = list(instructions) + [text for group in fitted for text in group]
    encoded = text_encoder.encode(texts)
    batch = len(instructions)
    instruction_embeddings = encoded[:batch]
    state_embeddings = encoded[batch:].reshape(batch, num_states * encoded.shape[1], -1)
    return instruction_embeddings, state_embeddings


def null_text_condition(text_encoder, batch: int, num_states: int) -> tuple[Tensor, Tensor]:
    """(e_t, e_s) of the null text: empty instruction and S empty states (B rows)."""
    encoded = text_encoder.encode([NULL_TEXT])  # (1, 77, d): the same row for every item
    e_t = encoded.expand(batch, -1, -1)
    e_s = encoded.repeat(1, num_states, 1).expand(batch, -1, -1)
    return e_t.contiguous(), e_s.contiguous()
