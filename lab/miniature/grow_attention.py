"""``python -m lab.miniature.grow_attention --base DIR --work DIR --steps N``: a trained base
of layout (c) grown into layout (d), the experiment of lab/NOTES.md ("Layout (d) grown").

Layout (c) has res blocks only at its finest level (16 × 16 latents), so AID's MCondition
cross-attention and adapters sit only at 8 × 8 and 4 × 4, and the model that stage 2 made
over it ignored the instruction. Layout (d) adds a spatio-temporal transformer to that level
(down and up), where AID then attaches too. Rather than a new base from scratch (hours on
2 CPU cores), the new transformers are added to the trained base with their output
projections zeroed, so the grown UNet starts as the trained one exactly, and only they
train, on the base's own objective and encoded clips.

Writes ``WORK/model`` (``svd/`` with the grown UNet, the base's VAE and image tower in fp16;
``text_encoder/`` copied), over which ``stage2_config(WORK, WORK / "model")`` trains stage 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import torch
from diffusers import UNetSpatioTemporalConditionModel

from aid_model.demo.paths import SVD_DIR, TEXT_ENCODER_DIR
from aid_model.svd import load_svd
from aid_model.synthetic import SyntheticClipDataset
from lab.miniature.base_latents import encode_base_latents
from lab.miniature.stage1 import (
    BASE_CLIPS,
    BASE_SETTINGS,
    PALETTE,
    StageSettings,
    base_loss,
    train_loop,
)

logger = logging.getLogger(__name__)

ATTENTION_DOWN = "CrossAttnDownBlockSpatioTemporal"
ATTENTION_UP = "CrossAttnUpBlockSpatioTemporal"
# The noise and σ draws of the new transformers' training; the base drew with seed 0.
DRAW_SEED = 3


def with_attention_everywhere(config: dict) -> dict:
    """A UNet config whose every level has a transformer (layout (d) of lab/NOTES.md)."""
    levels = len(config["block_out_channels"])
    return {**config, "down_block_types": (ATTENTION_DOWN,) * levels,
            "up_block_types": (ATTENTION_UP,) * levels}


def grow(unet: UNetSpatioTemporalConditionModel
         ) -> tuple[UNetSpatioTemporalConditionModel, list[str]]:
    """``unet`` with a zero-output transformer at every level that has none; returns the new
    UNet (float32, its outputs equal to ``unet``'s) and the names of the new modules."""
    config = {key: value for key, value in unet.config.items() if not key.startswith("_")}
    grown = UNetSpatioTemporalConditionModel(**with_attention_everywhere(config))
    missing, unexpected = grown.load_state_dict(unet.state_dict(), strict=False)
    if unexpected:
        raise ValueError(f"the grown UNet lacks {unexpected[:3]}: not a layout it extends")
    new = sorted({key.split(".attentions.")[0] + ".attentions." + key.split(".")[3]
                  for key in missing})
    if any(".attentions." not in key for key in missing):
        raise ValueError(f"keys other than new transformers missing: {missing[:3]}")
    with torch.no_grad():
        for name in new:
            projection = grown.get_submodule(name).proj_out
            projection.weight.zero_()
            projection.bias.zero_()
    return grown, new


def grow_base(base: Path, work: Path, settings: StageSettings) -> dict:
    """Grows ``base/svd``'s UNet, trains its new transformers alone on the base's objective
    and clips (``settings``; the clips encoded as stage 1 encodes them, resumable into
    ``work/stage1/base_latents``), then writes ``work/model``."""
    components = load_svd(base / SVD_DIR)
    grown, new = grow(components.unet)
    components.unet = grown
    grown.requires_grad_(False)
    for name in new:
        grown.get_submodule(name).requires_grad_(True)
    clips = SyntheticClipDataset(BASE_CLIPS, split="train", seed=BASE_SETTINGS.seed + 1,
                                 random_motion=True, palette=PALETTE)
    features = encode_base_latents(components, clips, work / "stage1" / "base_latents",
                                   BASE_SETTINGS.cond_aug, BASE_SETTINGS.seed)
    scale = float(components.vae.config.scaling_factor)
    summary = train_loop("grow", grown,
                         lambda step: base_loss(grown, features, scale, settings, step),
                         settings, work / "stage1")
    grown.requires_grad_(False)
    summary["grown"] = new
    summary["trainable_parameters"] = sum(
        p.numel() for name in new for p in grown.get_submodule(name).parameters())
    components.to(dtype=torch.float16)
    out = work / "model"
    components.save_pretrained(out / SVD_DIR)
    shutil.copytree(base / TEXT_ENCODER_DIR, out / TEXT_ENCODER_DIR, dirs_exist_ok=True)
    (work / "grow.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True,
                        help="a miniature folder of layout (c): svd/, text_encoder/")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(args.threads)
    settings = StageSettings(steps=args.steps, batch_size=BASE_SETTINGS.batch_size,
                             learning_rate=args.learning_rate,
                             seed=DRAW_SEED)
    print(json.dumps(grow_base(args.base, args.work, settings)))


if __name__ == "__main__":
    main()
