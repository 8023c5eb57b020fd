"""``python -m aid_model train``: train AID's adapters, DQFormer and cross-attention.

    python -m aid_model train --config configs/ssv2.yaml
    python -m aid_model train --config configs/ssv2.yaml --set optim.lr=5e-5 --resume auto
    torchrun --nproc_per_node 8 -m aid_model train --config configs/ssv2.yaml

See docs/training.md.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train AID on a dataset (frozen SVD; single process or torchrun)",
        description=(
            "Train AID's trainable set (adapters, MCondition attention, DQFormer, spatial "
            "cross-attention) with the EDM loss on a frozen SVD. Launch with torchrun for "
            "several GPUs or nodes. Configs: configs/*.yaml; docs/training.md."
        ),
    )
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="training config (.yaml, .yml or .json)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=5e-5 (repeatable; type-checked)",
    )
    parser.add_argument(
        "--resume", default=None, metavar="PATH|auto",
        help="continue a run: 'auto' (its newest checkpoint, or a fresh start), or a "
             "checkpoint folder",
    )
    parser.add_argument("--cache-only", action="store_true",
                        help="fill the feature cache (cache.latents / cache.text) and stop")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aid_model.train import ConfigError, load_train_config, train

    try:
        config = load_train_config(args.config, args.overrides)
    except ConfigError as error:
        print(f"python -m aid_model train: config error: {error}", file=sys.stderr)
        return 2
    if args.cache_only and not (config.cache.latents or config.cache.text):
        print("python -m aid_model train: --cache-only needs cache.latents or cache.text",
              file=sys.stderr)
        return 2
    try:
        result = train(config, resume=args.resume, cache_only=args.cache_only)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, ImportError) as error:
        print(f"python -m aid_model train: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: continue with --resume auto (from the last checkpoint)",
              file=sys.stderr)
        return 130
    if result.final_weights is not None:
        print(f"AID weights: {result.final_weights}")
    return 0
