"""Which text encoder a model was trained with, as a small record AID weight files carry.

    {"vocab_size": 49408, "width": 1024, "token_embedding_sample": [0.0124, ...]}

The sample (the first columns of a few rows spread over the vocabulary, 4 significant
digits) tells two towers apart without reading the whole embedding, and is the same for
one tower loaded in float32, bfloat16 or float16: compared with a tolerance above
bfloat16's rounding, not bit for bit.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors import safe_open

from aid_model.safetensors_io import check_safetensors_file

SAMPLE_ROWS = 8
SAMPLE_COLUMNS = 4
_TOLERANCE = 2e-2  # relative; bfloat16 keeps 8 bits of mantissa (0.4 %)
_FOLDER_WEIGHTS = ("model.safetensors",)


def _sample_ids(vocab_size: int) -> list[int]:
    return sorted({round(i * (vocab_size - 1) / (SAMPLE_ROWS - 1)) for i in range(SAMPLE_ROWS)})


def _record(rows: torch.Tensor, vocab_size: int, width: int) -> dict:
    sample = [float(f"{value:.4g}") for value in rows.float().flatten().tolist()]
    return {"vocab_size": int(vocab_size), "width": int(width), "token_embedding_sample": sample}


def text_encoder_identity(text_encoder) -> dict:
    """The record of a loaded ``TextEncoder`` (its token embedding is (vocab, width))."""
    weight = text_encoder.text_model.embeddings.token_embedding.weight
    vocab_size, width = weight.shape
    rows = weight.detach()[_sample_ids(vocab_size), :SAMPLE_COLUMNS].cpu()
    return _record(rows, vocab_size, width)


def read_text_encoder_identity(source: str | Path) -> dict | None:
    """The record of a text encoder file or transformers folder, from its token embedding's
    header and a few rows (the tower is not loaded); None when no token embedding is found."""
    source = Path(source)
    if source.is_dir():
        files = [source / name for name in _FOLDER_WEIGHTS if (source / name).is_file()]
        if not files:
            return None
        source = files[0]
    check_safetensors_file(source)
    with safe_open(str(source), framework="pt") as handle:
        keys = sorted((k for k in handle.keys() if k.endswith("token_embedding.weight")),  # noqa: SIM118
                      key=len)
        if not keys:
            return None
        tensor = handle.get_slice(keys[0])
        vocab_size, width = tensor.get_shape()
        rows = torch.cat([tensor[i:i + 1, :SAMPLE_COLUMNS] for i in _sample_ids(vocab_size)])
    return _record(rows, vocab_size, width)


def same_embedding(recorded: dict, current: dict) -> bool:
    """Whether two records' embedding samples agree within float precision."""
    a, b = recorded.get("token_embedding_sample", []), current.get("token_embedding_sample", [])
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=_TOLERANCE, abs_tol=1e-3) for x, y in zip(a, b, strict=True))
