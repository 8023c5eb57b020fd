"""Building an ``AIDPipeline`` from files: the one loader the CLI and the nodes share."""

from __future__ import annotations

from pathlib import Path

import torch

from aid_model.pipeline.pipeline import AIDPipeline

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    try:
        return DTYPES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; choose one of {sorted(DTYPES)}") from None


def load_pipeline(
    svd: str | Path,
    aid: str | Path | None = None,
    text_encoder: str | Path | None = None,
    tokenizer: str | Path | None = None,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
    unet_head_channels: int = 64,
    clip_num_heads: int | None = None,
    text_num_heads: int | None = None,
) -> AIDPipeline:
    """SVD (+ AID weights + text encoder) → ``AIDPipeline``; AID needs the text encoder."""
    from aid_model.aid import attach_aid_from_file
    from aid_model.aid.weights import check_text_encoder
    from aid_model.svd import load_svd
    from aid_model.text_encoder import load_text_encoder

    dtype = parse_dtype(dtype)
    if aid is not None and text_encoder is None:
        raise ValueError(
            "AID weights were given without a text encoder: pass the OpenCLIP ViT-H text tower "
            "(open_clip_pytorch_model.safetensors or a transformers folder) as well"
        )
    components = load_svd(
        svd,
        dtype=dtype,
        device=device,
        unet_head_channels=unet_head_channels,
        clip_num_heads=clip_num_heads,
    )
    encoder = None
    if text_encoder is not None:
        encoder = load_text_encoder(
            text_encoder,
            tokenizer_dir=tokenizer,
            dtype=dtype,
            device=device,
            num_heads=text_num_heads,
        )
    model = None
    if aid is not None:
        check_text_encoder(aid, encoder)  # before the model is built: another width refuses
        model = attach_aid_from_file(components, aid)
    return AIDPipeline(components, model, encoder)
