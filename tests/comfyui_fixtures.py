"""The test fixtures built with ComfyUI's own classes, for the real-ComfyUI tests.

Fixture A's SVD (``tests/fixtures/svd-parity-A``) is too small for ComfyUI's checkpoint
detection (its heads have 16 channels, its VAE two levels), so it is built the way its
``golden.md`` says the goldens were made: ``comfy.model_base.SVD_img2vid`` from the
recorded UNet config, the temporal VAE from the recorded encoder/decoder configs, CLIP
vision from the recorded JSON config. The text fixture (``tests/fixtures/clip-text``, an
OpenCLIP ViT-H/14-style tower of width 64, 4 heads, 3 blocks) becomes ComfyUI's SD 2.x
CLIP with that config. Call after ``comfyui_host.import_comfyui()``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SVD_FIXTURE = FIXTURES / "svd-parity-A"
CLIP_TEXT_FIXTURE = FIXTURES / "clip-text"
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_VISION_PREFIX = "conditioner.embedders.0.open_clip.model.visual."


def _svd_state_dict() -> dict[str, torch.Tensor]:
    # float16 on disk, every value float16-representable: float32 is exact.
    return {k: v.float() for k, v in
            load_file(str(SVD_FIXTURE / "svd_tiny_sgm.safetensors")).items()}


def fixture_svd_model():
    """Fixture A's UNet as a ComfyUI MODEL (``ModelPatcher`` over ``SVD_img2vid``), float32
    on the CPU."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    config = json.loads((SVD_FIXTURE / "config.json").read_text())["unet"]
    unet_config = dict(config["comfyui_unet_config"], attn_precision=torch.float32)
    model_config = comfy.supported_models.SVD_img2vid(unet_config)
    # BASE.__init__ overwrites these with svd's own (64 channels a head).
    model_config.unet_config.update(num_heads=-1, num_head_channels=config["head_dim"])
    model_config.set_inference_dtype(torch.float32, None)
    state_dict = _svd_state_dict()
    model = model_config.get_model(state_dict, UNET_PREFIX, device="cpu")
    model.load_model_weights(state_dict, UNET_PREFIX)
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=device,
                                            offload_device=torch.device("cpu"))


def fixture_vae():
    """Fixture A's temporal VAE as a ComfyUI VAE (latent = image / 2), float32."""
    import comfy.model_patcher
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencodingEngine

    config = json.loads((SVD_FIXTURE / "config.json").read_text())["vae"]
    encoder, decoder = config["encoder_config"], config["decoder_config"]
    # comfy.sd.VAE sizes an SVD VAE for the real model; built from a plain config, then
    # given the fixture's own engine.
    logging.disable(logging.WARNING)  # the stand-in engine's weights are "missing"
    try:
        vae = comfy.sd.VAE(sd={}, config={"params": {"embed_dim": 4, "ddconfig": encoder}},
                           dtype=torch.float32, device=torch.device("cpu"))
    finally:
        logging.disable(logging.NOTSET)
    engine = AutoencodingEngine(
        regularizer_config={"target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
        encoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Encoder",
                        "params": encoder},
        decoder_config={"target": "comfy.ldm.modules.temporal_ae.VideoDecoder",
                        "params": decoder},
    ).eval()
    state_dict = {k[len(VAE_PREFIX):]: v for k, v in _svd_state_dict().items()
                  if k.startswith(VAE_PREFIX)}
    missing, unexpected = engine.load_state_dict(state_dict, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    vae.first_stage_model = engine.to(torch.float32)
    vae.patcher = comfy.model_patcher.ModelPatcher(engine, load_device=vae.device,
                                                   offload_device=vae.patcher.offload_device)
    vae.downscale_ratio = vae.upscale_ratio = 2 ** (len(encoder["ch_mult"]) - 1)
    return vae


def fixture_clip_vision(tmp_path: Path):
    """Fixture A's CLIP image encoder as a ComfyUI CLIP_VISION."""
    import comfy.clip_vision

    config = json.loads((SVD_FIXTURE / "config.json").read_text())["clip_vision"]
    json_config = tmp_path / "clip_vision_config.json"
    json_config.write_text(json.dumps(config["comfyui_json_config"]))
    clip_vision = comfy.clip_vision.ClipVisionModel(str(json_config))
    state_dict = comfy.clip_vision.convert_to_transformers(_svd_state_dict(), CLIP_VISION_PREFIX)
    missing, _ = clip_vision.load_sd(state_dict)
    assert not missing, missing
    return clip_vision


def fixture_clip(width: int | None = None):
    """The text fixture as ComfyUI's SD 2.x CLIP (what Load CLIP type stable_diffusion makes
    of an OpenCLIP ViT-H/14 text file), float32, with ComfyUI's own tokenizer. With
    ``width``: a tower of that width with random weights instead (a CLIP of another kind)."""
    import comfy.sd
    import comfy.text_encoders.sd2_clip
    import comfy.utils

    openclip = json.loads((CLIP_TEXT_FIXTURE / "openclip_model_config.json").read_text())
    text = openclip["text_cfg"]
    random_weights = width is not None
    width = width or text["width"]
    tower = {"hidden_size": width, "intermediate_size": int(width * text.get("mlp_ratio", 4)),
             "num_attention_heads": text["heads"], "num_hidden_layers": text["layers"]}

    class Target:
        params = {}  # noqa: RUF012 (ComfyUI copies it)
        clip = comfy.text_encoders.sd2_clip.SD2ClipModel
        tokenizer = comfy.text_encoders.sd2_clip.SD2Tokenizer

    clip = comfy.sd.CLIP(Target, model_options={"dtype": torch.float32,
                                                "clip_h_model_config": tower})
    if random_weights:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for parameter in clip.cond_stage_model.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
        return clip
    state_dict = load_file(str(CLIP_TEXT_FIXTURE / "openclip_text.safetensors"))
    # ComfyUI's tower projects its pooled output to its own width (ViT-H: 1024 → 1024);
    # the fixture's 64 → 48 projection has no place there and no effect on the tokens.
    state_dict.pop("text_projection")
    state_dict.pop("logit_scale", None)  # CLIP's image-text temperature, unused here
    state_dict = comfy.utils.clip_text_transformers_convert(
        {k: v.float() for k, v in state_dict.items()}, "", "clip_h.transformer.")
    missing, unexpected = clip.load_sd(state_dict, full_model=True)
    unused = {"clip_h.logit_scale", "clip_h.transformer.text_projection.weight"}
    assert set(missing) <= unused, missing
    assert not unexpected, unexpected
    return clip
