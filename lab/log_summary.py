"""Compares training runs from their ``log.jsonl``: mean loss over blocks of steps, each
relative to the first run's, and the training time the steps took.

    python -m lab.log_summary runs/bench_demo/full_AID runs/bench_demo/wo_SA

Runs trained with the same seed see the same batches and noise, so block means differ
only by what the runs' models do with them (the ablation tables of docs/results.md)."""

from __future__ import annotations

import argparse
import itertools
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aid_model.train.logs import read_log

# Step-to-step times above this (s) are an interruption and its resume, not training.
RESUME_GAP_S = 60.0


@dataclass(frozen=True)
class RunSummary:
    """One run's log, summarised.

    ``block_losses``: mean loss of steps 1…block, block+1…2·block, … (the last block may
    be partial); ``seconds``: the sum of step-to-step times up to ``RESUME_GAP_S``;
    ``median_step_s``: their median; ``steps``: the last step logged."""

    name: str
    steps: int
    block_losses: list[float]
    seconds: float
    median_step_s: float


def block_means(records: list[dict[str, Any]], block: int) -> list[float]:
    """Mean ``loss`` per block of ``block`` steps, by step number (1-based)."""
    if block < 1:
        raise ValueError(f"block {block}: give 1 or more steps")
    sums: dict[int, list[float]] = {}
    for record in records:
        index = (int(record["step"]) - 1) // block
        sums.setdefault(index, []).append(float(record["loss"]))
    return [statistics.fmean(sums[i]) for i in sorted(sums)]


def step_times(records: list[dict[str, Any]], gap: float = RESUME_GAP_S) -> list[float]:
    """Seconds between consecutive steps' records, leaving out gaps over ``gap``."""
    times = [float(r["time"]) for r in sorted(records, key=lambda r: int(r["step"]))
             if "time" in r]
    return [b - a for a, b in itertools.pairwise(times) if 0 <= b - a <= gap]


def summarise(run: Path, block: int, log_name: str = "log.jsonl") -> RunSummary:
    """``run``'s summary from ``run/log_name`` (or ``run`` itself when it is the file)."""
    path = run if run.is_file() else run / log_name
    records = [r for r in read_log(path) if "step" in r and "loss" in r]
    if not records:
        raise SystemExit(f"{path}: no training steps logged; give a run's output folder "
                         f"(the one holding {log_name}) or its log file")
    durations = step_times(records)
    return RunSummary(name=run.name if run.is_dir() else run.parent.name,
                      steps=max(int(r["step"]) for r in records),
                      block_losses=block_means(records, block), seconds=sum(durations),
                      median_step_s=statistics.median(durations) if durations else 0.0)


def table(summaries: list[RunSummary], block: int) -> str:
    """A Markdown table: one row per run, one column per block (loss and its change
    against the first run's), then steps, training time and median s/step."""
    blocks = max(len(s.block_losses) for s in summaries)
    header = [f"steps {i * block + 1}–{(i + 1) * block}" for i in range(blocks)]
    lines = ["| run | " + " | ".join(header) + " | steps | training s | median s/step |",
             "|---" * (len(header) + 4) + "|"]
    reference = summaries[0].block_losses
    for summary in summaries:
        cells = []
        for i in range(blocks):
            if i >= len(summary.block_losses):
                cells.append("—")
                continue
            loss = summary.block_losses[i]
            change = (f" ({100 * (loss / reference[i] - 1):+.1f} %)"
                      if summary is not summaries[0] and i < len(reference) else "")
            cells.append(f"{loss:.4f}{change}")
        lines.append(f"| {summary.name} | " + " | ".join(cells)
                     + f" | {summary.steps} | {summary.seconds:.0f} | "
                     f"{summary.median_step_s:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path,
                        help="training output folders (or their log.jsonl); the first is "
                        "the one the others are compared with")
    parser.add_argument("--block", type=int, default=500, help="steps per loss mean")
    args = parser.parse_args()
    if args.block < 1:
        raise SystemExit(f"--block {args.block}: give 1 or more steps")
    missing = [str(run) for run in args.runs if not run.exists()]
    if missing:
        raise SystemExit(f"no such run: {', '.join(missing)}")
    print(table([summarise(run, args.block) for run in args.runs], args.block))


if __name__ == "__main__":
    main()
