"""Building models on fake tensors (``FakeTensorMode``: shapes and dtypes only, no memory,
no arithmetic), for counting FLOPs and memory at sizes no machine here could hold."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import torch


@contextlib.contextmanager
def no_op_casts_skipped() -> Iterator[None]:
    """``attach_aid`` casts its new modules to the UNet's dtype; on fake tensors a cast
    swaps parameters, which fake parameters refuse. A dtype-only cast of a module whose
    parameters all have that dtype already changes nothing, so it is skipped."""
    original = torch.nn.Module.to

    def to(module, *args, **kwargs):
        if (not args and kwargs.keys() == {"dtype"}
                and all(p.dtype == kwargs["dtype"] for p in module.parameters())):
            return module
        return original(module, *args, **kwargs)

    with mock.patch.object(torch.nn.Module, "to", to):
        yield
