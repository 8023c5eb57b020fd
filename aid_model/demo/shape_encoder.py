"""``python -m aid_model.demo.shape_encoder``: the first-frame encoder trained to name what
it sees, before stage 2 **(ours, the miniature's; not the paper's)**.

Trained through the diffusion loss alone, the first-frame encoder of the MCondition query
(``AIDConfig.first_frame_query``) learned the colour of the world's objects but not their
shape (a linear probe: 49 %, chance 35 %), although the same encoder told to name the
shape does so for 95 % of held-out objects from the same ×8 latent (docs/results.md). So
this gives it that signal first: the encoder, with one linear head for the shape and one
for the colour, is trained on the world's labels at each object's latent cell, from the
first frames of training-split scenes encoded exactly as the UNet's concat input is (VAE
mode of the frame with ``cond_aug`` noise, unscaled). The result is an AID weight file
for the stage-2 config: the trained encoder and every other part at the fresh start the
trainer itself would give them. Stage 2 then starts from it and keeps the encoder fixed:

    python -m aid_model.demo.shape_encoder --set aid.first_frame_query=64 \\
        --out runs/demo/shape_encoder.safetensors
    python -m aid_model train --config configs/demo_synthetic.yaml \\
        --set aid.first_frame_query=64 \\
        --set model.aid_weights=runs/demo/shape_encoder.safetensors \\
        --set "optim.frozen_groups=[first_frame_encoder]"

On real data the world's labels do not exist; there an encoder would come from a
pretrained vision model instead, as SVD's own CLIP image encoder does.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aid_model.aid import AIDModel, attach_aid, save_aid_weights
from aid_model.conditioning import condition_latents
from aid_model.demo.train_all import STAGE2_CONFIG
from aid_model.synthetic import SyntheticClip, SyntheticClipDataset
from aid_model.synthetic.world import COLOURS, SHAPES
from aid_model.train.config import TrainConfig, load_train_config

HELDOUT_SEED = 7000  # clip seeds no benchmark set uses (they start at 0 and 1000)


@dataclass
class ObjectLabels:
    """The objects of a batch of scenes, one row each: the scene, its latent cell, labels.

    All (N,) long tensors: ``scene`` indexes the latents, (``row``, ``column``) the cell of
    the object's box centre on the latent grid, ``shape`` into ``SHAPES``, ``colour`` into
    ``COLOURS``.
    """

    scene: Tensor
    row: Tensor
    column: Tensor
    shape: Tensor
    colour: Tensor

    def __len__(self) -> int:
        return len(self.scene)

    def subset(self, index: Tensor) -> ObjectLabels:
        return ObjectLabels(*(getattr(self, name)[index] for name in
                              ("scene", "row", "column", "shape", "colour")))


def object_labels(clips: Sequence[SyntheticClip], grid: tuple[int, int],
                  image_size: tuple[int, int]) -> ObjectLabels:
    """Each first-frame object's latent cell and labels. grid: (h, w) of the latent;
    image_size: (H, W) of the frames."""
    colours = list(COLOURS)
    rows = [(index, min(int(obj.y * grid[0] / image_size[0]), grid[0] - 1),
             min(int(obj.x * grid[1] / image_size[1]), grid[1] - 1),
             SHAPES.index(obj.shape), colours.index(obj.colour))
            for index, clip in enumerate(clips) for obj in clip.objects]
    return ObjectLabels(*(column.contiguous()
                          for column in torch.tensor(rows, dtype=torch.long).unbind(1)))


@torch.no_grad()
def first_frame_latents(model: AIDModel, clips: Sequence[SyntheticClip], cond_aug: float,
                        seed: int, batch: int = 64) -> Tensor:
    """(N, C, h, w) float32: the clips' first frames as the UNet's concat input sees them."""
    generator = torch.Generator().manual_seed(seed)
    vae = model.components.vae
    frames = torch.stack([torch.from_numpy(clip.frames[0]) for clip in clips])
    frames = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return torch.cat([condition_latents(vae, frames[i:i + batch], cond_aug, generator).float()
                      for i in range(0, len(frames), batch)])


class LabelHeads(nn.Module):
    """Linear shape and colour classifiers over the encoder's features at a cell."""

    def __init__(self, width: int):
        super().__init__()
        self.shape = nn.Linear(width, len(SHAPES))
        self.colour = nn.Linear(width, len(COLOURS))

    def forward(self, features: Tensor, labels: ObjectLabels,
                scenes: Tensor) -> tuple[Tensor, Tensor]:
        """features: (B, width, h, w) of the scenes ``scenes`` (B,), sorted, holding every
        ``labels.scene`` → (shape logits (N, 3), colour logits (N, 4))."""
        where = torch.searchsorted(scenes, labels.scene)
        at_objects = features[where, :, labels.row, labels.column]
        return self.shape(at_objects), self.colour(at_objects)


@torch.no_grad()
def accuracy(encoder: nn.Module, heads: LabelHeads, latents: Tensor,
             labels: ObjectLabels) -> tuple[float, float]:
    """(shape, colour) accuracy over every object of ``labels``."""
    scenes = torch.arange(len(latents))
    shape_logits, colour_logits = heads(encoder(latents), labels, scenes)
    return ((shape_logits.argmax(1) == labels.shape).float().mean().item(),
            (colour_logits.argmax(1) == labels.colour).float().mean().item())


@dataclass
class Settings:
    """How the encoder is trained: scenes, steps, objects a step, learning rate, seeds."""

    train_scenes: int = 3000
    train_seed: int = 123456
    heldout_scenes: int = 400
    steps: int = 1500
    objects_per_step: int = 256
    lr: float = 2e-3


def train_shape_encoder(config: TrainConfig, settings: Settings,
                        log=print) -> tuple[AIDModel, dict]:
    """The stage-2 model of ``config`` (fresh, seeded as the trainer seeds it) with its
    first-frame encoder trained on the world's labels; and the measured accuracies."""
    from aid_model.svd import load_svd

    if not config.aid.first_frame_query:
        raise ValueError(
            "aid.first_frame_query is 0: there is no first-frame encoder to train; "
            "pass --set aid.first_frame_query=64 (and the same to the stage-2 run)"
        )
    if config.conditioning.cond_aug.distribution != "fixed":
        raise ValueError("the concat latents are encoded with conditioning.cond_aug.value: "
                         "set conditioning.cond_aug.distribution=fixed")
    torch.manual_seed(config.seed)  # as the trainer: the other parts start where its run would
    model = attach_aid(load_svd(config.model.svd), config.aid)
    encoder = model.unet.first_frame_encoder
    cond_aug = config.conditioning.cond_aug.value

    def scenes(split: str, count: int, seed: int) -> tuple[Tensor, ObjectLabels]:
        clips = [SyntheticClipDataset(count, split=split, seed=seed).clip(i)
                 for i in range(count)]
        latents = first_frame_latents(model, clips, cond_aug, seed)
        return latents, object_labels(clips, latents.shape[-2:], clips[0].frames.shape[1:3])

    train_latents, train_labels = scenes("train", settings.train_scenes, settings.train_seed)
    test_latents, test_labels = scenes("heldout", settings.heldout_scenes, HELDOUT_SEED)
    generator = torch.Generator().manual_seed(config.seed)
    heads = LabelHeads(config.aid.first_frame_query)
    trained = [*encoder.parameters(), *heads.parameters()]
    optimizer = torch.optim.Adam(trained, lr=settings.lr)
    encoder.train()
    for step in range(1, settings.steps + 1):
        batch = train_labels.subset(
            torch.randint(len(train_labels), (settings.objects_per_step,), generator=generator))
        scene_ids = torch.unique(batch.scene)  # sorted: each scene encoded once
        shape_logits, colour_logits = heads(encoder(train_latents[scene_ids]), batch,
                                            scene_ids)
        loss = F.cross_entropy(shape_logits, batch.shape) + F.cross_entropy(
            colour_logits, batch.colour)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 250 == 0 or step == settings.steps:
            shape, colour = accuracy(encoder, heads, test_latents, test_labels)
            log(f"step {step}: loss {loss.item():.3f}; held-out objects named right: "
                f"shape {shape:.1%}, colour {colour:.1%}")
    encoder.zero_grad(set_to_none=True)
    shape, colour = accuracy(encoder, heads, test_latents, test_labels)
    chance = torch.bincount(test_labels.shape).max().item() / len(test_labels)
    rms = scale_to_unit_rms(encoder, train_latents)
    report = {"heldout_objects": len(test_labels), "shape_accuracy": round(shape, 4),
              "colour_accuracy": round(colour, 4), "shape_chance": round(chance, 4),
              "feature_rms_before_scaling": round(rms, 4), "settings": vars(settings)}
    return model, report


@torch.no_grad()
def scale_to_unit_rms(encoder: nn.Module, latents: Tensor, batch: int = 256) -> float:
    """Divides the encoder's last convolution by its features' RMS over ``latents``, so
    that they have RMS 1; returns the RMS before.

    Why: the query adds ``W_l·f`` with W_l trained by AdamW, whose steps do not shrink for
    a large input, so a feature scale of 7 (what the labels left) moves the base's query
    about 5× faster than the jointly trained encoder's (RMS 1.4) did; stage 2 from such an
    encoder had a loss 6.1 % above the bundled run's over steps 1,501–1,817 (docs/results.md).
    A uniform scale leaves what the features separate unchanged.
    """
    squares, count = 0.0, 0
    for i in range(0, len(latents), batch):
        features = encoder(latents[i:i + batch])
        squares += features.pow(2).sum().item()
        count += features.numel()
    rms = (squares / count) ** 0.5
    last = encoder.layers[-1]
    last.weight.div_(rms)
    last.bias.div_(rms)
    return rms


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aid_model.demo.shape_encoder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=STAGE2_CONFIG,
                        help="the stage-2 config the file is for (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="the same overrides the stage-2 run gets (its aid section must "
                             "match), e.g. aid.first_frame_query=64")
    parser.add_argument("--out", required=True, help="the AID weight file to write")
    parser.add_argument("--steps", type=int, default=Settings.steps)
    parser.add_argument("--train-scenes", type=int, default=Settings.train_scenes)
    parser.add_argument("--heldout-scenes", type=int, default=Settings.heldout_scenes)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_train_config(args.config, args.set)
    settings = Settings(train_scenes=args.train_scenes, heldout_scenes=args.heldout_scenes,
                        steps=args.steps)
    model, report = train_shape_encoder(config, settings, log=lambda m: print(m, flush=True))
    out = save_aid_weights(model, args.out)
    report_path = Path(out).with_suffix(".json")
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} (the encoder: shape {report['shape_accuracy']:.1%}, colour "
          f"{report['colour_accuracy']:.1%} of {report['heldout_objects']} held-out objects) "
          f"and {report_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
