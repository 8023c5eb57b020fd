"""AID weight files: round trip, another base, stray or missing tensors, another config."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from aid_model.aid import (
    AIDConfig,
    AIDWeightsError,
    attach_aid,
    attach_aid_from_file,
    load_aid_weights,
    read_aid_config,
    save_aid_weights,
    trainable_parameters,
)
from aid_model.sampling import VideoCondition, VideoDenoiser

FRAMES, WIDTH = 3, 32
CONFIG = AIDConfig(num_frames=FRAMES, num_states=1, dqformer_heads=2, queries_per_frame=4)


def tiny_unet(seed: int = 0, **changes) -> SimpleNamespace:
    torch.manual_seed(seed)
    config = dict(
        sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=WIDTH,
        num_attention_heads=(2, 4), projection_class_embeddings_input_dim=768,
        addition_time_embed_dim=256,
    )
    return SimpleNamespace(unet=UNetSpatioTemporalConditionModel(**{**config, **changes}).eval())


def trained(model, seed: int = 7):
    """Stands in for training: every trained tensor moved, the base's cross-attention too."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in trainable_parameters(model).values():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model


@torch.no_grad()
def output(model) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, FRAMES, 4, 8, 8, generator=generator)
    instruction = torch.randn(1, 77, WIDTH, generator=generator)
    states = torch.randn(1, 77, WIDTH, generator=generator)
    image = torch.randn(1, 5, WIDTH, generator=generator)
    cond = VideoCondition(
        image_embeddings=torch.randn(1, 1, WIDTH, generator=generator),
        concat_latents=model.concat_latents(torch.randn(1, 1, 4, 8, 8, generator=generator)),
        added_time_ids=torch.tensor([[6.0, 127.0, 0.02]]),
        mcondition=model.build_mcondition(instruction, states, image),
    )
    return VideoDenoiser(model.unet)(x, torch.tensor([2.5]), cond)


def test_save_load_round_trip_is_identical(tmp_path):
    original = trained(attach_aid(tiny_unet(), CONFIG))
    path = save_aid_weights(original, tmp_path / "aid.safetensors")
    assert read_aid_config(path) == CONFIG
    with safe_open(str(path), framework="pt") as file:
        assert set(file.keys()) == set(trainable_parameters(original))

    reloaded = attach_aid_from_file(tiny_unet(), path)
    assert torch.equal(output(reloaded), output(original))
    assert not torch.equal(output(attach_aid(tiny_unet(), CONFIG)), output(original))


def test_a_file_for_another_base_names_the_tensor(tmp_path):
    path = save_aid_weights(attach_aid(tiny_unet(), CONFIG), tmp_path / "aid.safetensors")
    # Another base: the vector conditioning is narrower, nothing else differs.
    other = tiny_unet(addition_time_embed_dim=128, projection_class_embeddings_input_dim=384)
    with pytest.raises(AIDWeightsError, match=r"'add_embedding\.linear_1\.weight'"):
        attach_aid_from_file(other, path)
    # The failed load leaves the caller's SVD UNet without AID.
    assert attach_aid(other, CONFIG) is not None


def test_every_key_must_be_used_and_present(tmp_path):
    model = attach_aid(tiny_unet(), CONFIG)
    path = save_aid_weights(model, tmp_path / "aid.safetensors")
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    tensors = load_file(str(path))

    save_file({**tensors, "dqformer.stray.weight": torch.zeros(2)}, str(tmp_path / "extra.st"),
              metadata=metadata)
    with pytest.raises(AIDWeightsError, match=r"not used.*dqformer\.stray\.weight"):
        load_aid_weights(model, tmp_path / "extra.st")

    dropped = sorted(tensors)[0]
    save_file({k: v for k, v in tensors.items() if k != dropped}, str(tmp_path / "short.st"),
              metadata=metadata)
    with pytest.raises(AIDWeightsError, match=rf"missing.*{dropped}"):
        load_aid_weights(model, tmp_path / "short.st")


def test_config_and_format_are_checked(tmp_path):
    path = save_aid_weights(attach_aid(tiny_unet(), CONFIG), tmp_path / "aid.safetensors")
    no_lta = attach_aid(tiny_unet(), AIDConfig(**{**CONFIG.__dict__, "without_lta": True}))
    with pytest.raises(AIDWeightsError, match="without_lta"):
        load_aid_weights(no_lta, path)

    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(AIDWeightsError, match="not an AID weight file"):
        read_aid_config(tmp_path / "plain.safetensors")

    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    assert json.loads(metadata["aid_config"]) == json.loads(CONFIG.to_json())
    assert len(metadata["aid_base_fingerprint"]) == 64


def test_a_file_with_a_field_this_version_lacks_is_refused_naming_where_it_runs(tmp_path):
    """A file written by another version (an experimental field since removed) is refused
    before anything is built, naming the field and the commit that still runs it."""
    model = trained(attach_aid(tiny_unet(), CONFIG))
    path = save_aid_weights(model, tmp_path / "aid.safetensors")
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    config = {**json.loads(metadata["aid_config"]), "query_stencil": 3}
    other = tmp_path / "other_version.safetensors"
    save_file(load_file(str(path)), str(other),
              metadata={**metadata, "aid_config": json.dumps(config)})
    with pytest.raises(AIDWeightsError,
                       match=r"unknown fields \['query_stencil'\].*commit 198c76e"):
        attach_aid_from_file(tiny_unet(), other)


def test_a_format_1_file_with_gates_loads_as_the_same_model(tmp_path):
    """Format 1 scaled the MCondition branch by a scalar gate through SVD's (trained) output
    projection; it loads as W_o^mc = gate·W_o, b_o^mc = gate·b_o, giving the same output."""
    model = trained(attach_aid(tiny_unet(), CONFIG))
    path = save_aid_weights(model, tmp_path / "aid.safetensors")
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    tensors = load_file(str(path))
    gates = {}
    with torch.no_grad():
        projections = sorted(n for n in tensors if ".to_out_mcondition.weight" in n)
        for index, name in enumerate(projections):
            attention = name[: -len("processor.to_out_mcondition.weight")]
            gate = torch.tensor(0.25 * (index + 1))
            gates[f"{attention}processor.mcondition_gate"] = gate
            for part in ("weight", "bias"):
                del tensors[f"{attention}processor.to_out_mcondition.{part}"]
                # What format 1's model computed, written into the format-2 model.
                projection = model.unet.get_submodule(f"{attention[:-1]}.processor".removeprefix(
                    "unet.")).to_out_mcondition
                getattr(projection, part).copy_(gate * tensors[f"{attention}to_out.0.{part}"])
    assert gates
    save_file({**tensors, **gates}, str(tmp_path / "v1.safetensors"),
              metadata={**metadata, "aid_format_version": "1"})
    reloaded = attach_aid_from_file(tiny_unet(), tmp_path / "v1.safetensors")
    assert torch.equal(output(reloaded), output(model))

    save_file(tensors, str(tmp_path / "v9.safetensors"),
              metadata={**metadata, "aid_format_version": "9"})
    with pytest.raises(AIDWeightsError, match=r"format version 9.*reads 1 and 2"):
        read_aid_config(tmp_path / "v9.safetensors")
