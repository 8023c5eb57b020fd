"""load_svd: formats, topologies, dtypes, and the errors a user meets with a wrong file."""

from __future__ import annotations

import logging

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel
from safetensors.torch import load_file, save_file
from svd_original_layout import unet_to_original

from aid_model.svd import CheckpointError, load_svd
from aid_model.svd.build import restore_original_unet_norms

HEADS = {"unet_head_channels": 16, "clip_num_heads": 2}
IDS = torch.tensor([[5.0, 127.0, 0.02]])


def unet_output(unet, seed: int = 0, tokens: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    width = unet.config.cross_attention_dim
    sample = torch.randn(1, 3, unet.config.in_channels, 8, 8, generator=generator)
    context = torch.randn(1, tokens, width, generator=generator)
    with torch.no_grad():
        return unet(sample.to(unet.dtype), torch.tensor([0.3]), context.to(unet.dtype), IDS).sample


@pytest.fixture(scope="module")
def fixture_tensors(svd_fixture_checkpoint):
    return load_file(str(svd_fixture_checkpoint))


def write(tmp_path, tensors, name="model.safetensors"):
    path = tmp_path / name
    save_file(tensors, str(path))
    return path


# --- formats and topologies -----------------------------------------------------------


def test_components_and_inferred_config(fixture_svd):
    assert type(fixture_svd.unet).__name__ == "UNetSpatioTemporalConditionModel"
    assert type(fixture_svd.vae).__name__ == "AutoencoderKLTemporalDecoder"
    assert type(fixture_svd.image_encoder).__name__ == "CLIPVisionModelWithProjection"
    layout = fixture_svd.config["layout"]
    assert layout["unet"]["block_out_channels"] == [32, 64]
    assert layout["unet"]["num_attention_heads"] == [2, 4]
    assert layout["unet"]["cross_attention_dim"] == 64
    assert layout["vae"]["decoder_mid_resnets"] == 2
    assert layout["image_encoder"]["image_size"] == 28
    assert not any(p.requires_grad for p in fixture_svd.unet.parameters())
    assert not fixture_svd.unet.training


def test_diffusers_folder_round_trip_is_identical(fixture_svd, tmp_path):
    fixture_svd.save_pretrained(tmp_path / "svd")
    reloaded = load_svd(tmp_path / "svd")
    assert reloaded.config["format"] == "diffusers"
    assert torch.equal(unet_output(reloaded.unet), unet_output(fixture_svd.unet))
    # The decoder's two-resnet mid block (a loader correction) must survive the round trip.
    assert len(reloaded.vae.decoder.mid_block.resnets) == 2
    latents = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = fixture_svd.vae.decode(latents, num_frames=4).sample
        theirs = reloaded.vae.decode(latents, num_frames=4).sample
        pixels = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(2))
        clip_a = fixture_svd.image_encoder(pixel_values=pixels).image_embeds
        clip_b = reloaded.image_encoder(pixel_values=pixels).image_embeds
    assert torch.equal(ours, theirs)
    assert torch.equal(clip_a, clip_b)


def test_svd_topology_single_file(fixture_tensors, tmp_path):
    """SVD's own shape in miniature: four levels, the deepest without attention, two res
    blocks a level. The parity fixture has neither a level without attention nor two
    res blocks, so this is where the converter meets them."""
    torch.manual_seed(0)
    source = UNetSpatioTemporalConditionModel(
        in_channels=8,
        out_channels=4,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=2,
        cross_attention_dim=64,
        num_attention_heads=(2, 2, 4, 4),
    ).eval()
    model = _through_a_single_file(source, fixture_tensors, tmp_path)
    layout = model.config["layout"]["unet"]
    assert layout["attention_on_level"] == [True, True, True, False]
    assert layout["layers_per_block"] == [2, 2, 2, 2]
    assert model.unet.config.down_block_types[-1] == "DownBlockSpatioTemporal"
    assert model.unet.config.up_block_types[0] == "UpBlockSpatioTemporal"
    _assert_same_unet(model.unet, source)


@pytest.mark.parametrize("first_level_attends", [False, True])
def test_the_miniatures_layouts_single_file(fixture_tensors, tmp_path, first_level_attends):
    """The miniature's widths (aid_model.demo.configs) with attention at every level, and
    with res blocks only at the first (an earlier layout: every later level's attention
    then sits one block index further than the level's)."""
    from aid_model.demo import configs

    down = ("CrossAttnDownBlockSpatioTemporal" if first_level_attends
            else "DownBlockSpatioTemporal",) + ("CrossAttnDownBlockSpatioTemporal",) * 2
    up = ("CrossAttnUpBlockSpatioTemporal",) * 2 + (
        "CrossAttnUpBlockSpatioTemporal" if first_level_attends else "UpBlockSpatioTemporal",)
    torch.manual_seed(0)
    source = UNetSpatioTemporalConditionModel(
        **{**configs.UNET, "down_block_types": down, "up_block_types": up}).eval()
    model = _through_a_single_file(source, fixture_tensors, tmp_path)
    assert model.config["layout"]["unet"]["attention_on_level"] == [first_level_attends,
                                                                     True, True]
    assert model.unet.config.down_block_types == down
    assert model.unet.config.up_block_types == up
    _assert_same_unet(model.unet, source)


def _through_a_single_file(source, fixture_tensors, tmp_path):
    """``source``'s UNet (random weights) in an original single file beside the fixture's VAE
    and CLIP, loaded back."""
    for parameter in source.parameters():  # diffusers zero-inits some layers; avoid blind spots
        parameter.data.normal_(0.0, 0.05)
    restore_original_unet_norms(source)
    tensors = {
        k: v for k, v in fixture_tensors.items() if not k.startswith("model.diffusion_model.")
    }
    tensors.update({k: v.contiguous() for k, v in unet_to_original(source).items()})
    return load_svd(write(tmp_path, tensors), **HEADS)


def _assert_same_unet(loaded, source) -> None:
    ours, theirs = unet_output(loaded, tokens=3), unet_output(source, tokens=3)
    # A wrong mapping shows as O(1) error; what remains is float noise between two
    # separately allocated copies of the same weights (measured 3e-8).
    assert (ours - theirs).abs().max() <= 1e-6


def test_bfloat16_loading_runs_on_cpu(svd_fixture_checkpoint, fixture_svd):
    model = load_svd(svd_fixture_checkpoint, dtype=torch.bfloat16, **HEADS)
    assert model.unet.dtype == torch.bfloat16
    assert model.image_encoder.dtype == torch.bfloat16
    out = unet_output(model.unet).float()
    reference = unet_output(fixture_svd.unet)
    assert torch.isfinite(out).all()
    assert (out - reference).abs().max() < 0.05 * reference.abs().max()


# --- bad input --------------------------------------------------------------------------


def test_pickled_checkpoint_is_refused_with_conversion_hint(tmp_path):
    path = tmp_path / "svd.ckpt"
    torch.save({"state_dict": {"a": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match=r"(?s)pickled.*safetensors.*torch\.load"):
        load_svd(path)


def test_pickle_disguised_as_safetensors_is_refused(tmp_path):
    path = tmp_path / "svd.safetensors"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="pickled PyTorch checkpoint despite its name"):
        load_svd(path)


def test_truncated_file_is_named(svd_fixture_checkpoint, tmp_path):
    data = svd_fixture_checkpoint.read_bytes()
    path = tmp_path / "svd_xt.safetensors"
    path.write_bytes(data[: len(data) - 4096])
    with pytest.raises(CheckpointError, match="truncated"):
        load_svd(path, **HEADS)


def test_not_an_svd_checkpoint_names_what_was_found(tmp_path):
    tensors = {f"unet.down_blocks.{i}.conv.weight": torch.zeros(2, 2) for i in range(5)}
    with pytest.raises(CheckpointError) as error:
        load_svd(write(tmp_path, tensors))
    message = str(error.value)
    assert "model.diffusion_model." in message  # what was expected
    assert "5 × unet.down_blocks.*" in message  # what was found
    assert "diffusers folder" in message  # what to do


def test_image_model_is_not_svd(fixture_tensors, tmp_path):
    tensors = {k: v for k, v in fixture_tensors.items() if ".time_stack." not in k}
    with pytest.raises(CheckpointError, match="no temporal layers"):
        load_svd(write(tmp_path, tensors), **HEADS)


def test_missing_weight_is_an_error_naming_it(fixture_tensors, tmp_path):
    tensors = dict(fixture_tensors)
    del tensors["model.diffusion_model.input_blocks.1.0.emb_layers.1.bias"]
    with pytest.raises(CheckpointError, match=r"missing 1 weights: .*time_emb_proj\.bias"):
        load_svd(write(tmp_path, tensors), **HEADS)


def test_unknown_key_inside_a_component_is_an_error(fixture_tensors, tmp_path):
    tensors = dict(fixture_tensors)
    tensors["model.diffusion_model.input_blocks.1.0.lora_up.weight"] = torch.zeros(2, 2)
    with pytest.raises(CheckpointError, match="lora_up"):
        load_svd(write(tmp_path, tensors), **HEADS)


def test_keys_of_no_component_are_reported_not_dropped(fixture_tensors, tmp_path, caplog):
    tensors = dict(fixture_tensors)
    tensors["model_ema.decay"] = torch.tensor(0.999)
    tensors["model_ema.num_updates"] = torch.tensor(3.0)
    with caplog.at_level(logging.WARNING):
        model = load_svd(write(tmp_path, tensors), **HEADS)
    assert model.unused_keys == ["model_ema.decay", "model_ema.num_updates"]
    assert "2 keys belong to no SVD component" in caplog.text


def test_head_counts_that_do_not_fit_say_which_keyword(svd_fixture_checkpoint):
    with pytest.raises(CheckpointError, match="clip_num_heads"):
        load_svd(svd_fixture_checkpoint, unet_head_channels=16)  # width 64 is not 80·n
    with pytest.raises(CheckpointError, match="unet_head_channels=24"):
        load_svd(svd_fixture_checkpoint, unet_head_channels=24, clip_num_heads=2)


def test_missing_source_and_wrong_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_svd(tmp_path / "nothing.safetensors")
    (tmp_path / "unet").mkdir()
    with pytest.raises(CheckpointError, match=r"not a diffusers SVD folder.*'vae'"):
        load_svd(tmp_path)


def test_diffusers_folder_with_pickled_weights_is_refused(fixture_svd, tmp_path):
    folder = fixture_svd.save_pretrained(tmp_path / "svd")
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(weights)), folder / "vae" / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(CheckpointError, match="pickled"):
        load_svd(folder)
