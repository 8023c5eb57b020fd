"""Measuring: wall time with device synchronisation, peak memory, interleaved repeats.

Time: every workload runs once to warm up, then the workloads alternate A B C, C B A, …
``repeats`` times, so slow drifts of a shared machine hit all of them alike and none
always follows the same neighbour; tables give medians with min and max.

Memory: on CUDA, ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
(allocations of this process's tensors; exact and unaffected by what ran before). On a CPU
the peak RSS is process-wide and the allocator keeps memory a previous run freed, so a
second workload in the same process would look cheaper than it is: each workload is
measured in a fresh process (``lab.perf.child``) with glibc's mmap threshold fixed,
as the peak RSS during a run minus the RSS before it (the weights, loaded before, are not
counted).
``inline`` does the same inside this process (the kernel's peak RSS is reset through
``/proc/self/clear_refs``): cheap, a lower bound, for tests.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

MIB = 1024 * 1024
MMAP_THRESHOLD = 64 * 1024  # bytes; glibc's initial default, kept fixed in memory children


@dataclass
class Stats:
    """Repeated measurements of one quantity."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(float(value))

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def low(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def high(self) -> float:
        return max(self.values) if self.values else float("nan")


def synchronize(device: torch.device) -> None:
    """Waits for queued GPU work, so a wall-clock reading includes it (no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """Marks the end of each sampling step without stalling the GPU.

    On CUDA a mark records an event in the stream (no synchronisation, so a step's timing
    does not change what it measures); the intervals are read after the run. On a CPU a
    mark is ``perf_counter``.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.marks: list = []

    def mark(self) -> None:
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals(self) -> list[float]:
        """Seconds between consecutive marks (call after the run)."""
        pairs = zip(self.marks[:-1], self.marks[1:], strict=True)
        if self.device.type == "cuda":
            synchronize(self.device)
            return [start.elapsed_time(end) / 1000.0 for start, end in pairs]
        return [end - start for start, end in pairs]


def timed(device: torch.device, run: Callable[[], object]) -> float:
    """Seconds for ``run()`` including the GPU work it queued."""
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


# --- memory -------------------------------------------------------------------------------


def _proc_status_bytes(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {field_name} (not Linux?)")


def rss_bytes() -> int:
    """Resident set size now."""
    return _proc_status_bytes("VmRSS")


def peak_rss_bytes() -> int:
    """Peak resident set size since the process started or the last reset."""
    return _proc_status_bytes("VmHWM")


def reset_peak_rss() -> bool:
    """Sets the kernel's peak RSS to the current RSS (Linux ≥ 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class MemoryReading:
    """Bytes: ``increase`` = peak during the run − usage before it; ``peak`` = absolute."""

    increase: int
    peak: int


def measure_memory(device: torch.device, run: Callable[[], object]) -> MemoryReading:
    """Peak memory of ``run()``: CUDA allocated bytes, or RSS on a CPU (see module doc)."""
    gc.collect()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return MemoryReading(peak - before, peak)
    if not reset_peak_rss():
        raise RuntimeError("cannot reset the peak RSS (/proc/self/clear_refs is not writable); "
                           "run the memory figures with --memory process")
    before = rss_bytes()
    run()
    peak = peak_rss_bytes()
    return MemoryReading(peak - before, peak)


def memory_in_child(arguments: Sequence[str], timeout: float = 1800.0) -> MemoryReading:
    """Runs ``python -m lab.perf.child ARGUMENTS`` (a fresh process) and reads the
    ``MemoryReading`` it prints as its last line of JSON."""
    command = [sys.executable, "-m", "lab.perf.child", *arguments]
    # A fixed threshold stops glibc from raising it after frees (its default), which
    # would keep freed tensors resident in the heap: peak RSS would then depend on the
    # order of allocations, varying by tens of MiB between identical runs.
    environment = {**os.environ, "HF_HUB_OFFLINE": "1",
                   "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env=environment)
    if result.returncode != 0:
        raise RuntimeError(
            f"memory measurement failed (exit {result.returncode}): {' '.join(command)}\n"
            f"{result.stderr[-3000:]}"
        )
    reading = json.loads(result.stdout.strip().splitlines()[-1])
    return MemoryReading(int(reading["increase"]), int(reading["peak"]))


# --- interleaved repeats --------------------------------------------------------------------


Workload = Callable[[], dict[str, float]]


def interleave(workloads: dict[str, Workload], repeats: int, warmup: int = 1,
               log: Callable[[str], None] | None = None) -> dict[str, dict[str, Stats]]:
    """Runs each workload ``warmup`` times, then all of them in turn ``repeats`` times,
    alternating the order.

    A workload returns {quantity: value} (e.g. ``clip_s``, ``step_s``); the result maps
    workload → quantity → ``Stats`` over the repeats (warm-up runs are not kept).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        for name, workload in workloads.items():
            if log:
                log(f"  warm-up {name}")
            workload()
    results: dict[str, dict[str, Stats]] = {name: {} for name in workloads}
    names = list(workloads)
    for repeat in range(repeats):
        # A B, B A, A B, …: no workload always runs right after the same other one (a
        # warm cache or a just-freed heap would favour it every time).
        for name in names if repeat % 2 == 0 else names[::-1]:
            workload = workloads[name]
            values = workload()
            for quantity, value in values.items():
                results[name].setdefault(quantity, Stats()).add(value)
            if log:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
                log(f"  repeat {repeat + 1}/{repeats} {name}: {shown}")
    return results


# --- tables -----------------------------------------------------------------------------------


def seconds(stats: Stats) -> str:
    """'1.23 s (1.20–1.31)' or milliseconds below a second."""
    if stats.median < 1.0:
        return (f"{stats.median * 1e3:.1f} ms ({stats.low * 1e3:.1f}–{stats.high * 1e3:.1f})")
    return f"{stats.median:.2f} s ({stats.low:.2f}–{stats.high:.2f})"


def mebibytes(value: int | float) -> str:
    return f"{value / MIB:,.0f} MiB"


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}×"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table under a bold title line (pastes into docs/performance.md)."""
    lines = [f"**{title}**", "", "| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
