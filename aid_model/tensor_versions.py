"""Whether a tensor was modified in place: what caches keyed on a tensor must check."""

from __future__ import annotations

from torch import Tensor


def modification_count(tensor: Tensor) -> int | None:
    """The in-place modification counter (``_version``); None for inference tensors, which
    have none (and which only code inside inference mode could modify)."""
    return None if tensor.is_inference() else tensor._version
