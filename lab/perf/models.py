"""The benchmark models: SVD-shaped modules with random weights, built from configs.

Nothing is downloaded. Three sizes share SVD's topology and conventions (as ``load_svd``
builds them: the corrected GroupNorm eps, the one-token cross-attention shortcut; frozen,
eval mode):

- ``tiny``: the parity fixture's sizes (UNet 32/64, context 64); for tests.
- ``small``: four UNet levels like SVD at a fifth of its width (62 M UNet parameters),
  8 frames at 128x128 (latents 16x16): about a second per step on one CPU core.
- ``svd-shape``: svd_xt's architecture (UNet 320/640/1280/1280, 2 res blocks, attention on
  the first three levels, 64-channel heads, context 1024; VAE 128/256/512/512; OpenCLIP
  ViT-H/14 vision tower), for a GPU: 1.5 B UNet parameters, far too slow on a CPU.

Every CLIP tower sees 224 px images, because diffusers' ``StableVideoDiffusionPipeline``
resizes its input to 224 whatever the encoder's config says.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

import torch
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from aid_model.aid import AIDConfig, AIDModel, attach_aid
from aid_model.svd import SVDComponents
from aid_model.svd.build import as_loaded_svd_unet

ModuleType = TypeVar("ModuleType", bound=torch.nn.Module)

CLIP_IMAGE_SIZE = 224  # what diffusers' SVD pipeline feeds the image encoder


def _unet(widths: tuple[int, ...], head_channels: int, context: int, layers: int,
          attention_levels: int) -> dict:
    """diffusers ``UNetSpatioTemporalConditionModel`` arguments for an SVD-like UNet."""
    levels = len(widths)
    down = ["CrossAttnDownBlockSpatioTemporal"] * attention_levels
    down += ["DownBlockSpatioTemporal"] * (levels - attention_levels)
    up = ["UpBlockSpatioTemporal"] * (levels - attention_levels)
    up += ["CrossAttnUpBlockSpatioTemporal"] * attention_levels
    return {
        "in_channels": 8,
        "out_channels": 4,
        "down_block_types": tuple(down),
        "up_block_types": tuple(up),
        "block_out_channels": widths,
        "layers_per_block": layers,
        "cross_attention_dim": context,
        "num_attention_heads": tuple(width // head_channels for width in widths),
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 768,
    }


def _vae(widths: tuple[int, ...]) -> dict:
    """diffusers ``AutoencoderKLTemporalDecoder`` arguments; 2 resnets a level as SVD's (the
    decoder's mid block then has the original's two resnets without ``load_svd``'s rebuild)."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * len(widths),
        "block_out_channels": widths,
        "layers_per_block": 2,
        "latent_channels": 4,
    }


def _clip(width: int, layers: int, heads: int, projection: int) -> dict:
    """transformers ``CLIPVisionConfig`` arguments (OpenCLIP conventions: exact GELU)."""
    return {
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "patch_size": 14,
        "image_size": CLIP_IMAGE_SIZE,
        "projection_dim": projection,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
    }


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark size: the modules' configs and the clip they generate.

    Attributes:
        name: ``tiny``, ``small`` or ``svd-shape``.
        unet, vae, image_encoder: constructor arguments (diffusers, diffusers, transformers).
        frames, height, width: the clip (pixels; multiples of the size factor).
        steps: EDM steps per clip.
        decode_chunk: frames per temporal VAE decode call, on both pipelines.
        aid: the AID model attached for the AID figures (T = ``frames``).
        guidance_interval: (σ_lo, σ_hi) for the guidance-interval figures.
    """

    name: str
    unet: dict
    vae: dict
    image_encoder: dict
    frames: int
    height: int
    width: int
    steps: int
    decode_chunk: int
    aid: AIDConfig
    guidance_interval: tuple[float, float] = (0.3, 100.0)
    notes: list[str] = field(default_factory=list)

    @property
    def size_multiple(self) -> int:
        """Pixel sizes must be multiples of this (VAE factor × UNet downsampling)."""
        vae_levels = len(self.vae["block_out_channels"])
        unet_levels = len(self.unet["block_out_channels"])
        return 2 ** (vae_levels - 1) * 2 ** (unet_levels - 1)

    @property
    def latent_size(self) -> tuple[int, int]:
        """(h, w) of the VAE latents of a ``height`` × ``width`` clip."""
        factor = 2 ** (len(self.vae["block_out_channels"]) - 1)
        return self.height // factor, self.width // factor

    def with_clip(self, frames: int | None = None, height: int | None = None,
                  width: int | None = None, steps: int | None = None) -> BenchConfig:
        """The same models with another clip; a new T also sets the AID model's T."""
        frames = frames or self.frames
        changed = replace(
            self,
            frames=frames,
            height=height or self.height,
            width=width or self.width,
            steps=steps or self.steps,
            decode_chunk=min(self.decode_chunk, frames),
            aid=replace(self.aid, num_frames=frames),
        )
        for name in ("height", "width"):
            value = getattr(changed, name)
            if value % changed.size_multiple:
                raise ValueError(
                    f"--{name} {value} is not a multiple of {changed.size_multiple}, the "
                    f"'{self.name}' models' size factor"
                )
        if changed.steps < 2:
            raise ValueError(f"--steps must be >= 2 (a step time needs two steps), got {steps}")
        return changed

    def describe(self) -> str:
        return (f"{self.name}: UNet {list(self.unet['block_out_channels'])}, context "
                f"{self.unet['cross_attention_dim']}; {self.frames} frames "
                f"{self.height}x{self.width}, {self.steps} steps, decode chunk "
                f"{self.decode_chunk}")


CONFIGS: dict[str, BenchConfig] = {
    "tiny": BenchConfig(
        name="tiny",
        unet=_unet((32, 64), head_channels=16, context=64, layers=1, attention_levels=2),
        vae=_vae((32, 64)),
        image_encoder=_clip(width=64, layers=2, heads=2, projection=64),
        frames=6, height=32, width=32, steps=3, decode_chunk=3,
        aid=AIDConfig(num_frames=6, num_states=2, dqformer_heads=4),
    ),
    "small": BenchConfig(
        name="small",
        unet=_unet((64, 128, 256, 256), head_channels=32, context=256, layers=2,
                   attention_levels=3),
        vae=_vae((32, 64, 128, 128)),
        image_encoder=_clip(width=256, layers=4, heads=4, projection=256),
        frames=8, height=128, width=128, steps=6, decode_chunk=4,
        aid=AIDConfig(num_frames=8, num_states=4, dqformer_heads=8),
    ),
    "svd-shape": BenchConfig(
        name="svd-shape",
        unet=_unet((320, 640, 1280, 1280), head_channels=64, context=1024, layers=2,
                   attention_levels=3),
        vae=_vae((128, 256, 512, 512)),
        image_encoder=_clip(width=1280, layers=32, heads=16, projection=1024),
        frames=16, height=256, width=256, steps=25, decode_chunk=8,
        aid=AIDConfig(num_frames=16),
        notes=["svd_xt's architecture; on a CPU one step takes minutes: use --device cuda"],
    ),
}


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str) -> Iterator[None]:
    """Random initialisation from ``seed``, leaving the caller's global RNG state as it was."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def built_on(device: torch.device | str, build: Callable[[], ModuleType]) -> ModuleType:
    """``build()`` with its tensors created on ``device`` (no copy of the big weights).

    The default-device context misses tensors made by the legacy ``torch.Tensor([...])``
    constructor, which diffusers uses for the AlphaBlender ``mix_factor`` parameters: they
    would stay on the CPU beside a CUDA UNet (seen on an H200, torch 2.11). The final
    ``to(device)`` moves those few and leaves the rest where they are.
    """
    with torch.device(device):
        module = build()
    return module.to(device)


def build_components(config: BenchConfig, device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32, seed: int = 0) -> SVDComponents:
    """Random-weight SVD components (same ``seed`` → same weights), frozen, eval mode.

    Built directly on ``device`` (the svd-shape UNet alone is 6 GB in float32).
    """
    with seeded(seed, device):
        unet = built_on(device, lambda: UNetSpatioTemporalConditionModel(**config.unet))
        vae = built_on(device, lambda: AutoencoderKLTemporalDecoder(**config.vae))
        image_encoder = built_on(device, lambda: CLIPVisionModelWithProjection(
            CLIPVisionConfig(**config.image_encoder)))
    as_loaded_svd_unet(unet)
    for module in (unet, vae, image_encoder):
        cast_(module, dtype)
        module.requires_grad_(False).eval()
    configs = {"unet": dict(unet.config), "vae": dict(vae.config),
               "image_encoder": image_encoder.config.to_dict()}
    return SVDComponents(unet, vae, image_encoder, configs, f"random weights ({config.name})")


def cast_(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """``module.to(dtype)`` in place, without diffusers' warning that a ``to()`` cast is
    not ``from_pretrained(torch_dtype=...)`` (no module of these needs float32)."""
    if dtype == torch.float32:
        return
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        module.to(dtype=dtype)
    finally:
        diffusers_logging.set_verbosity(verbosity)


def attach_aid_copy(components: SVDComponents, config: AIDConfig, copy_unet: bool = True,
                    seed: int = 0) -> tuple[SVDComponents, AIDModel]:
    """AID attached to a copy of the UNet (the VAE and CLIP tower are shared), so the
    plain SVD UNet stays available for side-by-side runs; ``copy_unet=False`` attaches to
    ``components`` itself (one process measuring only AID's memory)."""
    unet = copy.deepcopy(components.unet) if copy_unet else components.unet
    aid_components = SVDComponents(unet, components.vae, components.image_encoder,
                                   components.config, components.source)
    with seeded(seed, components.device):  # AID's new weights (DQFormer queries, …)
        model = attach_aid(aid_components, config)
    model.eval()
    return aid_components, model


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
