"""``python -m lab.miniature.layouts``: candidate latent layouts of the miniature, measured.

Issue #37: on today's 8 × 8 latent grid an object of 10–16 px covers 1.25–2 cells, too few
to bind a shape word to it. A VAE ×4 gives 16 × 16 latents (2.5–4 cells an object side);
the question is what the UNet then costs. For each candidate the command prints the grid,
the cells an object side covers, the parameters, and measured seconds per

- stage-2 step: AID attached (the demo's ``aid:`` config), the trainer's loss
  (``training_loss``: condition dropout, σ ~ LogNormal(0.7, 1.6), EDM weighting), backward,
  clipping at norm 1 and AdamW on ``trainable_parameters``; batch B × 8 frames of random
  features with the demo's shapes (latents, CLIP token and tokens, text, states), as the
  trainer reads them from its feature cache; float32.
- VAE step: stage 1's ``vae_loss`` (encode, sample, temporal decode, MSE + KL) on a batch
  of random clips, backward, clipping, AdamW on the whole VAE.

Each at 1 and 2 torch threads: ``warmup`` steps, then the median of ``repeats``, the
candidates interleaved (``lab.perf.measure.interleave``) so a shared machine's drift hits
all alike.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
from torch import Tensor

from aid_model.aid import AIDConfig, attach_aid, count_parameters, trainable_parameters
from aid_model.demo import configs
from aid_model.svd.build import as_loaded_svd_unet
from aid_model.train.config import from_dict, read_config_file
from aid_model.train.dropout import DropoutRates
from aid_model.train.features import ClipFeatures
from aid_model.train.module import AIDDenoisingModule
from aid_model.train.objective import ObjectiveSettings, training_loss
from lab.miniature.stage1 import vae_loss
from lab.perf.measure import Stats, interleave, table, timed

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo_synthetic.yaml"
OBJECT_SIDES = (10, 16)  # px: the world's smallest and largest objects
LEARNING_RATE, GRAD_CLIP = 1e-4, 1.0  # the trainer's optim.lr and optim.grad_clip
STAGE2_STEPS, VAE_STEPS = 4_500, 2_000  # the bundled budgets, for the wall-time estimates
DEVICE = torch.device("cpu")


def vae_config(widths: tuple[int, ...], latent_channels: int = 8) -> dict:
    """``AutoencoderKLTemporalDecoder`` arguments; downsampling ×2^(levels − 1)."""
    return {**configs.VAE, "down_block_types": ("DownEncoderBlock2D",) * len(widths),
            "block_out_channels": widths, "latent_channels": latent_channels}


def unet_config(widths: tuple[int, ...], attention: tuple[bool, ...],
                latent_channels: int = 8) -> dict:
    """``UNetSpatioTemporalConditionModel`` arguments: one level per width, finest first;
    ``attention[i]`` puts spatial + temporal transformers (and so AID's MCondition
    cross-attention and adapters) at level i, else plain spatio-temporal res blocks."""
    down = tuple("CrossAttnDownBlockSpatioTemporal" if a else "DownBlockSpatioTemporal"
                 for a in attention)
    up = tuple("CrossAttnUpBlockSpatioTemporal" if a else "UpBlockSpatioTemporal"
               for a in reversed(attention))
    return {**configs.UNET, "in_channels": 2 * latent_channels, "out_channels": latent_channels,
            "down_block_types": down, "up_block_types": up, "block_out_channels": widths,
            "num_attention_heads": tuple(max(1, w // configs.UNET_HEAD_CHANNELS)
                                         for w in widths)}


VAE_X4 = vae_config((32, 32, 64))  # the ×8 VAE less its 8 × 8 level
VAE_X8 = vae_config((32, 32, 64, 64))  # the miniature before #37


@dataclass(frozen=True)
class Layout:
    """A candidate: VAE and UNet as ``aid_model.demo.configs`` dicts."""

    name: str
    description: str
    vae: dict
    unet: dict

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.vae["block_out_channels"]) - 1)

    @property
    def latent_side(self) -> int:
        return configs.IMAGE_SIZE // self.downsampling


LAYOUTS = {
    "a": Layout("a", "before #37: VAE ×8; UNet 32/64, attention at both", VAE_X8,
                unet_config((32, 64), (True, True))),
    "b": Layout("b", "VAE ×4; UNet 16/32/64, attention at 8×8 and 4×4", VAE_X4,
                unet_config((16, 32, 64), (False, True, True))),
    "c": Layout("c", "VAE ×4; UNet 32/32/64, attention at 8×8 and 4×4", VAE_X4,
                unet_config((32, 32, 64), (False, True, True))),
    "d": Layout("d", "VAE ×4; UNet 32/32/64, attention at every level", VAE_X4,
                unet_config((32, 32, 64), (True, True, True))),
}


def demo_aid_config(path: Path = DEMO_CONFIG) -> AIDConfig:
    """The demo's ``aid:`` section, read as the trainer reads it."""
    return from_dict(AIDConfig, read_config_file(path).get("aid"), "aid")


GROUPS = 32  # diffusers' and ComfyUI's SVD UNet: GroupNorm(32, ·) throughout, not a config


@contextlib.contextmanager
def narrow_group_norms():
    """Builds every GroupNorm with ``gcd(32, channels)`` groups, so a 16-channel level can
    be built at all. Only for measuring its cost: neither diffusers' loader
    (``UNetSpatioTemporalConditionModel`` has no ``norm_num_groups``) nor ComfyUI's SVD
    could load such a UNet."""
    original = torch.nn.GroupNorm.__init__

    def init(self, num_groups, num_channels, *args, **kwargs):
        original(self, math.gcd(num_groups, num_channels), num_channels, *args, **kwargs)

    torch.nn.GroupNorm.__init__ = init
    try:
        yield
    finally:
        torch.nn.GroupNorm.__init__ = original


def loadable(layout: Layout) -> bool:
    """Whether the product's classes build it unchanged (every UNet width a multiple of 32)."""
    return all(width % GROUPS == 0 for width in layout.unet["block_out_channels"])


class _UNetOnly:
    """What ``attach_aid`` needs when only the UNet exists (e_v then has the context
    width, which the demo's CLIP projection has too)."""

    def __init__(self, unet):
        self.unet = unet


class Stage2Step:
    """AID on ``layout``'s UNet and a batch of random features; ``step()`` is one
    optimizer step of the trainer's."""

    def __init__(self, layout: Layout, aid: AIDConfig, batch: int, seed: int = 0):
        torch.manual_seed(seed)
        with contextlib.nullcontext() if loadable(layout) else narrow_group_norms():
            unet = UNetSpatioTemporalConditionModel(**layout.unet)
        as_loaded_svd_unet(unet)
        self.base_parameters = sum(p.numel() for p in unet.parameters())
        self.model = attach_aid(_UNetOnly(unet), aid)
        self.model.train()
        unet.train()
        self.parameters = list(trainable_parameters(self.model).values())
        self.trainable = count_parameters(self.model).trainable
        self.optimizer = torch.optim.AdamW(self.parameters, lr=LEARNING_RATE)
        self.denoise = AIDDenoisingModule(self.model)
        self.features = _features(layout, aid, batch, seed)
        width = configs.CONTEXT_WIDTH
        self.objective = ObjectiveSettings(
            seed=seed, scaling_factor=1.0, p_mean=0.7, p_std=1.6, loss_frames="predicted",
            dropout=DropoutRates(), motion_bucket_id=127.0,
            null_instruction=torch.zeros(77, width),
            null_states=torch.zeros(aid.num_states * 77, width))
        self.steps = 0

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = training_loss(self.denoise, self.features, self.steps, 0, self.objective).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, GRAD_CLIP)
        self.optimizer.step()
        self.steps += 1


def _features(layout: Layout, aid: AIDConfig, batch: int, seed: int) -> ClipFeatures:
    """Random features with the shapes the demo's feature cache holds: latents
    (B, T, C, h, w), the CLIP token (B, 1, d) and tokens (B, 1 + patches, d), the
    instruction (B, 77, d) and states (B, S·77, d)."""
    generator = torch.Generator().manual_seed(seed + 10)
    side, channels = layout.latent_side, layout.vae["latent_channels"]
    width = configs.CONTEXT_WIDTH
    clip_tokens = 1 + (configs.IMAGE_SIZE // configs.IMAGE_ENCODER["patch_size"]) ** 2

    def random(*shape: int) -> Tensor:
        return torch.randn(shape, generator=generator)

    return ClipFeatures(
        latents=random(batch, configs.NUM_FRAMES, channels, side, side),
        concat_latents=random(batch, configs.NUM_FRAMES, channels, side, side),
        cond_aug=torch.full((batch,), 0.02),
        image_embeddings=random(batch, 1, width),
        image_context=random(batch, clip_tokens, width),
        instruction_embeddings=random(batch, 77, width),
        state_embeddings=random(batch, aid.num_states * 77, width),
        fps=torch.full((batch,), float(configs.FPS)),
        num_reference_frames=torch.ones(batch, dtype=torch.long),
        indices=torch.arange(batch),
    )


class VAEStep:
    """Stage 1's VAE step (``vae_loss``, clipping, AdamW) on ``clips`` random clips
    (B, 8, 3, 64, 64) in [−1, 1]."""

    def __init__(self, layout: Layout, clips: int, seed: int = 0):
        torch.manual_seed(seed)
        self.vae = AutoencoderKLTemporalDecoder(**layout.vae).train()
        self.parameters = list(self.vae.parameters())
        self.optimizer = torch.optim.AdamW(self.parameters, lr=1e-3, weight_decay=0.01)
        generator = torch.Generator().manual_seed(seed + 20)
        size = configs.IMAGE_SIZE
        self.frames = torch.rand((clips, configs.NUM_FRAMES, 3, size, size),
                                 generator=generator) * 2 - 1
        self.generator = generator

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        vae_loss(self.vae, self.frames, self.generator).backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, GRAD_CLIP)
        self.optimizer.step()


def _workload(step: Callable[[], None]):
    return lambda: {"step_s": timed(DEVICE, step)}


def measure(layouts: dict[str, Layout], batch: int, vae_clips: int, threads: tuple[int, ...],
            warmup: int, repeats: int, log: Callable[[str], None] = print
            ) -> tuple[dict[str, dict], dict[int, dict[str, dict[str, Stats]]]]:
    """Parameter counts per layout, and per thread count {layout: {"stage2"|"vae": Stats}}."""
    aid = demo_aid_config()
    stage2 = {name: Stage2Step(layout, aid, batch) for name, layout in layouts.items()}
    vae = {name: VAEStep(layout, vae_clips) for name, layout in layouts.items()}
    counts = {name: {"unet": stage2[name].base_parameters, "aid": stage2[name].trainable,
                     "vae": sum(p.numel() for p in vae[name].parameters)}
              for name in layouts}
    times: dict[int, dict[str, dict[str, Stats]]] = {}
    previous = torch.get_num_threads()
    try:
        for count in threads:
            torch.set_num_threads(count)
            log(f"{count} thread(s): stage-2 steps, batch {batch}")
            s2 = interleave({n: _workload(s.step) for n, s in stage2.items()}, repeats,
                            warmup, log)
            log(f"{count} thread(s): VAE steps, {vae_clips} clips")
            v = interleave({n: _workload(s.step) for n, s in vae.items()}, repeats, warmup, log)
            times[count] = {n: {"stage2": s2[n]["step_s"], "vae": v[n]["step_s"]}
                            for n in layouts}
    finally:
        torch.set_num_threads(previous)
    return counts, times


def hours(seconds_per_step: float, steps: int) -> str:
    return f"{seconds_per_step * steps / 3600:.1f} h"


def layouts_table(layouts: dict[str, Layout], counts: dict[str, dict],
                  times: dict[int, dict[str, dict[str, Stats]]], batch: int, train_batch: int,
                  vae_clips: int) -> str:
    """The Markdown table; stage-2 seconds are scaled from ``batch`` to ``train_batch``
    linearly (per-sample cost; the steps are compute-bound on a CPU)."""
    scale = train_batch / batch
    thread_counts = sorted(times)
    headers = ["layout", "latents", "cells / object side (10, 16 px)", "UNet params",
               "AID trainable", "VAE params"]
    for count in thread_counts:
        headers.append(f"stage-2 s/step ×{count} thr (batch {batch})")
    for count in thread_counts:
        headers.append(f"VAE s/step ×{count} thr ({vae_clips} clips)")
    best = max(thread_counts)
    headers += [f"stage-2 {STAGE2_STEPS:,} steps at batch {train_batch}, {best} thr",
                f"VAE {VAE_STEPS:,} steps, {best} thr"]
    rows = []
    for name, layout in layouts.items():
        side = layout.latent_side
        cells = ", ".join(f"{px / layout.downsampling:.2g}" for px in OBJECT_SIDES)
        row = [f"({name}) {layout.description}"
               + ("" if loadable(layout) else " [16-group GroupNorms: not loadable]"),
               f"{side}×{side}×{layout.vae['latent_channels']} (VAE ×{layout.downsampling})",
               cells, f"{counts[name]['unet']:,}", f"{counts[name]['aid']:,}",
               f"{counts[name]['vae']:,}"]
        row += [_median(times[c][name]["stage2"]) for c in thread_counts]
        row += [_median(times[c][name]["vae"]) for c in thread_counts]
        row += [hours(times[best][name]["stage2"].median * scale, STAGE2_STEPS),
                hours(times[best][name]["vae"].median, VAE_STEPS)]
        rows.append(row)
    return table("Candidate latent layouts of the miniature (float32, CPU)", headers, rows)


def _median(stats: Stats) -> str:
    return f"{stats.median:.3f} ({stats.low:.3f}–{stats.high:.3f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.miniature.layouts",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--layouts", default=",".join(LAYOUTS),
                        help=f"which candidates, e.g. a,b (default: all of {','.join(LAYOUTS)})")
    parser.add_argument("--batch", type=int, default=32,
                        help="stage-2 samples per timed step (default: the trainer's 32)")
    parser.add_argument("--train-batch", type=int, default=32,
                        help="the trainer's batch the wall-time estimate scales to (default 32)")
    parser.add_argument("--vae-clips", type=int, default=2,
                        help="clips per VAE step (default: stage 1's 2)")
    parser.add_argument("--threads", default="1,2", help="torch thread counts (default 1,2)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (default 5)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.layouts.split(",") if n.strip()]
    unknown = [n for n in names if n not in LAYOUTS]
    if unknown:
        raise SystemExit(f"unknown layouts {unknown}; choose from {','.join(LAYOUTS)}")
    layouts = {n: LAYOUTS[n] for n in names}
    threads = tuple(int(t) for t in args.threads.split(","))
    counts, times = measure(layouts, args.batch, args.vae_clips, threads, args.warmup,
                            args.repeats)
    print(f"load average before the table: {os.getloadavg()}; torch {torch.__version__}")
    print(layouts_table(layouts, counts, times, args.batch, args.train_batch, args.vae_clips))


if __name__ == "__main__":
    main()
