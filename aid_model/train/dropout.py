"""InstructPix2Pix-style condition dropout, so the dual-CFG null branches are learned.

Per sample, one uniform u decides: u < p_text drops the text only; then p_frame the frame
only; then p_both both (aid-method.md §6; 5 % each by default). What "dropped" means is
the prediction pipeline's null condition, so training learns exactly the branches that
``DualCFG`` evaluates:

- dropped frame: zero CLIP image token and zero concat latents (SVD's unconditional);
- dropped text: MCondition built from the null text (empty instruction and S empty
  states, ``aid_model.text_condition.null_text_condition``).

e_v (the DQFormer's view of the first frame) is kept in every case, as the pipeline's null
branches keep it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class DropoutRates:
    """Probabilities of the three disjoint events (sum ≤ 1)."""

    text: float = 0.05
    frame: float = 0.05
    both: float = 0.05

    def decide(self, u: float) -> tuple[bool, bool]:
        """(drop_text, drop_frame) for a uniform draw u in [0, 1)."""
        if u < self.text:
            return True, False
        if u < self.text + self.frame:
            return False, True
        if u < self.text + self.frame + self.both:
            return True, True
        return False, False


def _where(mask: Tensor, replacement: Tensor, value: Tensor) -> Tensor:
    """Rows of ``value`` where ``mask`` (B,) is set, replaced by ``replacement``."""
    shape = (-1,) + (1,) * (value.ndim - 1)
    return torch.where(mask.to(value.device).reshape(shape),
                       replacement.to(value.device, value.dtype), value)


def drop_text_condition(drop_text: Tensor, instruction_embeddings: Tensor,
                        state_embeddings: Tensor, null_instruction: Tensor,
                        null_states: Tensor) -> tuple[Tensor, Tensor]:
    """(e_t, e_s) with the rows of dropped samples replaced by the null text.

    Args:
        drop_text: (B,) bool.
        instruction_embeddings: e_t (B, 77, d); state_embeddings: e_s (B, S·77, d).
        null_instruction: (77, d) or (1, 77, d); null_states: (S·77, d) or (1, S·77, d).
    """
    e_t = _where(drop_text, null_instruction.reshape(1, *instruction_embeddings.shape[1:]),
                 instruction_embeddings)
    e_s = _where(drop_text, null_states.reshape(1, *state_embeddings.shape[1:]),
                 state_embeddings)
    return e_t, e_s


def drop_frame_condition(drop_frame: Tensor, image_embeddings: Tensor,
                         concat_latents: Tensor) -> tuple[Tensor, Tensor]:
    """(CLIP image token (B, 1, d), concat latents (B, T, C, h, w)) with the dropped
    samples' rows zeroed, as SVD's unconditional branch."""
    zero = torch.zeros(())
    return (_where(drop_frame, zero, image_embeddings),
            _where(drop_frame, zero, concat_latents))
