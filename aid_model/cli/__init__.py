"""Command-line entry: ``python -m aid_model <command> [options]``.

Each command lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds its sub-parser and sets
``func=<callable(args) -> int>`` as the parser default. Adding a command means adding
its module name to ``COMMAND_MODULES``; nothing else here changes.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# Module names under aid_model.cli, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "evaluate",
    "info",
    "parity",
    "predict",
    "states",
    "synthetic",
    "train",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aid_model",
        description="AID: instruction-guided video prediction on Stable Video Diffusion.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"aid_model.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)
