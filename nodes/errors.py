"""Errors that name the node input at fault, its value, and what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class InputError(ValueError):
    """A node input whose value cannot be used; ComfyUI shows the message as it is."""

    def __init__(self, input_name: str, value: Any, message: str):
        shown = value if isinstance(value, (int, float, bool)) else repr(value)
        super().__init__(f"input '{input_name}' = {shown}: {message}")
        self.input_name = input_name
        self.value = value


@contextmanager
def about_input(input_name: str, value: Any) -> Iterator[None]:
    """Prefixes the library's own errors (which say what is wrong and what to do) with the
    input they are about."""
    try:
        yield
    except InputError:
        raise
    except (ValueError, OSError, KeyError) as error:
        raise InputError(input_name, value, str(error)) from error
