"""One training run per output folder: ``<output_dir>/train.lock``.

The lock file holds its owner as JSON ({"pid", "host", "started"}) and is created with
O_CREAT | O_EXCL, so of two runs starting together exactly one gets it. A second run is
refused with a message naming the first. A lock whose process is no longer alive on this
host (a run killed with SIGKILL, a crashed machine) is stale: it is taken over, saying so.
A lock from another host cannot be checked from here and is never taken over.

Under torchrun only rank 0 takes the lock (the trainer tells the other ranks the outcome).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

LOCK_FILE = "train.lock"


class RunLockedError(FileExistsError):
    """The output folder is in use by another training run; the message names it."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class RunLock:
    """The lock on ``folder``, held from ``acquire`` until ``release`` (or the ``with`` end).

    Args:
        folder: the run's output folder (created if missing).
        say: where the takeover of a stale lock is reported (print by default).
    """

    def __init__(self, folder: str | Path, say=print):
        self.path = Path(folder) / LOCK_FILE
        self.say = say
        self.held = False

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        for _ in range(3):  # a stale lock taken over by another run at the same time: retry
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(owner, handle)
            self.held = True
            return self
        raise RunLockedError(f"could not take the lock {self.path}: other runs keep taking it")

    def _take_over_if_stale(self) -> None:
        """Removes the lock if its owner is dead on this host; else raises RunLockedError."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return  # released meanwhile: try again
        try:
            owner = json.loads(text)
            pid, host, started = int(owner["pid"]), str(owner["host"]), owner.get("started")
        except (ValueError, KeyError, TypeError):
            raise RunLockedError(
                f"{self.path.parent} is locked by {self.path}, which does not name its owner "
                f"({text[:80]!r}); if no training is writing to this folder, delete the file"
            ) from None
        this_host = socket.gethostname()
        if host != this_host or _pid_alive(pid):
            where = "" if host == this_host else f" on host {host}"
            extra = ("" if host == this_host else "; if that run is gone, delete the lock file")
            raise RunLockedError(
                f"{self.path.parent} is in use by another training run (pid {pid}{where}, "
                f"started {started}; lock {self.path}): wait for it to finish, stop it, or set "
                f"another output_dir{extra}"
            )
        # Stale. Move it aside under a name of our own, then check that what we moved is
        # the stale lock we read (another run may have taken it over in between).
        aside = self.path.with_name(f".{LOCK_FILE}.stale-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = aside.read_text(encoding="utf-8")
        if moved != text:  # a live run's fresh lock: put it back
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        self.say(f"taking over the stale lock {self.path} of pid {pid} (started {started}), "
                 "which is no longer running")

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                owner = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return
            if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
