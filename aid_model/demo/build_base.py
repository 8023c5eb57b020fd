"""``python -m aid_model.demo.build_base --work DIR --out demo_model``: stage 1 of the
miniature (VAE + base image-to-video + random frozen text tower), resumable.

Writes ``OUT/svd`` (a diffusers folder that ``load_svd`` reads), ``OUT/text_encoder`` and
``WORK/stage1.json`` (losses and wall times).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from aid_model.demo.components import build_components, write_text_encoder
from aid_model.demo.paths import DEMO_DIR, SVD_DIR, TEXT_ENCODER_DIR
from aid_model.demo.stage1 import train_stage1
from aid_model.synthetic import vocabulary


def build_base(work: Path, out: Path, seed: int = 0) -> list[dict]:
    torch.manual_seed(seed)
    components = build_components(seed)
    summaries = train_stage1(components, work)
    # fp16 on disk halves the repository's share (SVD ships fp16 too); loads as float32.
    components.to(dtype=torch.float16)
    components.save_pretrained(out / SVD_DIR)
    components.to(dtype=torch.float32)
    write_text_encoder(out / TEXT_ENCODER_DIR, vocabulary(), seed)
    (work / "stage1.json").write_text(json.dumps(summaries, indent=2))
    return summaries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True, help="checkpoints and logs")
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="the demo model folder")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.threads:
        torch.set_num_threads(args.threads)
    for summary in build_base(args.work, args.out):
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
