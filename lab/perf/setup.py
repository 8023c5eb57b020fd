"""What every benchmark command shares: its arguments and the run settings built from them.

The same arguments go to the child processes that measure CPU memory, so a child rebuilds
exactly the models and inputs the parent timed.
"""

from __future__ import annotations

import argparse
import platform
from dataclasses import dataclass

import torch

from lab.perf.models import CONFIGS, BenchConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class RunSettings:
    """One benchmark run: models, clip, device, precision, repeats, memory method."""

    config: BenchConfig
    device: torch.device
    dtype: torch.dtype
    repeats: int
    memory: str
    seed: int
    threads: int | None

    @property
    def dtype_name(self) -> str:
        return next(name for name, value in DTYPES.items() if value == self.dtype)

    def child_arguments(self) -> list[str]:
        """The arguments that rebuild these settings in ``lab.perf.child``."""
        config = self.config
        arguments = [
            "--config", config.name, "--device", str(self.device), "--dtype", self.dtype_name,
            "--frames", str(config.frames), "--height", str(config.height),
            "--width", str(config.width), "--steps", str(config.steps),
            "--seed", str(self.seed),
        ]
        if self.threads is not None:
            arguments += ["--threads", str(self.threads)]
        return arguments


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small",
                        help="model size (default: small)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="weights' dtype (default: float32 on cpu, bfloat16 on cuda)")
    parser.add_argument("--frames", type=int, default=None, help="frames T (default: config's)")
    parser.add_argument("--height", type=int, default=None, help="pixels (default: config's)")
    parser.add_argument("--width", type=int, default=None, help="pixels (default: config's)")
    parser.add_argument("--steps", type=int, default=None, help="EDM steps (default: config's)")
    parser.add_argument("--seed", type=int, default=0, help="weights and inputs seed")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """The sampling command's own options."""
    parser.add_argument("--channels-last", action="store_true",
                        help="also time the UNet converted to channels-last memory format")
    parser.add_argument("--compile", action="store_true",
                        help="also time the UNet under torch.compile (compiles first: slow)")
    parser.add_argument("--tables", default="1,2,3,4,5",
                        help="which tables to run, e.g. 1 or 2,3 (default: all; 5 needs "
                             "--channels-last or --compile)")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The training command's own options (here, so building the parser does not import
    the trainer)."""
    parser.add_argument("--batch", type=int, default=1, help="training batch (default: 1)")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="gradient checkpointing on the UNet, both variants")


def config_from_arguments(args: argparse.Namespace) -> BenchConfig:
    """The chosen config with the clip overrides; a bad override ends the command."""
    try:
        return CONFIGS[args.config].with_clip(args.frames, args.height, args.width, args.steps)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def settings_from_arguments(args: argparse.Namespace, repeats: int = 1,
                            memory: str = "inline") -> RunSettings:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available to this process")
    if device.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device must be cpu or cuda[:N], got {args.device}")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    dtype_name = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = config_from_arguments(args)
    return RunSettings(config, device, DTYPES[dtype_name], repeats, memory, args.seed,
                       args.threads)


def machine_description(device: torch.device) -> str:
    """The machine the numbers come from (CPU model and cores, or the GPU)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info
                     if line.startswith("model name")]
        if names:
            cpu = f"{names[0]} ×{len(names)} logical cores"
    except OSError:
        pass
    text = f"{cpu}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        text += f"; GPU {properties.name}, {properties.total_memory / 2**30:.0f} GiB"
    return text
