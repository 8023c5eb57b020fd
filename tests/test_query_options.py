"""What every optional addition to the MCondition query owes (``query_neighbourhood``,
``first_frame_query``, ``query_position``): a fresh model is SVD bit for bit, the new
tensors train once the branch is open, and weight files keep them and refuse a model
without them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from test_aid_model import (
    BATCH,
    CONFIG,
    FRAMES,
    WIDTH,
    aid_output,
    text_inputs,
    tiny_components,
    video_inputs,
)
from tiny_models import open_gates

from aid_model.aid import AIDConfig, attach_aid, parameter_groups
from aid_model.aid.mcondition_attention import MConditionAttnProcessor
from aid_model.aid.weights import AIDWeightsError, load_aid_weights, save_aid_weights
from aid_model.sampling import VideoCondition, VideoDenoiser


@dataclass(frozen=True)
class QueryOption:
    field: str
    value: int
    names: tuple[str, ...]  # name parts of its tensors in parameter_groups
    opened: tuple[str, ...]  # of those, the zero-initialised ones to open in tests
    tensors_per_processor: int
    shared_tensors: int  # outside the processors (the first-frame encoder's)

    @property
    def config(self) -> AIDConfig:
        return AIDConfig(**{**CONFIG.__dict__, self.field: self.value})


OPTIONS = [
    QueryOption("query_neighbourhood", 3, (".query_neighbourhood.",),
                (".query_neighbourhood.",), 2, 0),
    QueryOption("first_frame_query", 8, (".first_frame_query.", "first_frame_encoder."),
                (".first_frame_query.",), 2, 6),
    QueryOption("query_position", 3, (".query_position.",), (".query_position.",), 2, 0),
]


def option_tensors(model, option: QueryOption) -> dict[str, torch.nn.Parameter]:
    groups = parameter_groups(model)
    return {name: p for group in ("mcondition_attention", "first_frame_encoder")
            for name, p in groups[group].items() if any(part in name for part in option.names)}


def open_option(model, option: QueryOption, seed: int = 4) -> None:
    """Gives the option's zero-initialised tensors small random values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in option_tensors(model, option).items():
            if any(part in name for part in option.opened):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)


def opened_model(option: QueryOption):
    model = attach_aid(tiny_components(), option.config)
    open_gates(model)
    open_option(model, option)
    return model


def non_square_inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x (B, T, 4, 8, 12), sigma (B,), a first-frame latent (B, 1, 4, 8, 12)): a frame that
    is not square, so that a swapped (h, w) would show."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, FRAMES, 4, 8, 12, generator=generator)
    first = torch.randn(BATCH, 1, 4, 8, 12, generator=generator)
    return x, torch.tensor([0.7, 12.0]), first


def condition_with_first_frame(model, first: torch.Tensor) -> VideoCondition:
    """The model's MCondition for seeded text, with ``first`` (B, 1, C, h, w) as the concat
    latent of every frame."""
    generator = torch.Generator().manual_seed(3)
    mcondition = model.build_mcondition(**text_inputs(2, model.config))
    return VideoCondition(torch.randn(BATCH, 1, WIDTH, generator=generator),
                          first.repeat(1, FRAMES, 1, 1, 1),
                          torch.tensor([[6.0, 127.0, 0.02]] * BATCH), mcondition)


OPTION_IDS = [option.field for option in OPTIONS]
each_option = pytest.mark.parametrize("option", OPTIONS, ids=OPTION_IDS)


@each_option
@torch.no_grad()
def test_a_fresh_model_with_the_option_is_bit_identical_to_svd(option):
    components = tiny_components()
    x, sigma, cond = video_inputs()
    svd = VideoDenoiser(components.unet)(x, sigma, cond)
    model = attach_aid(components, option.config)
    processors = [m for m in model.modules() if isinstance(m, MConditionAttnProcessor)]
    assert processors
    assert len(option_tensors(model, option)) == (
        option.tensors_per_processor * len(processors) + option.shared_tensors)
    assert (aid_output(model, x, sigma, cond) - svd).abs().max().item() == 0.0
    model.detach()
    assert torch.equal(VideoDenoiser(components.unet)(x, sigma, cond), svd)


@each_option
def test_the_option_trains_once_the_branch_is_open(option):
    model = opened_model(option)
    x, sigma, cond = video_inputs()
    aid_output(model, x, sigma, cond).square().mean().backward()
    for name, parameter in option_tensors(model, option).items():
        assert parameter.requires_grad, name
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@each_option
def test_weight_files_keep_the_option_and_refuse_a_model_without_it(option, tmp_path):
    model = opened_model(option)
    path = save_aid_weights(model, tmp_path / "aid.safetensors")
    reloaded = attach_aid(tiny_components(), option.config)
    load_aid_weights(reloaded, path)
    for name, parameter in option_tensors(model, option).items():
        assert torch.equal(option_tensors(reloaded, option)[name], parameter), name
    with pytest.raises(AIDWeightsError, match=option.field):
        load_aid_weights(attach_aid(tiny_components(), CONFIG), path)


@each_option
@torch.no_grad()
def test_an_open_option_changes_the_answer_on_a_non_square_frame(option):
    """Once open, the option reaches the output, on a frame whose (h, w) a swap would show."""
    model = attach_aid(tiny_components(), option.config)
    open_gates(model)
    x, sigma, first = non_square_inputs()
    cond = condition_with_first_frame(model, first)
    closed = VideoDenoiser(model.unet)(x, sigma, cond)
    open_option(model, option)
    opened = VideoDenoiser(model.unet)(x, sigma, cond)
    assert opened.shape == closed.shape == x.shape
    assert not torch.equal(opened, closed)
