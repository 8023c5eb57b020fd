"""``python -m aid_model parity FIXTURE``: errors against an independent SVD's goldens."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "parity",
        help="compare this project's SVD with golden tensors of an independent implementation",
        description="Loads the fixture's checkpoint with load_svd, recomputes every golden "
        "tensor (UNet, denoiser, VAE, CLIP, a 4-step Euler CFG run) in float32 and prints "
        "a Markdown table of max abs errors. Exit status 1 if any exceeds its tolerance.",
    )
    parser.add_argument(
        "fixture", help="folder with config.json, golden.safetensors and the checkpoint"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from aid_model.svd.parity import format_table, run_parity

    if args.threads:
        torch.set_num_threads(args.threads)
    results = run_parity(args.fixture)
    print(format_table(results))
    return 0 if all(r.passed for r in results) else 1
