"""``python -m aid_model demo``: the bundled miniature AID predicting on a generated scene."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the bundled miniature model on a generated scene (CPU, no downloads)",
        description="From one generated first frame: one video per instruction (manipulation) "
        "and a three-segment long video, as mp4 files and PNG contact sheets.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--scene-seed", type=int, default=None,
                        help="which generated scene (default: a fixed held-out one)")
    parser.add_argument("--seed", type=int, default=0, help="sampling noise seed")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aid_model.demo.run import DEFAULT_SCENE_SEED, run_demo

    scene = DEFAULT_SCENE_SEED if args.scene_seed is None else args.scene_seed
    for path in run_demo(args.out, scene, args.device, args.seed):
        print(f"wrote {path}")
    return 0
