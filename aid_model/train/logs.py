"""Training logs (rank 0): a JSONL record per optimizer step, a stdout line every N steps,
a tqdm bar, and the loss-curve PNG."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aid_model.atomic import atomic_write_file
from aid_model.train.plot import draw_loss_curve


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL log; a torn last line (a crash mid-write) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_log(path: str | Path, last_step: int) -> None:
    """Keeps the records of steps ≤ ``last_step``: a resumed run rewrites what came after
    its checkpoint, so the log holds each step once."""
    path = Path(path)
    if not path.is_file():
        return
    kept = [r for r in read_log(path) if int(r.get("step", 0)) <= last_step]
    text = "".join(json.dumps(r) + "\n" for r in kept)
    atomic_write_file(path, lambda target: target.write_text(text, encoding="utf-8"))


class RunLog:
    """Writes logs on the main process; a no-op elsewhere.

    Args:
        jsonl: the JSONL path.
        every: stdout line interval in steps.
        progress_total: steps of the run for the tqdm bar, or None for no bar.
        initial: the step the run starts at (a resumed run's bar starts there).
        enabled: False on every rank but 0.
    """

    def __init__(self, jsonl: str | Path, every: int, progress_total: int | None,
                 initial: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(jsonl)
        self.every = every
        self._file = None
        self._bar = None
        self._window: list[tuple[float, float, int]] = []  # (loss, seconds, samples)
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        if progress_total is not None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=progress_total, initial=initial, unit="step",
                             dynamic_ncols=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def step(self, record: dict[str, Any], seconds: float, samples: int) -> None:
        """One optimizer step's record: at least ``step``, ``loss``, ``lr``."""
        if not self.enabled:
            return
        record = dict(record, time=time.time(),
                      samples_per_s=samples / seconds if seconds > 0 else None)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self._window.append((record["loss"], seconds, samples))
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
        if record["step"] % self.every == 0:
            losses = [w[0] for w in self._window]
            seconds_sum = sum(w[1] for w in self._window)
            rate = sum(w[2] for w in self._window) / seconds_sum if seconds_sum > 0 else 0.0
            self.message(
                f"step {record['step']}: loss {sum(losses) / len(losses):.5f} "
                f"(mean of {len(losses)}), lr {record['lr']:.3e}, {rate:.2f} samples/s, "
                f"{seconds_sum / len(losses):.3f} s/step"
            )
            self._window.clear()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def draw_curve(self, path: str | Path) -> Path | None:
        """The loss-curve PNG of every step in the JSONL (this run and the ones it resumed)."""
        if not self.enabled:
            return None
        records = [r for r in read_log(self.path) if "loss" in r]
        return draw_loss_curve([int(r["step"]) for r in records],
                               [float(r["loss"]) for r in records], path)
