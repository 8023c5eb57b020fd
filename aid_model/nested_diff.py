"""Which dotted keys two nested settings trees (configs, fingerprint sources) differ in."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def differing_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "",
                   opaque: Collection[str] = ()) -> list[str]:
    """Sorted dotted keys whose values differ between two nested mappings.

    A key missing on one side differs unless its value on the other is also ``None``.
    Sub-mappings named in ``opaque`` (top-level names, e.g. a config's free-form
    ``data``) are compared whole and reported as one key.
    """
    keys = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        name = f"{prefix}{key}"
        if isinstance(left, dict) and isinstance(right, dict) and name not in opaque:
            keys.extend(differing_keys(left, right, name + ".", opaque))
        elif left != right:
            keys.append(name)
    return keys
