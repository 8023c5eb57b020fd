"""Writing a file so that a kill mid-write never leaves a broken file under its name.

    with atomic_path("runs/pour.mp4") as temporary:
        write_the_video(temporary)

Every output of the project (videos, sheets, frames, weights, caches) goes through here:
it is written under a temporary name in the same folder, synced, then renamed onto its
name (``os.replace``, atomic on one file system). An interrupted write leaves the old file
as it was and no temporary behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix, so writers pick the same format) to
    write to; on a clean exit it becomes ``path``, with the permissions a new file gets
    (0666 less the umask, so other users can read weights a ComfyUI running as another
    user loads; safetensors alone writes 0600). On an exception it is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
                               f"{path.suffix}")
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        fsync_path(temporary)
        os.replace(temporary, path)
        fsync_path(path.parent)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_file(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Calls ``write(temporary_path)`` inside ``atomic_path(path)``; returns ``path``."""
    with atomic_path(path) as temporary:
        write(temporary)
    return Path(path)


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (os.umask sets it,
    for a moment, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_path(path: Path) -> None:
    """Flushes a file's or folder's contents to disk (folders: the entries)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() and hasattr(os, "O_DIRECTORY") else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
