"""``--sampling NAME=KEY=VALUE[,KEY=VALUE…]``: benchmark rows of the bundled model sampled
with other settings than ``DEMO_OPTIONS``, so that a guidance sweep is one command whose
rows are paired with the bundled row scene by scene.

KEY is a ``PredictionOptions`` field; VALUE is a number for the numeric fields, a name for
``sampler``, ``LO:HI`` for ``guidance_interval`` and ``none`` for an optional field left
unset: ``--sampling "s_f 2.5=frame_scale=2.5,text_scale=4"``,
``--sampling "late guidance=guidance_interval=0:1"``.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from dataclasses import fields

from aid_model.pipeline.options import PredictionOptions

# The fields a sampling row may change: the rest fix what the benchmark scores (frames,
# size, seed) or only the decoder's memory use.
FIXED = frozenset({"num_frames", "height", "width", "seed", "decode_chunk_size"})
EXAMPLE = '--sampling "s_f 2.5=frame_scale=2.5,text_scale=4"'


def parse_sampling_rows(items: Iterable[str], base: PredictionOptions,
                        taken: Iterable[str]) -> dict[str, PredictionOptions]:
    """``--sampling`` items → {row name: ``base`` with the item's changes}; refuses an
    empty or ``taken`` name, an unknown or fixed key, a value of the wrong kind, and
    settings ``PredictionOptions.validate`` refuses, naming the item and the fix."""
    taken = set(taken)
    hints = typing.get_type_hints(PredictionOptions)
    changeable = sorted(f.name for f in fields(PredictionOptions) if f.name not in FIXED)
    rows: dict[str, PredictionOptions] = {}
    for item in items:
        name, _, settings = item.partition("=")
        name = name.strip()
        if not name or not settings:
            raise SystemExit(f"--sampling {item!r}: give NAME=KEY=VALUE[,KEY=VALUE…], e.g. "
                             f"{EXAMPLE}")
        if name in taken or name in rows:
            raise SystemExit(f"--sampling {item!r}: the row name {name!r} is taken; choose "
                             "another name")
        changes = {}
        for setting in settings.split(","):
            key, _, text = setting.partition("=")
            key = key.strip()
            if key not in changeable:
                raise SystemExit(f"--sampling {item!r}: {key!r} is not a setting a row may "
                                 f"change; choose from {changeable}")
            changes[key] = _value(item, key, text.strip(), hints[key])
        options = base.with_(**changes)
        try:  # the benchmark's frames and size are the base's: only the changes can fail
            options.with_(num_frames=options.num_frames or 2).validate(1, 1)
        except ValueError as error:
            raise SystemExit(f"--sampling {item!r}: {error}") from None
        rows[name] = options
    return rows


def _value(item: str, key: str, text: str, hint: object) -> object:
    """``text`` as the type ``hint`` of field ``key`` names (see the module docstring)."""
    optional = type(None) in typing.get_args(hint)
    if optional and text.lower() == "none":
        return None
    kinds = [kind for kind in (typing.get_args(hint) or (hint,)) if kind is not type(None)]
    kind = kinds[0]
    try:
        if kind is str:
            return text
        if typing.get_origin(kind) is tuple:
            low, high = text.split(":")
            return (float(low), float(high))
        return kind(text)
    except ValueError:
        forms = {"guidance_interval": "LO:HI, e.g. 0.3:1000", "int": "an integer",
                 "float": "a number"}
        form = forms.get(key, forms.get(kind.__name__, kind.__name__))
        raise SystemExit(f"--sampling {item!r}: {key}={text!r} is not {form}"
                         f"{' or none' if optional else ''}") from None
