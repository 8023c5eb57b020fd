"""A JSONL file of predicted states, so a dataset is annotated once and a rerun skips done rows.

One JSON object per line (fields of ``CachedStates``). A row is identified by
(image content hash, instruction, model id, S, template version): change any of them and
the row is generated again. Rows are appended and flushed to disk one at a time, so an
interrupted run loses at most the row being written; a torn last line is skipped on
reading and the next append starts on a fresh line. When a key appears twice, the later
row wins. One process writes a cache file at a time.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

CacheKey = tuple[str, str, str, int, str]


@dataclass(frozen=True)
class CachedStates:
    """One annotated first frame: the key fields, the states and how they were obtained.

    ``raw_text`` is the model's answer before parsing, ``num_found`` how many states the
    parser found in it (0: the instruction filled every state) and ``warnings`` what the
    parser repaired, so a bad row can be inspected without rerunning the model. ``source`` names
    where the image came from (a path), for people reading the file; it is not in the key.
    """

    image_sha256: str
    instruction: str
    model_id: str
    num_states: int
    template_version: str
    states: list[str]
    raw_text: str = ""
    num_found: int = 0
    warnings: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def key(self) -> CacheKey:
        return (
            self.image_sha256,
            self.instruction,
            self.model_id,
            self.num_states,
            self.template_version,
        )

    @property
    def used_fallback(self) -> bool:
        """True when the model's answer held no states and the instruction filled them."""
        return self.num_found == 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, row: dict) -> CachedStates:
        """A row read back from JSON; raises ``ValueError`` if a field is missing or wrong."""
        try:
            cached = cls(
                image_sha256=_typed(row, "image_sha256", str),
                instruction=_typed(row, "instruction", str),
                model_id=_typed(row, "model_id", str),
                num_states=_typed(row, "num_states", int),
                template_version=_typed(row, "template_version", str),
                states=list(_typed(row, "states", list)),
                raw_text=str(row.get("raw_text", "")),
                # A hand-written row without the count is taken as a complete answer.
                num_found=int(row.get("num_found", len(row["states"]))),
                warnings=[str(w) for w in row.get("warnings", [])],
                source=str(row.get("source", "")),
            )
        except (TypeError, KeyError) as error:
            raise ValueError(str(error)) from error
        if len(cached.states) != cached.num_states or not all(
            isinstance(state, str) for state in cached.states
        ):
            raise ValueError(
                f"'states' must hold {cached.num_states} strings, got {cached.states!r}"
            )
        return cached


def make_key(
    image_sha256: str, instruction: str, model_id: str, num_states: int, template_version: str
) -> CacheKey:
    return (image_sha256, instruction, model_id, num_states, template_version)


class StateCache:
    """The rows of one JSONL cache file, in memory, with appends going straight to disk.

    ``path`` need not exist yet; its folder is created on the first append.
    ``skipped_lines`` counts lines that could not be read (a torn last line after an
    interruption, or a hand edit gone wrong); they are left in the file and ignored.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._rows: dict[CacheKey, CachedStates] = {}
        # (key, source) pairs written: a sample sharing another's (image, instruction) gets
        # a row under its own source so that dataset joins by sample id find it.
        self._sources: set[tuple[CacheKey, str]] = set()
        self.skipped_lines = 0
        self._ends_mid_line = False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        if self.path.is_dir():
            raise IsADirectoryError(
                f"state cache {str(self.path)!r} is a folder; pass a .jsonl file path"
            )
        data = self.path.read_bytes()
        self._ends_mid_line = bool(data) and not data.endswith(b"\n")
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = CachedStates.from_dict(json.loads(line))
            except (ValueError, AttributeError) as error:
                self.skipped_lines += 1
                logger.warning(
                    "%s line %d is not a state row, skipped: %s", self.path, number, error
                )
                continue
            self._rows[row.key] = row
            self._sources.add((row.key, row.source))

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __iter__(self) -> Iterator[CachedStates]:
        return iter(self._rows.values())

    def get(self, key: CacheKey) -> CachedStates | None:
        return self._rows.get(key)

    def has_source(self, key: CacheKey, source: str) -> bool:
        """Whether a row for ``key`` was written under ``source``."""
        return (key, source) in self._sources

    def add(self, row: CachedStates) -> None:
        """Append ``row`` to the file and flush it to disk before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = row.to_json() + "\n"
        if self._ends_mid_line:
            # The last run died mid-write: finish its torn line so this row stands alone.
            line = "\n" + line
            self._ends_mid_line = False
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        self._rows[row.key] = row
        self._sources.add((row.key, row.source))


def _typed(row: dict, name: str, kind: type):
    value = row[name]
    # bool is an int in Python; a boolean num_states is a corrupt row, not S = 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"field {name!r} should be {kind.__name__}, got {value!r}")
    return value
