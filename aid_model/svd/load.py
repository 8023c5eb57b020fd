"""``load_svd``: Stable Video Diffusion from an original single file or a diffusers folder."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from aid_model.safetensors_io import CheckpointError, read_shapes, read_tensors
from aid_model.svd.build import build_image_encoder, build_unet, build_vae, load_weights
from aid_model.svd.convert import (
    convert_clip_vision,
    convert_unet,
    convert_vae,
    identity_quant_conv,
)
from aid_model.svd.layout import (
    COMPONENT_PREFIXES,
    infer_svd_layout,
    split_components,
    summarize_prefixes,
)

logger = logging.getLogger(__name__)

DIFFUSERS_SUBFOLDERS = ("unet", "vae", "image_encoder")
_WEIGHT_NAMES = (
    "diffusion_pytorch_model.safetensors",
    "model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "model.fp16.safetensors",
)


@dataclass
class SVDComponents:
    """The frozen SVD base: diffusers UNet and temporal VAE, transformers CLIP image tower.

    ``config`` holds the three library configs and, for single files, the inferred layout;
    ``unused_keys`` lists checkpoint keys that belong to no component (reported at load).
    """

    unet: UNetSpatioTemporalConditionModel
    vae: AutoencoderKLTemporalDecoder
    image_encoder: CLIPVisionModelWithProjection
    config: dict
    source: str
    unused_keys: list[str] = field(default_factory=list)

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        for module in (self.unet, self.vae, self.image_encoder):
            module.to(device=device, dtype=dtype)
        return self

    def save_pretrained(self, folder: str | Path) -> Path:
        """Writes a diffusers-format folder (``unet/``, ``vae/``, ``image_encoder/``) that
        ``load_svd`` reloads to identical outputs."""
        folder = Path(folder)
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        self.vae.save_pretrained(folder / "vae", safe_serialization=True)
        self.image_encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
        return folder


def load_svd(
    source: str | Path,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    unet_head_channels: int = 64,
    clip_num_heads: int | None = None,
) -> SVDComponents:
    """Loads SVD (``svd``, ``svd_xt``, ``svd_xt_1_1`` or any size) as library modules.

    Args:
        source: an original single-file ``.safetensors`` checkpoint (keys
            ``model.diffusion_model.*``, ``first_stage_model.*``,
            ``conditioner.embedders.0.open_clip.model.visual.*``) or a diffusers folder
            with ``unet/``, ``vae/`` and ``image_encoder/``.
        dtype: parameter dtype (float32, float16 or bfloat16).
        device: where the modules live.
        unet_head_channels: channels per UNet attention head (SVD: 64); weights do not
            record head counts.
        clip_num_heads: CLIP vision heads; None = OpenCLIP ViT-H convention (80 channels
            a head). Used for single files only (diffusers folders carry their config).
    Returns:
        SVDComponents with frozen modules in eval mode.
    """
    path = Path(source)
    if path.is_dir():
        return _load_diffusers_folder(path, dtype, device)
    if not path.exists():
        raise CheckpointError(
            f"SVD source not found: {path}. Pass an original single-file .safetensors "
            "checkpoint or a diffusers folder with unet/, vae/ and image_encoder/."
        )
    return _load_single_file(path, dtype, device, unet_head_channels, clip_num_heads)


def _load_single_file(
    path: Path,
    dtype: torch.dtype,
    device: torch.device | str,
    unet_head_channels: int,
    clip_num_heads: int | None,
) -> SVDComponents:
    shapes = read_shapes(path)
    layout = infer_svd_layout(shapes, unet_head_channels, clip_num_heads)
    unused = sorted(split_components(shapes)["other"])
    if unused:
        logger.warning(
            "%s: %d keys belong to no SVD component and are not used: %s",
            path,
            len(unused),
            summarize_prefixes(unused),
        )
    wanted = {key for key in shapes if key not in set(unused)}
    original = read_tensors(path, keys=wanted)
    parts = {name: {} for name in COMPONENT_PREFIXES}
    for key, tensor in original.items():
        for name, prefix in COMPONENT_PREFIXES.items():
            if key.startswith(prefix):
                parts[name][key[len(prefix) :]] = tensor
                break
    del original

    unet_weights, unet_unknown = convert_unet(parts.pop("unet"), layout.unet)
    vae_weights, vae_unknown = convert_vae(parts.pop("vae"), layout.vae)
    clip_weights, clip_unknown = convert_clip_vision(parts.pop("image_encoder"))
    unknown = (
        [COMPONENT_PREFIXES["unet"] + k for k in unet_unknown]
        + [COMPONENT_PREFIXES["vae"] + k for k in vae_unknown]
        + [COMPONENT_PREFIXES["image_encoder"] + k for k in clip_unknown]
    )
    if unknown:
        raise CheckpointError(
            f"{path}: {len(unknown)} keys of an SVD component have no place in the model: "
            f"{unknown[:8]}. This is not a checkpoint of the SVD architecture this loader knows."
        )
    if "quant_conv.weight" not in vae_weights:
        vae_weights.update(identity_quant_conv(layout.vae.latent_channels, torch.float32))

    unet = build_unet(layout.unet.diffusers_config())
    load_weights(unet, unet_weights, "UNet", dtype, device, str(path))
    vae = build_vae(layout.vae.diffusers_config(), layout.vae.decoder_mid_resnets)
    load_weights(vae, vae_weights, "VAE", dtype, device, str(path))
    image_encoder = build_image_encoder(layout.image_encoder.transformers_config())
    load_weights(image_encoder, clip_weights, "CLIP image encoder", dtype, device, str(path))
    config = {
        "format": "single-file",
        "layout": layout.as_dict(),
        "unet": dict(unet.config),
        "vae": dict(vae.config),
        "image_encoder": image_encoder.config.to_dict(),
    }
    return SVDComponents(unet, vae, image_encoder, config, str(path), unused)


def _weights_of(folder: Path) -> dict[str, torch.Tensor] | None:
    """Reads a diffusers/transformers subfolder's weights (single or sharded safetensors)."""
    for name in _WEIGHT_NAMES:
        if (folder / name).exists():
            return read_tensors(folder / name)
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        weight_map = json.loads(indexes[0].read_text())["weight_map"]
        tensors: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(read_tensors(folder / shard))
        return tensors
    pickled = sorted(p.name for p in folder.glob("*.bin")) + sorted(
        p.name for p in folder.glob("*.ckpt")
    )
    if pickled:
        read_tensors(folder / pickled[0])  # raises the refusal with the conversion hint
    return None


def _load_diffusers_folder(
    folder: Path, dtype: torch.dtype, device: torch.device | str
) -> SVDComponents:
    missing = [
        name for name in DIFFUSERS_SUBFOLDERS if not (folder / name / "config.json").exists()
    ]
    if missing:
        found = sorted(p.name for p in folder.iterdir())[:12]
        raise CheckpointError(
            f"{folder} is not a diffusers SVD folder: no config.json in {missing}. Found: "
            f"{found}. Expected unet/, vae/ and image_encoder/ as published for "
            "stable-video-diffusion-img2vid[-xt]; for an original checkpoint pass the file."
        )
    weights = {name: _weights_of(folder / name) for name in DIFFUSERS_SUBFOLDERS}
    without = [name for name, value in weights.items() if value is None]
    if without:
        raise CheckpointError(
            f"{folder}: no safetensors weights in {without} (looked for {list(_WEIGHT_NAMES)} "
            "and sharded *.safetensors.index.json)"
        )

    unet_config = UNetSpatioTemporalConditionModel.load_config(folder / "unet")
    unet = build_unet(_init_kwargs(UNetSpatioTemporalConditionModel, unet_config))
    load_weights(unet, weights["unet"], "UNet", dtype, device, str(folder / "unet"))

    vae_config = AutoencoderKLTemporalDecoder.load_config(folder / "vae")
    mid_resnets = len(
        {k.split(".")[3] for k in weights["vae"] if k.startswith("decoder.mid_block.resnets.")}
    )
    vae = build_vae(_init_kwargs(AutoencoderKLTemporalDecoder, vae_config), mid_resnets)
    load_weights(vae, weights["vae"], "VAE", dtype, device, str(folder / "vae"))

    clip_config = CLIPVisionConfig.from_json_file(folder / "image_encoder" / "config.json")
    image_encoder = build_image_encoder(clip_config)
    clip_weights = {k: v for k, v in weights["image_encoder"].items()}
    load_weights(
        image_encoder,
        clip_weights,
        "CLIP image encoder",
        dtype,
        device,
        str(folder / "image_encoder"),
    )
    config = {
        "format": "diffusers",
        "unet": dict(unet.config),
        "vae": dict(vae.config),
        "image_encoder": image_encoder.config.to_dict(),
    }
    return SVDComponents(unet, vae, image_encoder, config, str(folder))


def _init_kwargs(model_class, config: dict) -> dict:
    """The config entries the class's constructor takes (diffusers adds bookkeeping keys)."""
    import inspect

    accepted = set(inspect.signature(model_class.__init__).parameters) - {"self"}
    return {key: value for key, value in config.items() if key in accepted}
