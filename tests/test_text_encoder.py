"""Text encoder equivalence with open_clip (goldens from open_clip_torch 3.3.0), weight
layouts, and the errors a user meets. Fixture: tests/fixtures/clip-text (its golden.md).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from conftest import CLIP_TEXT_FIXTURE
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel

from aid_model.text_encoder import TextEncoder, load_text_encoder

TOLERANCE = 1e-6  # max abs vs open_clip; SDPA on CPU is usually bitwise equal


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    return CLIP_TEXT_FIXTURE


@pytest.fixture(scope="module")
def heads(fixture_dir: Path) -> int:
    config = json.loads((fixture_dir / "openclip_model_config.json").read_text())
    return config["text_cfg"]["heads"]


@pytest.fixture(scope="module")
def golden(fixture_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(fixture_dir / "golden.safetensors"))


@pytest.fixture(scope="module")
def strings(fixture_dir: Path) -> list[str]:
    with safe_open(str(fixture_dir / "golden.safetensors"), framework="pt") as handle:
        return json.loads(handle.metadata()["clip_text_golden"])["strings"]


@pytest.fixture(scope="module")
def encoder(fixture_dir: Path, heads: int) -> TextEncoder:
    return load_text_encoder(fixture_dir / "openclip_text.safetensors", num_heads=heads)


@pytest.fixture(scope="module")
def openclip_weights(fixture_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(fixture_dir / "openclip_text.safetensors"))


def _max_error(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    return (got.float() - want).abs().max().item()


def _assert_matches_goldens(encoding, golden: dict[str, torch.Tensor]) -> None:
    projected = encoding.projected
    outputs = {
        "embeddings": encoding.hidden_states[0],
        "penultimate_hidden_raw": encoding.hidden_states[-2],
        "last_hidden_raw": encoding.hidden_states[-1],
        "penultimate_ln_final": encoding.penultimate,
        "last_hidden_ln_final": encoding.last,
        "pooled_unprojected": encoding.pooled,
        "text_embeds": projected,
        "text_embeds_normalized": projected / projected.norm(dim=-1, keepdim=True),
    }
    errors = {name: _max_error(out, golden[name]) for name, out in outputs.items()}
    assert max(errors.values()) <= TOLERANCE, errors


def _assert_same_outputs(a, b) -> None:
    assert torch.equal(a.penultimate, b.penultimate)
    assert torch.equal(a.pooled, b.pooled)
    assert torch.equal(a.projected, b.projected)


def _write(tmp_path: Path, name: str, tensors: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / name
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(path))
    return path


def _sd2_layout(openclip_weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fixture's tower as an SD 2.x single file holds it (v2-1_768-ema-pruned.safetensors):
    every OpenCLIP key under ``cond_stage_model.model.``. Renamed here, not by the loader
    under test."""
    return {f"cond_stage_model.model.{key}": value for key, value in openclip_weights.items()}


def test_every_layer_and_embedding_matches_open_clip(encoder, golden):
    encoding = encoder.encode_tokens(golden["token_ids"])
    assert len(encoding.hidden_states) == 4  # embeddings + 3 blocks
    _assert_matches_goldens(encoding, golden)


def test_texts_to_penultimate_conditioning(encoder, golden, strings):
    encoding = encoder.encode_all(strings)
    assert torch.equal(encoding.token_ids, golden["token_ids"])
    _assert_matches_goldens(encoding, golden)
    context = encoder.encode(strings)
    assert context.shape == (9, 77, 64) and context.dtype == torch.float32
    assert _max_error(context, golden["penultimate_ln_final"]) <= TOLERANCE


def test_empty_string_is_the_null_text(encoder, golden):
    null = encoder.encode([""])
    assert null.shape == (1, 77, 64)
    assert _max_error(null[0], golden["penultimate_ln_final"][3]) <= TOLERANCE
    assert encoder.encode([]).shape == (0, 77, 64)


def test_encoder_is_frozen_and_gradient_free(encoder):
    assert not encoder.training
    assert not any(parameter.requires_grad for parameter in encoder.parameters())
    assert not encoder.encode(["push the cup"]).requires_grad


def test_sd2_single_file_gives_identical_outputs(
    encoder, openclip_weights, fixture_dir, heads, golden, tmp_path
):
    path = _write(tmp_path, "v2-text.safetensors", _sd2_layout(openclip_weights))
    sd2 = load_text_encoder(path, tokenizer_dir=fixture_dir, num_heads=heads)
    ids = golden["token_ids"]
    _assert_same_outputs(sd2.encode_tokens(ids), encoder.encode_tokens(ids))


def test_sd2_file_skips_unet_vae_and_visual_keys_silently(
    encoder, openclip_weights, fixture_dir, heads, golden, tmp_path
):
    tensors = _sd2_layout(openclip_weights)
    tensors["model.diffusion_model.input_blocks.0.0.weight"] = torch.ones(4, 8, 3, 3)
    tensors["first_stage_model.decoder.conv_in.weight"] = torch.ones(4, 4, 3, 3)
    tensors["cond_stage_model.model.visual.proj"] = torch.ones(32, 48)
    path = _write(tmp_path, "v2-full.safetensors", tensors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # logit_scale, UNet, VAE, visual: no warning
        full = load_text_encoder(path, tokenizer_dir=fixture_dir, num_heads=heads)
    ids = golden["token_ids"]
    _assert_same_outputs(full.encode_tokens(ids), encoder.encode_tokens(ids))


def test_transformers_folder_round_trip(encoder, golden, tmp_path):
    encoder.save_pretrained(tmp_path / "saved")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_text_encoder(tmp_path / "saved")  # tokenizer from the same folder
    assert loaded.model.config.num_attention_heads == 4
    assert torch.equal(loaded.tokenize(["hello world!"]), encoder.tokenize(["hello world!"]))
    ids = golden["token_ids"]
    _assert_same_outputs(loaded.encode_tokens(ids), encoder.encode_tokens(ids))
    with pytest.raises(ValueError, match="num_heads=2 contradicts"):
        load_text_encoder(tmp_path / "saved", num_heads=2)


def test_diffusers_pipeline_text_encoder_without_last_block(encoder, fixture_dir, golden, tmp_path):
    # diffusers stores SD 2.x's tower with 23 of 24 blocks and uses its last layer: the
    # penultimate conditioning must come out the same.
    pipeline = tmp_path / "sd2-pipeline"
    config = encoder.text_model.config.to_dict()
    config["num_hidden_layers"] -= 1
    config["architectures"] = ["CLIPTextModel"]
    truncated = CLIPTextModel(type(encoder.text_model.config).from_dict(config))
    missing, _ = truncated.load_state_dict(encoder.text_model.state_dict(), strict=False)
    assert missing == []
    truncated.save_pretrained(str(pipeline / "text_encoder"))
    (pipeline / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    shutil.copytree(
        fixture_dir, pipeline / "tokenizer", ignore=shutil.ignore_patterns("*.safetensors")
    )

    loaded = load_text_encoder(pipeline / "text_encoder")
    encoding = loaded.encode_all([""])
    assert _max_error(encoding.penultimate[0], golden["penultimate_ln_final"][3]) <= TOLERANCE
    assert encoding.pooled is None and encoding.projected is None
    with pytest.raises(ValueError, match="without its last block"):
        loaded.save_pretrained(tmp_path / "resaved")


def test_dtype_and_default_heads(fixture_dir, golden):
    half = load_text_encoder(
        fixture_dir / "openclip_text.safetensors", dtype=torch.bfloat16, num_heads=4
    )
    context = half.encode(["move the red circle to the left"])
    assert context.dtype == torch.bfloat16
    assert _max_error(context[0], golden["penultimate_ln_final"][0]) < 0.1
    # Without num_heads: OpenCLIP's 64 channels a head, so this 64-wide tower gets one head
    # and different (wrong for this fixture) outputs.
    default = load_text_encoder(fixture_dir / "openclip_text.safetensors")
    assert default.model.config.num_attention_heads == 1
    assert _max_error(default.encode([""])[0], golden["penultimate_ln_final"][3]) > 1e-3


def test_pickled_checkpoint_is_refused(openclip_weights, fixture_dir, tmp_path):
    for name in ("open_clip_pytorch_model.bin", "misnamed.safetensors"):
        torch.save(openclip_weights, tmp_path / name)
        with pytest.raises(ValueError, match=r"pickled.*\n.*safetensors.torch"):
            load_text_encoder(tmp_path / name, tokenizer_dir=fixture_dir)
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    torch.save({}, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pickled"):
        load_text_encoder(folder, tokenizer_dir=fixture_dir)


def test_missing_keys_are_named(openclip_weights, fixture_dir, tmp_path):
    tensors = dict(openclip_weights)
    for key in ("transformer.resblocks.1.attn.in_proj_weight", "ln_final.bias", "text_projection"):
        del tensors[key]
    path = _write(tmp_path, "partial.safetensors", tensors)
    with pytest.raises(ValueError, match="missing") as error:
        load_text_encoder(path, tokenizer_dir=fixture_dir, num_heads=4)
    for key in ("transformer.resblocks.1.attn.in_proj_weight", "ln_final.bias", "text_projection"):
        assert key in str(error.value)


def test_unknown_keys_are_reported(openclip_weights, fixture_dir, heads, tmp_path, golden):
    tensors = dict(openclip_weights)
    tensors["transformer.resblocks.0.attn.extra_gate"] = torch.zeros(1)
    tensors["prompt_learner.ctx"] = torch.zeros(4, 64)
    path = _write(tmp_path, "extra.safetensors", tensors)
    with pytest.warns(UserWarning, match="2 keys") as record:
        loaded = load_text_encoder(path, tokenizer_dir=fixture_dir, num_heads=heads)
    message = str(record[0].message)
    assert "transformer.resblocks.0.attn.extra_gate" in message and "prompt_learner.ctx" in message
    _assert_matches_goldens(loaded.encode_tokens(golden["token_ids"]), golden)


def test_missing_tokenizer_is_a_clear_error(fixture_dir, tmp_path):
    path = tmp_path / "open_clip_model.safetensors"
    shutil.copy(fixture_dir / "openclip_text.safetensors", path)
    with pytest.raises(FileNotFoundError, match="pass tokenizer_dir="):
        load_text_encoder(path, num_heads=4)
    with pytest.raises(FileNotFoundError, match="no CLIP tokenizer"):
        load_text_encoder(path, tokenizer_dir=tmp_path, num_heads=4)


def test_wrong_files_are_clear_errors(encoder, fixture_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text_encoder(tmp_path / "nothing.safetensors")
    hf_layout = _write(tmp_path, "hf.safetensors", dict(encoder.model.state_dict()))
    with pytest.raises(ValueError, match=r"transformers layout.*pass the folder"):
        load_text_encoder(hf_layout, tokenizer_dir=fixture_dir)
    unet = _write(tmp_path, "unet.safetensors", {"model.diffusion_model.out.2.bias": torch.ones(4)})
    with pytest.raises(ValueError, match="no OpenCLIP text tower"):
        load_text_encoder(unet, tokenizer_dir=fixture_dir)
    (tmp_path / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_text_encoder(tmp_path / "garbage.safetensors", tokenizer_dir=fixture_dir)
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        load_text_encoder(fixture_dir / "openclip_text.safetensors", num_heads=3)
