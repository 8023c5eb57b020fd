"""``python -m lab.miniature.vae_check``: how cleanly the miniature's VAE reconstructs.

Issue #37 asks for a VAE whose flat background comes back within 0.005 and whose objects
keep their colour and shape. For a trained ``--svd`` folder (default: the bundled
``demo_model/svd``) or a VAE stage still training (``--checkpoint WORK/stage1/vae.ckpt``:
its EMA weights), the command prints, in [0, 1] units:

- flat frames of one grey each (the varied palette's range and the exact palette's 200):
  mean absolute error of a whole clip of that grey;
- the first ``--scenes`` held-out scenes in each palette, each clip encoded and decoded
  whole (the temporal decoder sees all 8 frames): the error on background pixels (the
  scene's grey in every frame of the clip and away from the objects, as the benchmark's
  background drift counts them: ``lab.benchmark.drift``),
  on all pixels, and the share of objects that the detector finds again, same colour and
  shape, in the reconstructed last frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from aid_model.demo.paths import DEMO_DIR, SVD_DIR
from aid_model.synthetic import SyntheticClipDataset, WorldConfig
from aid_model.synthetic.detect import detect_objects, scene_palette_of
from aid_model.video_decode import decode_to_frames
from lab.benchmark.drift import far_from_objects

GREYS = (150, 175, 200, 222, 240)


def load_vae(svd: Path | None, checkpoint: Path | None):
    """The VAE of an ``svd`` folder, or that of a stage-1 ``checkpoint`` in the miniature's
    current layout (``aid_model.demo.configs``): ``vae.ckpt`` or ``decoder.ckpt``, the
    weights it trains replaced by their EMA."""
    if checkpoint is None:
        from aid_model.svd import load_svd

        return load_svd(svd).vae
    from aid_model.demo.components import build_components

    vae = build_components().vae
    state = torch.load(checkpoint, weights_only=True, map_location="cpu")
    vae.load_state_dict(state["module"])
    vae.load_state_dict(state["ema"]["shadow"], strict=False)
    return vae.eval()


@torch.no_grad()
def reconstruct(vae, frames: Tensor) -> Tensor:
    """(T, H, W, 3) frames in [0, 1] → the VAE's round trip, same shape and range."""
    pixels = frames.permute(0, 3, 1, 2) * 2.0 - 1.0
    latents = vae.encode(pixels).latent_dist.mode()
    return decode_to_frames(vae, latents.unsqueeze(0))[0]


def flat_errors(vae, greys: tuple[int, ...] = GREYS, frames: int = 8, size: int = 64
                ) -> dict[int, float]:
    """Mean absolute error of the round trip of a clip of flat ``grey``, per grey."""
    errors = {}
    for grey in greys:
        clip = torch.full((frames, size, size, 3), grey / 255.0)
        errors[grey] = (reconstruct(vae, clip) - clip).abs().mean().item()
    return errors


def objects_found(original: np.ndarray, reconstruction: np.ndarray, config: WorldConfig
                  ) -> tuple[int, int]:
    """(objects of ``original`` whose colour and shape the detector finds in
    ``reconstruction``, objects of ``original``); frames (H, W, 3) uint8."""
    palette = scene_palette_of(original, config)
    before = [(o.colour, o.shape) for o in detect_objects(original, config, palette=palette)]
    after = [(o.colour, o.shape) for o in detect_objects(reconstruction, config,
                                                         palette=palette)]
    found = 0
    for identity in before:
        if identity in after:
            after.remove(identity)
            found += 1
    return found, len(before)


def scene_errors(vae, palette: str, scenes: int) -> dict[str, float]:
    """Background error, whole-frame error and objects kept over the first ``scenes``
    held-out scenes drawn in ``palette``."""
    dataset = SyntheticClipDataset(scenes, split="heldout", palette=palette)
    background, whole, found, total = [], [], 0, 0
    for index in range(scenes):
        clip = dataset.clip(index)
        truth = torch.from_numpy(clip.frames).float() / 255.0
        rebuilt = reconstruct(vae, truth)
        difference = (rebuilt - truth).abs()
        mask = far_from_objects(clip.frames, clip.palette.background)
        background.append(difference[:, mask].mean().item())
        whole.append(difference.mean().item())
        last = (rebuilt[-1].numpy() * 255.0).round().astype(np.uint8)
        kept, count = objects_found(clip.frames[-1], last, dataset.config)
        found, total = found + kept, total + count
    return {"background": float(np.mean(background)), "whole": float(np.mean(whole)),
            "objects_kept": found / max(total, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--svd", type=Path, default=DEMO_DIR / SVD_DIR)
    source.add_argument("--checkpoint", type=Path,
                        help="a stage-1 vae.ckpt or decoder.ckpt (EMA weights)")
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vae = load_vae(None if args.checkpoint else args.svd, args.checkpoint)
    print(f"VAE of {args.checkpoint or args.svd}")
    print("| flat grey | " + " | ".join(str(g) for g in GREYS) + " |")
    print("|---" * (len(GREYS) + 1) + "|")
    print("| error | " + " | ".join(f"{e:.4f}" for e in flat_errors(vae).values()) + " |")
    print(f"\n| {args.scenes} held-out scenes | background error | pixel error | objects kept |")
    print("|---|---|---|---|")
    for palette in ("exact", "varied"):
        scores = scene_errors(vae, palette, args.scenes)
        print(f"| {palette} palette | {scores['background']:.4f} | {scores['whole']:.4f} | "
              f"{100 * scores['objects_kept']:.1f} % |")


if __name__ == "__main__":
    main()
