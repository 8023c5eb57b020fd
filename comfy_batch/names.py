"""File names from untrusted text (CSV ids, server file names) that stay inside a folder."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Names Windows refuses whatever the extension.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
             *(f"lpt{i}" for i in range(1, 10))}


def safe_name(text: str, max_length: int = 80, fallback: str = "unnamed") -> str:
    """One path component made of letters, digits, ``.``, ``_`` and ``-``.

    Separators, ``..``, control characters and leading dots cannot survive, so the result
    never names a parent, a hidden file or another folder. Accents are dropped
    (``café`` → ``cafe``); any other run of characters becomes ``_``.
    """
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    name = _UNSAFE.sub("_", ascii_text)
    name = re.sub(r"\.{2,}", ".", name).strip("._-")
    if not name:
        name = fallback
    if name.split(".")[0].lower() in _RESERVED:
        name = f"_{name}"
    if len(name) > max_length:
        stem, dot, suffix = name.rpartition(".")
        if dot and 0 < len(suffix) <= 8 and stem:
            name = stem[: max_length - len(suffix) - 1].rstrip("._-") + "." + suffix
        else:
            name = name[:max_length].rstrip("._-")
    return name


def path_inside(folder: Path, *parts: str) -> Path:
    """``folder/part/part…`` with every part made safe, checked to resolve inside ``folder``.

    Raises:
        ValueError: if the result would leave ``folder`` (e.g. through a symlink inside it).
    """
    root = folder.resolve()
    path = root.joinpath(*(safe_name(part) for part in parts))
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"refusing to write {resolved}: it is outside {root}")
    return path


def unused_path(path: Path) -> Path:
    """``path``, or ``stem-2.suffix``, ``stem-3.suffix``… when it exists already."""
    if not path.exists():
        return path
    for index in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{index}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"no free name next to {path}")
