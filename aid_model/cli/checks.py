"""Checks of command-line options, run before any model is loaded (svd_xt takes minutes).

Each failure is a ``UsageError``: one line naming the option, its value and the fix, which
``aid_model.cli.main`` prints without a traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# PredictionOptions field → the option that sets it, so library messages name the option.
OPTION_FLAGS = {
    "num_frames": "--frames", "height": "--height", "width": "--width", "steps": "--steps",
    "sampler": "--sampler", "frame_scale": "--frame-scale",
    "frame_scale_first": "--frame-scale-first", "text_scale": "--text-scale",
    "guidance_interval": "--guidance-interval", "seed": "--seed", "fps": "--fps",
    "motion_bucket_id": "--motion-bucket", "cond_aug": "--cond-aug",
    "decode_chunk_size": "--decode-chunk",
}


class UsageError(ValueError):
    """A command-line option that cannot work; the message names it."""


def check_options(options, num_reference_frames: int | None = None,
                  flags: dict[str, str] = OPTION_FLAGS) -> None:
    """``options.validate`` with each message naming the command-line option; height and
    width must be positive whole numbers (their multiple is the model's, checked later)."""
    for name in ("height", "width"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{flags.get(name, name)} must be a positive whole number of "
                             f"pixels, got {value!r}")
    try:
        frames = num_reference_frames if options.num_frames is not None else None
        options.validate(num_reference_frames=frames)
    except ValueError as error:
        message = str(error)
        field = re.match(r"[a-z_]+", message)
        if field and field.group(0) in flags:
            message = flags[field.group(0)] + message[field.end():]
        elif message.startswith("need 1 <= K < T"):
            message = f"--image/--frames: {message}"
        raise UsageError(message) from None


def check_positive(value, flag: str, unset_ok: bool = True) -> None:
    if value is None and unset_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{flag} must be a positive whole number, got {value!r}")


def check_input(path: Path | None, flag: str, kind: str = "file or folder") -> None:
    """An input that must exist (``kind``: "file", "folder" or "file or folder")."""
    if path is None:
        return
    if not path.exists():
        raise UsageError(f"{flag} {path} does not exist")
    if kind == "file" and path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file")
    if kind == "folder" and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; give a folder")


def _check_creatable_in(path: Path, flag: str) -> None:
    """The nearest existing folder above ``path`` exists, is a folder and is writable."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is a file, so no folder can be made there")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot write in {parent} (permission denied); "
                         "choose another place")


def check_output_file(path: Path | None, flag: str, suffixes: tuple[str, ...]) -> None:
    """An output file: one of ``suffixes`` (lower case, with the dot), not a folder, in a
    place where it can be written (existing files are replaced)."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name ending in {suffixes[0]}")
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} must end in {' or '.join(suffixes)}, got {path}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path} exists and cannot be replaced (permission denied)")
    _check_creatable_in(path, flag)


def check_output_folder(path: Path | None, flag: str) -> None:
    """An output folder: not an existing file, and creatable or writable."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; give a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {path}: cannot write in it (permission denied)")
        return
    _check_creatable_in(path / "x", flag)


def image_suffixes() -> tuple[str, ...]:
    """Suffixes Pillow can write, ``.png`` first."""
    from PIL import Image

    Image.init()
    writable = {ext for ext, name in Image.registered_extensions().items() if name in Image.SAVE}
    return (".png", *sorted(writable - {".png"}))


def read_text_lines(path: Path, flag: str) -> list[str]:
    """A UTF-8 text file's lines; UsageError naming the file when it is a folder, missing
    or not text."""
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a text file with one line per item")
    if not path.is_file():
        raise UsageError(f"{flag} {path} does not exist")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise UsageError(f"{flag} {path} is not UTF-8 text (byte {error.start}: "
                         f"{error.reason}); give a text file with one line per item") from None
