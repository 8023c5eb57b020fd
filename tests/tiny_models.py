"""Test helpers: tiny AID pipelines from the test fixtures (random weights, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from aid_model.aid import AIDConfig, attach_aid, trainable_parameters
from aid_model.pipeline import AIDPipeline
from aid_model.svd import load_svd
from aid_model.text_encoder import load_text_encoder

# The SVD fixture: 16×16 images, 8×8 latents, context width 64 (= the text fixture's width).
TINY_AID = AIDConfig(num_frames=6, num_states=2, dqformer_heads=4)


def open_gates(model, seed: int = 3) -> None:
    """What training does, roughly: every zero-initialised projection (the MCondition
    branch's output, the adapters' up-projections) non-zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in trainable_parameters(model).items():
            if ".to_out_mcondition." in name:
                scale = 1.0 / parameter.shape[-1] ** 0.5 if parameter.ndim == 2 else 0.1
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
            elif ".up." in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)


def fixture_text_encoder(clip_text_dir: Path):
    heads = json.loads((clip_text_dir / "openclip_model_config.json").read_text())["text_cfg"]
    return load_text_encoder(
        clip_text_dir / "openclip_text.safetensors", tokenizer_dir=clip_text_dir,
        num_heads=heads["heads"],
    )


def fixture_svd_components(svd_checkpoint: Path):
    return load_svd(svd_checkpoint, unet_head_channels=16, clip_num_heads=2)


def tiny_aid_pipeline(svd_checkpoint: Path, clip_text_dir: Path, config: AIDConfig = TINY_AID,
                      trained: bool = True, seed: int = 3) -> AIDPipeline:
    """An AID pipeline on the fixtures; ``trained`` opens gates and adapters so the
    instruction matters (a fresh model is exactly SVD)."""
    components = fixture_svd_components(svd_checkpoint)
    torch.manual_seed(seed)  # AID's new parts are initialised from the global generator
    model = attach_aid(components, config)
    if trained:
        open_gates(model, seed)
    return AIDPipeline(components, model, fixture_text_encoder(clip_text_dir))
