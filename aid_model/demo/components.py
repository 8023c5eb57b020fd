"""Untrained miniature components built from ``configs`` (seeded random weights)."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
from transformers import (
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from aid_model.demo import configs
from aid_model.demo.tokenizer import END_OF_TEXT, START_OF_TEXT, write_tokenizer
from aid_model.svd.build import as_loaded_svd_unet
from aid_model.svd.load import SVDComponents


def build_components(seed: int = 0) -> SVDComponents:
    """A miniature SVD (UNet, temporal VAE, CLIP image tower) with random weights.

    The UNet is made what ``load_svd`` makes of every UNet (``as_loaded_svd_unet``), so the
    trained weights reload to the same function.
    """
    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(**configs.UNET)
    as_loaded_svd_unet(unet)
    vae = AutoencoderKLTemporalDecoder(**configs.VAE)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**configs.IMAGE_ENCODER))
    image_encoder.requires_grad_(False).eval()
    config = {"format": "demo", "unet": dict(unet.config), "vae": dict(vae.config)}
    return SVDComponents(unet, vae, image_encoder, config, source="untrained demo")


def write_text_encoder(folder: str | Path, words: list[str], seed: int = 0) -> Path:
    """A random, frozen text tower with the world's tokenizer, as a transformers folder
    that ``load_text_encoder`` reads like any other."""
    folder = Path(folder)
    write_tokenizer(folder, words)
    vocab = (folder / "vocab.json").read_text()
    import json

    ids = json.loads(vocab)
    config = CLIPTextConfig(
        vocab_size=len(ids), bos_token_id=ids[START_OF_TEXT], eos_token_id=ids[END_OF_TEXT],
        pad_token_id=0, **configs.TEXT_ENCODER,
    )
    torch.manual_seed(seed)
    model = CLIPTextModelWithProjection(config)
    model.save_pretrained(folder, safe_serialization=True)
    return folder
