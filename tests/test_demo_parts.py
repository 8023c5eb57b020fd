"""The miniature's building blocks: the world's tokenizer and text tower, the untrained
components, the base's encoded clips and loss, and the stage-1 loop's exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from aid_model.demo import configs
from aid_model.demo.components import build_components, write_text_encoder
from aid_model.demo.tokenizer import apply_bpe, order_merges, write_tokenizer
from aid_model.synthetic import SyntheticClipDataset, vocabulary
from aid_model.text_encoder import load_text_encoder, load_tokenizer
from lab.miniature import base_latents
from lab.miniature.base_latents import encode_base_latents
from lab.miniature.stage1 import StageSettings, base_loss, train_loop


def test_every_word_of_the_world_is_one_token(tmp_path):
    words = vocabulary()
    folder = write_tokenizer(tmp_path / "tok", words)
    tokenizer = load_tokenizer(folder)
    ids = tokenizer(words)
    assert ((ids != 0).sum(dim=1) == 3).all()  # start, the word, end
    assert len(set(ids[:, 1].tolist())) == len(words)
    vocab = json.loads((folder / "vocab.json").read_text())
    assert vocab["!"] == 0  # open_clip pads with the id of "!"
    assert vocab["<|endoftext|>"] == len(vocab) - 1
    # Unknown words still tokenize (into byte symbols), they are just longer.
    assert (tokenizer(["zebra"])[0] != 0).sum() > 3


def test_merge_ordering_resolves_conflicts():
    # "ri" of "right" would cut "triangle" if it ranked first.
    words = ["right", "triangle", "centre", "red"]
    merges = order_merges(words)
    ranks = {merge: rank for rank, merge in enumerate(merges)}
    assert all(len(apply_bpe(w, ranks)) == 1 for w in words)


def test_text_tower_loads_like_any_transformers_folder(tmp_path):
    folder = write_text_encoder(tmp_path / "text", vocabulary())
    encoder = load_text_encoder(folder)
    embeddings = encoder.encode(["move the red circle left", "move the red circle right", ""])
    assert embeddings.shape == (3, 77, configs.CONTEXT_WIDTH)
    assert (embeddings[0] - embeddings[1]).abs().max() > 1e-3


def test_components_have_the_documented_sizes():
    components = build_components()
    assert components.vae.config.latent_channels == 8
    assert components.unet.config.in_channels == 16
    levels = len(components.unet.config.block_out_channels)
    vae_levels = len(components.vae.config.block_out_channels)
    assert configs.IMAGE_SIZE % (2 ** (levels - 1) * 2 ** (vae_levels - 1)) == 0
    # Resblock norms as the original SVD (what load_svd gives every UNet).
    assert components.unet.down_blocks[0].resnets[0].spatial_res_block.norm1.eps == 1e-5


def test_stage1_loop_resumes_exactly(tmp_path):
    settings = StageSettings(steps=6, batch_size=1, learning_rate=0.05, warmup_steps=2,
                             checkpoint_every=2, ema_decay=0.9)

    def make():
        torch.manual_seed(0)
        return nn.Linear(3, 2)

    def loss_fn(module):
        def loss(step: int) -> torch.Tensor:
            generator = torch.Generator().manual_seed(step)
            x = torch.randn(4, 3, generator=generator)
            return (module(x) - x[:, :2]).pow(2).mean()

        return loss

    whole = make()
    train_loop("run", whole, loss_fn(whole), settings, tmp_path / "whole")

    interrupted = make()
    uninterrupted_loss = loss_fn(interrupted)

    def crash_at_four(step: int) -> torch.Tensor:
        if step == 4:
            raise KeyboardInterrupt  # the machine went away after the step-4 checkpoint
        return uninterrupted_loss(step)

    with pytest.raises(KeyboardInterrupt):
        train_loop("run", interrupted, crash_at_four, settings, tmp_path / "resumed")
    assert torch.load(tmp_path / "resumed" / "run.ckpt", weights_only=True)["step"] == 4
    resumed = make()  # a new process: fresh module, state from the checkpoint
    train_loop("run", resumed, loss_fn(resumed), settings, tmp_path / "resumed")
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_base_clips_are_encoded_once_and_an_interrupted_encode_continues(tmp_path, monkeypatch):
    monkeypatch.setattr(base_latents, "CHUNK_CLIPS", 2)
    components = build_components()
    clips = SyntheticClipDataset(3, split="train", seed=1, random_motion=True)
    whole = encode_base_latents(components, clips, tmp_path / "whole", 0.02, seed=0)
    side = configs.IMAGE_SIZE // 2 ** (len(configs.VAE["block_out_channels"]) - 1)
    assert whole.latents.shape == (3, configs.NUM_FRAMES, 8, side, side)
    assert whole.concat_latents.shape == (3, 8, side, side)
    assert whole.image_embeddings.shape == (3, 1, configs.CONTEXT_WIDTH)
    # The concat latent is frame 0's, with its own small cond_aug noise.
    gap = (whole.concat_latents.float() - whole.latents[:, 0].float()).abs()
    assert 0 < gap.mean() < 0.1 * whole.latents[:, 0].float().abs().mean()

    (tmp_path / "whole" / "chunk_00001.pt").unlink()  # stopped before the last chunk
    resumed = encode_base_latents(components, clips, tmp_path / "whole", 0.02, seed=0)
    torch.testing.assert_close(resumed.latents, whole.latents, rtol=0, atol=0)
    torch.testing.assert_close(resumed.concat_latents, whole.concat_latents, rtol=0, atol=0)

    other_clips = SyntheticClipDataset(3, split="train", seed=2, random_motion=True)
    with pytest.raises(ValueError, match="delete"):
        encode_base_latents(components, other_clips, tmp_path / "whole", 0.02, seed=0)


def test_base_loss_is_a_function_of_the_step_and_trains_the_unet(tmp_path):
    components = build_components()
    clips = SyntheticClipDataset(4, split="train", seed=1, random_motion=True)
    features = encode_base_latents(components, clips, tmp_path, 0.02, seed=0)
    settings = StageSettings(steps=2, batch_size=2, learning_rate=1e-3)
    scale = 1.0
    first = base_loss(components.unet, features, scale, settings, step=0)
    again = base_loss(components.unet, features, scale, settings, step=0)
    other = base_loss(components.unet, features, scale, settings, step=1)
    assert torch.isfinite(first) and first.item() == again.item() != other.item()
    first.backward()
    gradients = [p.grad for p in components.unet.parameters() if p.grad is not None]
    assert gradients and any(g.abs().sum() > 0 for g in gradients)


def test_keep_vae_writes_the_kept_vae_back_with_the_new_base(tmp_path, monkeypatch):
    from aid_model.svd import load_svd
    from lab.miniature import build_base as build_base_module

    out = tmp_path / "demo"
    kept = build_components(seed=3)
    kept.vae.register_to_config(scaling_factor=0.5)
    kept.save_pretrained(out / "svd")

    def train_base_stub(components, work):  # a trained base, without the hours of training
        with torch.no_grad():
            for parameter in components.unet.parameters():
                parameter.fill_(0.25)
        return {"stage": "base"}

    monkeypatch.setattr(build_base_module, "train_base", train_base_stub)
    vae_summary = {"stage": "vae", "steps": 2000, "wall_s": 2852.7}
    decoder_summary = {"stage": "decoder", "steps": 3000, "wall_s": 1218.4}
    (out / "demo_model.json").write_text(json.dumps(
        {"stage1": [vae_summary, decoder_summary, {"stage": "base"}]}))
    build_base_module.build_base(tmp_path, out, keep_vae=True)
    # stage1.json names every stage: the kept VAE's two, carried over, and the new base.
    stages = json.loads((tmp_path / "stage1.json").read_text())
    assert stages == [{**vae_summary, "kept": True}, {**decoder_summary, "kept": True},
                      {"stage": "base"}]
    written = load_svd(out / "svd")
    assert written.vae.config.scaling_factor == 0.5
    for a, b in zip(written.vae.parameters(), kept.vae.parameters(), strict=True):
        torch.testing.assert_close(a, b.half().float(), rtol=0, atol=0)
    assert all(bool((p == 0.25).all()) for p in written.unet.parameters())


def test_keep_vae_without_a_manifest_notes_where_the_vae_came_from(tmp_path):
    from lab.miniature.build_base import kept_vae_summaries

    [summary] = kept_vae_summaries(tmp_path / "demo")
    assert summary["stage"] == "vae" and summary["kept"] is True
    assert "demo_model.json" in summary["note"]


def test_decoder_stage_trains_the_decoder_alone_and_the_check_loads_it(tmp_path):
    from lab.miniature.stage1 import train_decoder
    from lab.miniature.vae_check import load_vae

    components = build_components(seed=5)  # not the weights load_vae starts from
    before = {name: p.detach().clone() for name, p in components.vae.named_parameters()}
    settings = StageSettings(steps=2, batch_size=1, learning_rate=1e-2, warmup_steps=1,
                             seed=2)
    summary = train_decoder(components, tmp_path, settings)
    assert summary["stage"] == "decoder" and summary["steps"] == 2
    after = dict(components.vae.named_parameters())
    # The encoder and quant conv make the latents the base trains on: untouched.
    for name, value in before.items():
        if not name.startswith("decoder."):
            torch.testing.assert_close(after[name], value, rtol=0, atol=0)
    assert any((after[name] - value).abs().max() > 0
               for name, value in before.items() if name.startswith("decoder."))
    # The check reads the whole VAE from the checkpoint: its encoder too, not a fresh one.
    torch.manual_seed(123)
    checked = load_vae(None, tmp_path / "decoder.ckpt")
    for name, value in checked.state_dict().items():
        torch.testing.assert_close(value, components.vae.state_dict()[name], rtol=0, atol=0)
