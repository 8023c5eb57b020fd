"""Building and feeding models on fake tensors (``FakeTensorMode``: shapes and dtypes only,
no memory, no arithmetic), for counting FLOPs and memory at sizes no machine here could
hold. The inputs are random tensors of a benchmark config's clip, real or fake as the mode
in force makes them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import torch
from torch import Tensor

from lab.perf.models import BenchConfig


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


def unet_inputs(config: BenchConfig, batch: int = 1) -> dict:
    """Keyword arguments of one SVD UNet call on ``config``'s clip, ``batch`` items."""
    return {"sample": torch.randn(batch, config.frames, 8, *config.latent_size),
            "timestep": torch.ones(batch),
            "encoder_hidden_states": torch.randn(batch, 1, config.unet["cross_attention_dim"]),
            "added_time_ids": torch.randn(batch, 3), "return_dict": False}


def dqformer_inputs(config: BenchConfig) -> tuple[Tensor, Tensor, Tensor]:
    """(e_t (1, 77, d), e_s (1, S·77, d), e_v (1, tokens, d_v)): what ``build_mcondition``
    takes for one clip; e_v has the CLIP tower's patch tokens plus its class token."""
    width = config.unet["cross_attention_dim"]
    image = config.image_encoder
    image_tokens = (image["image_size"] // image["patch_size"]) ** 2 + 1
    return (torch.randn(1, 77, width), torch.randn(1, config.aid.num_states * 77, width),
            torch.randn(1, image_tokens, image["projection_dim"]))


def aid_unet_output(model, config: BenchConfig) -> Tensor:
    """AID's UNet output for one clip with the DQFormer run in the call (a training step's
    forward): (1, T, 4, h, w)."""
    mcondition = model.build_mcondition(*dqformer_inputs(config))
    return model.unet(**unet_inputs(config), mcondition=mcondition)[0]
