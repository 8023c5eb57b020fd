"""Training memory at any size without hardware: parameter states plus what autograd
keeps for the backward pass, counted on fake tensors.

A training step at batch 1 as the trainer runs it on a GPU (``runtime.mixed_precision:
bf16``): the forward under bfloat16 autocast; trained weights in float32 with AdamW; AID's
frozen base in bfloat16 (``model.dtype: bfloat16``), the whole-UNet fine-tune with every
weight in float32.

- **states**: a trained parameter costs 16 bytes (float32 weight, gradient and AdamW's two
  moments), a frozen one 2 bytes (bfloat16).
- **saved for backward**: every distinct storage autograd saves during the forward
  (``saved_tensors_hooks``), parameters excluded since they are states already: the
  activations, and autocast's bfloat16 copies of float32 weights. A frozen layer keeps
  less than a trained one: its input gradient needs the weight, not its input.

Their sum is what is resident when the backward starts: a lower bound of the step's
peak (the backward adds activation gradients for a while, the optimizer its temporaries).
On the ``tiny`` config the count on fake tensors equals the count on real ones
(``tests/test_bench.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import Tensor, nn

from aid_model.aid import attach_aid, trainable_parameters
from lab.perf.fake import aid_unet_output, no_op_casts_skipped, unet_inputs
from lab.perf.measure import table
from lab.perf.models import BenchConfig

GIB = 2**30
TRAINED_BYTES = 16  # float32 weight + gradient + AdamW's exp_avg and exp_avg_sq
FROZEN_BYTES = 2  # bfloat16


def saved_for_backward_bytes(run: Callable[[], object], parameters: Iterable[Tensor]) -> int:
    """Bytes of the distinct storages autograd saves while ``run()`` runs (under bfloat16
    autocast), storages of ``parameters`` excluded. A view counts its whole storage, once."""
    excluded = {p.untyped_storage()._cdata for p in parameters}
    storages: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in excluded:
            storages[storage._cdata] = storage.nbytes()
        return tensor

    with (torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor),
          torch.autocast("cpu", dtype=torch.bfloat16)):
        run()
    return sum(storages.values())


@dataclass(frozen=True)
class TrainingMemory:
    """One variant's count, in bytes."""

    trained_parameters: int
    frozen_parameters: int
    saved_for_backward: int

    @property
    def states(self) -> int:
        return TRAINED_BYTES * self.trained_parameters + FROZEN_BYTES * self.frozen_parameters

    @property
    def total(self) -> int:
        return self.states + self.saved_for_backward


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _set_dtype(parameters: Iterable[nn.Parameter], dtype: torch.dtype) -> None:
    # ``.data`` assignment, not ``Module.to``: fake parameters refuse being swapped.
    for parameter in parameters:
        parameter.data = parameter.data.to(dtype)


def count_training_memory(config: BenchConfig, fake: bool = True
                          ) -> dict[str, TrainingMemory]:
    """{"whole UNet", "AID trainable set"}: each variant's count at batch 1 for ``config``'s
    clip size. ``fake=False`` runs the forwards on real tensors (small configs only)."""
    from diffusers import UNetSpatioTemporalConditionModel
    from torch._subclasses.fake_tensor import FakeTensorMode

    from aid_model.svd.build import restore_original_unet_norms

    mode = FakeTensorMode() if fake else contextlib.nullcontext()
    with torch.random.fork_rng(), mode, no_op_casts_skipped():  # the caller's RNG untouched
        with _default_dtype(torch.bfloat16):
            unet = UNetSpatioTemporalConditionModel(**config.unet).train()
        restore_original_unet_norms(unet)
        parameters = list(unet.parameters())
        _set_dtype(parameters, torch.float32)
        whole = TrainingMemory(
            trained_parameters=sum(p.numel() for p in parameters), frozen_parameters=0,
            saved_for_backward=saved_for_backward_bytes(lambda: unet(**unet_inputs(config)),
                                                        parameters))
        _set_dtype(parameters, torch.bfloat16)
        with _default_dtype(torch.bfloat16):  # AID's modules are built in the base's dtype
            model = attach_aid(SimpleNamespace(unet=unet), config.aid)
        model.train()
        trained = list(trainable_parameters(model).values())
        _set_dtype(trained, torch.float32)
        every = {id(p): p for p in [*model.parameters(), *unet.parameters()]}
        trained_count = sum(p.numel() for p in trained)
        aid = TrainingMemory(
            trained_parameters=trained_count,
            frozen_parameters=sum(p.numel() for p in every.values()) - trained_count,
            saved_for_backward=saved_for_backward_bytes(lambda: aid_unet_output(model, config),
                                                        every.values()))
    return {"whole UNet": whole, "AID trainable set": aid}


def training_memory_table(config: BenchConfig) -> str:
    """The counted table for ``config`` (see the module docstring)."""
    counts = count_training_memory(config)
    whole = counts["whole UNet"]

    def gib(value: int) -> str:
        return f"{value / GIB:,.2f} GiB"

    rows = [[name, f"{count.trained_parameters:,}", f"{count.frozen_parameters:,}",
             gib(count.states), gib(count.saved_for_backward), gib(count.total),
             f"{count.total / whole.total:.3f}×"] for name, count in counts.items()]
    return table(
        f"Training memory at batch 1, bf16 autocast, resident when the backward starts "
        f"(counted on fake tensors; {config.frames} frames {config.height}x{config.width})",
        ["trained", "trained parameters (16 B)", "frozen parameters (2 B)", "states",
         "saved for backward", "sum", "× whole UNet"], rows)
