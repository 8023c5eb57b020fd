"""``python -m aid_model info PATH``: what a checkpoint or diffusers folder holds."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe an SVD checkpoint or diffusers folder (inferred sizes, key counts)",
        description="Reads only tensor headers and shapes: nothing is loaded into memory.",
    )
    parser.add_argument("source", help="an original single-file .safetensors or a diffusers folder")
    parser.add_argument(
        "--unet-head-channels",
        type=int,
        default=64,
        help="channels per UNet attention head (default: 64, SVD's)",
    )
    parser.add_argument(
        "--clip-num-heads",
        type=int,
        default=None,
        help="CLIP vision heads (default: width / 80, OpenCLIP ViT-H's)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aid_model.svd.describe import describe_source

    print(describe_source(args.source, args.unet_head_channels, args.clip_num_heads))
    return 0
