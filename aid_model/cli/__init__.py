"""Command-line entry: ``python -m aid_model <command> [options]``.

Each command lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds its sub-parser and sets
``func=<callable(args) -> int>`` as the parser default. Adding a command means adding
its module name to ``COMMAND_MODULES``; nothing else here changes.
"""

from __future__ import annotations

import argparse
import importlib
import sys
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

# What a user's input can cause: the project's errors are ValueError subclasses
# (CheckpointError, AIDWeightsError, ConfigError, UsageError, ...) with one-line messages
# naming the file or option; a missing, misplaced or locked file is an OSError of these.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
    PermissionError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aid_model",
        description="AID: instruction-guided video prediction on Stable Video Diffusion.",
    )
    debug_help = "on an error, show the full traceback instead of the one-line message"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"aid_model.cli.{name}").register(subparsers)
    for command in subparsers.choices.values():  # also after the command, where users type it
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=debug_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; a user error prints ``<prog> <command>: error: <message>`` on
    stderr and returns 1 (``--debug`` raises it with its traceback instead)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr)
        return 1
