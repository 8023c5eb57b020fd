"""``python -m lab.perf {sampling,training,flops} [options]``: prints the tables."""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
from collections.abc import Sequence

from lab.perf.setup import (
    add_common_arguments,
    add_sampling_arguments,
    add_training_arguments,
    config_from_arguments,
    settings_from_arguments,
)

FLOPS_HELP = ("FLOPs of sampling and training, and training memory, at any size "
              "(fake tensors, no hardware)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab.perf",
        description="Benchmarks on random-weight SVD-shaped models; prints Markdown tables.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, add_own_arguments, text in (
        ("sampling", add_sampling_arguments,
         "ours vs diffusers, AID guidance cost, VAE decode chunks"),
        ("training", add_training_arguments, "AID's trainable set vs fine-tuning the whole UNet"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        add_common_arguments(command)
        command.add_argument("--repeats", type=int, default=5,
                             help="measured runs of each workload after 1 warm-up (default 5)")
        command.add_argument(
            "--memory", choices=("process", "inline", "off"), default="process",
            help="CPU peak RSS: a fresh process per workload (default, fair), inside this "
                 "process (cheap lower bound), or off; on CUDA always max_memory_allocated",
        )
        command.add_argument("--quiet", action="store_true", help="no progress lines")
        add_own_arguments(command)
    flops = commands.add_parser(
        "flops", help=FLOPS_HELP, description=FLOPS_HELP)
    add_common_arguments(flops)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights: nothing to download
    args = build_parser().parse_args(argv)
    command = "python -m lab.perf " + shlex.join(
        sys.argv[1:] if argv is None else list(argv))
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    started = time.perf_counter()
    if args.command == "flops":
        from lab.perf.flops import run_flops

        text = run_flops(config_from_arguments(args))
        print(f"$ {command}\n{date}, {time.perf_counter() - started:.0f} s\n\n{text}")
        return 0
    settings = settings_from_arguments(args, repeats=args.repeats, memory=args.memory)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    if args.command == "sampling":
        from lab.perf.sampling import run_sampling

        try:
            tables = tuple(int(part) for part in args.tables.split(","))
        except ValueError:
            raise SystemExit(f"--tables takes numbers like 1,2,3; got {args.tables!r}") from None
        text = run_sampling(settings, channels_last=args.channels_last,
                            compile_unet=args.compile, tables=tables, log=log)
    else:
        from lab.perf.training import TrainingOptions, run_training

        text = run_training(settings, TrainingOptions.from_arguments(args), log=log)
    print(f"$ {command}\n{date}, {time.perf_counter() - started:.0f} s\n\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
