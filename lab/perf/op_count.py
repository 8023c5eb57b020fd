"""Counting the operations a call dispatches that launch work on a device.

On a GPU that a call cannot fill (svd_xt's UNet at 256×256 and 16 frames on an H200: a
batch-3 call took as long as a batch-2 one, docs/performance.md §9), time follows the number
of kernels launched rather than their FLOPs. This counts aten operations as dispatched,
leaving out views (``OpOverload.is_view``, and ``_unsafe_view``, which its schema does not
mark: a new shape over the same storage, no kernel) and non-aten bookkeeping
(``prim.device`` and the like). One operation is about one kernel; a
fused or decomposed one may launch a few, so the count is a proxy, for comparing calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

NOT_KERNELS = frozenset({"aten._unsafe_view", "aten.lift_fresh"})


class KernelOpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched inside it that are not views, by name."""

    def __init__(self):
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if func.namespace == "aten" and not func.is_view and name not in NOT_KERNELS:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


def count_kernel_ops(run: Callable[[], object]) -> Counter[str]:
    """Operations that launch work in ``run()`` (no gradients), by aten name."""
    with torch.no_grad(), KernelOpCounter() as counter:
        run()
    return counter.counts


def total_kernel_ops(run: Callable[[], object]) -> int:
    """All operations that launch work in ``run()``."""
    return sum(count_kernel_ops(run).values())
