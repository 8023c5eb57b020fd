"""The run's memory: one JSON line per state change of a job, appended and fsynced.

A rerun reads it to skip finished jobs and to find prompts queued before an interruption
(by their prompt id) instead of queueing them a second time.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

QUEUED, DONE, FAILED = "queued", "done", "failed"


class Manifest:
    """``manifest.jsonl`` in the output folder; the last line of a job's key wins."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        # After a kill mid-write the file can end inside a line: start the next on its own.
        self._needs_newline = False
        if path.is_file() and path.stat().st_size > 0:
            with path.open("rb") as file:
                file.seek(-1, os.SEEK_END)
                self._needs_newline = file.read(1) != b"\n"
        if path.is_file():
            # errors="replace": a damaged line is skipped below like a torn one.
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                    self.records[str(record["key"])] = record
                except (ValueError, KeyError, TypeError):
                    self.skipped_lines += 1  # a line torn by a kill, or a bad hand edit

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def status(self, key: str) -> str | None:
        record = self.records.get(key)
        return record.get("status") if record else None

    def record(self, key: str, status: str, **fields: Any) -> dict[str, Any]:
        entry = {"key": key, "status": status, "time": round(time.time(), 3), **fields}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            if self._needs_newline:
                file.write("\n")
                self._needs_newline = False
            file.write(json.dumps(entry, ensure_ascii=False) + "\n")
            file.flush()
            os.fsync(file.fileno())
        self.records[key] = entry
        return entry
