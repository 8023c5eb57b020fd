"""One memory measurement in a fresh process (what ``memory_in_child`` runs).

    python -m lab.perf.child sampling WORKLOAD [common arguments]
    python -m lab.perf.child training VARIANT [common arguments] [--batch N] [...]

Sampling: builds the models and the workload's inputs, runs the workload once to warm up,
then once more while the peak RSS is watched. Training: builds the variant and runs its
first two optimizer steps while watched (weights, gradients, AdamW state and activations
all count; the second step is the first with AdamW's moments resident). Prints
``{"increase": bytes, "peak": bytes}`` as its last line.

``memory_in_child`` starts it with glibc's mmap threshold fixed (``MALLOC_MMAP_THRESHOLD_``),
so every tensor of 64 KiB or more is its own mapping, returned to the system when freed:
the RSS then follows the live tensors, and readings repeat to a fraction of a MiB.
"""

from __future__ import annotations

import argparse
import json
import sys

from lab.perf.measure import measure_memory
from lab.perf.setup import (
    add_common_arguments,
    add_training_arguments,
    settings_from_arguments,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.perf.child")
    parser.add_argument("suite", choices=("sampling", "training"))
    parser.add_argument("workload")
    add_common_arguments(parser)
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    settings = settings_from_arguments(args)
    if args.suite == "sampling":
        from lab.perf.sampling import SamplingSetup

        workload = SamplingSetup(settings, copy_unet_for_aid=False).workload(args.workload)
        workload()  # warm-up: lazy imports and one-time caches are not the run's memory
        reading = measure_memory(settings.device, workload)
    else:
        from lab.perf.training import TrainingOptions, measure_training_memory

        reading = measure_training_memory(settings, TrainingOptions.from_arguments(args),
                                          args.workload)
    print(json.dumps({"increase": reading.increase, "peak": reading.peak}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
