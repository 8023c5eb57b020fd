"""``python -m lab.miniature.build_base --work DIR --out demo_model``: stage 1 of the
miniature (VAE + base image-to-video + random frozen text tower), resumable.

Writes ``OUT/svd`` (a diffusers folder that ``load_svd`` reads), ``OUT/text_encoder`` and
``WORK/stage1.json`` (losses and wall times). ``--keep-vae`` retrains only the base UNet
over the VAE and CLIP image tower already in ``OUT/svd`` (the VAE stage is the longest of
stage 1, and the base is what the benchmark says limits the model); its ``stage1.json``
carries the kept VAE's summaries (its VAE and decoder stages) over from
``OUT/demo_model.json``, marked ``kept``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from aid_model.demo.components import build_components, write_text_encoder
from aid_model.demo.paths import DEMO_DIR, MANIFEST, SVD_DIR, TEXT_ENCODER_DIR
from aid_model.synthetic import vocabulary
from lab.miniature.stage1 import train_base, train_stage1


def build_base(work: Path, out: Path, seed: int = 0, keep_vae: bool = False,
               device: str = "cpu") -> list[dict]:
    """Trains stage 1 on ``device`` (checkpoints in ``work``) and writes ``out``."""
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    components = build_components(seed)
    if keep_vae:
        # Saved below: the kept VAE and image tower must be what is written back.
        components = _with_kept_vae(components, out / SVD_DIR)
    components.to(device=torch.device(device))
    if keep_vae:
        summaries = [*kept_vae_summaries(out), train_base(components, work)]
    else:
        summaries = train_stage1(components, work)
    # fp16 on disk halves the repository's share (SVD ships fp16 too); loads as float32.
    components.to(device=torch.device("cpu"), dtype=torch.float16)
    components.save_pretrained(out / SVD_DIR)
    components.to(dtype=torch.float32)
    write_text_encoder(out / TEXT_ENCODER_DIR, vocabulary(), seed)
    (work / "stage1.json").write_text(json.dumps(summaries, indent=2))
    return summaries


def kept_vae_summaries(out: Path) -> list[dict]:
    """The summaries of the stages that trained the kept VAE (the VAE stage, and the decoder
    stage where there was one), from ``OUT``'s manifest (``make demo-train`` writes it),
    marked as kept; a note where the manifest has none, so that ``stage1.json`` always
    names the VAE's stage."""
    manifest = out / MANIFEST
    if manifest.exists():
        stages = json.loads(manifest.read_text()).get("stage1") or []
        kept = [{**summary, "kept": True} for summary in stages
                if summary.get("stage") in ("vae", "decoder")]
        if kept:
            return kept
    return [{"stage": "vae", "kept": True,
             "note": f"kept from {out / SVD_DIR / 'vae'}; {manifest} has no summary of the "
                     "stage that trained it"}]


def _with_kept_vae(fresh, folder: Path):
    """The trained VAE and image tower of ``folder`` with ``fresh``'s untrained UNet."""
    from aid_model.svd import load_svd

    if not (folder / "vae").is_dir():
        raise FileNotFoundError(f"--keep-vae: {folder / 'vae'} does not exist; build the whole "
                                "stage 1 without --keep-vae")
    kept = load_svd(folder)
    kept.unet = fresh.unet
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True, help="checkpoints and logs")
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="the demo model folder")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--keep-vae", action="store_true",
                        help="retrain only the base UNet, over the VAE already in OUT/svd")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.threads:
        torch.set_num_threads(args.threads)
    for summary in build_base(args.work, args.out, keep_vae=args.keep_vae, device=args.device):
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
