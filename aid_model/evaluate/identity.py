"""What the shards of an evaluation depend on, condensed into one fingerprint.

A shard is reused on a later run (resume after a pre-emption, or a second launch) only when
its fingerprint equals the run's. The fingerprint covers everything that changes a
prediction or a feature: the model files, the AID weights, the data (its config and the ids
of the N samples), the sampling options, the seeds, the feature networks. It leaves out
what only moves float rounding (batch size, device, number of processes) and the spelling
of paths: a file is known by its content, not by its name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# 2: a folder's identity covers its files' contents, not only their names and sizes.
FORMAT = 2
# Bytes read from each end of a file: enough to tell weight files apart (a retrained file
# differs in every tensor) without reading a 9 GB SVD checkpoint in full.
_EDGE_BYTES = 1 << 20


def file_identity(path: str | Path | None) -> dict[str, Any] | None:
    """A content identity of a file or folder, cheap for large files.

    File: its size and the SHA-256 of (size, first MiB, last MiB); a whole-file hash for
    files up to 2 MiB. Folder (a diffusers or transformers model): the SHA-256 of its
    listing, each file's relative name with its own identity, so that a model retrained
    with the same shapes (the same names and sizes) is told apart. None for None.
    """
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        entries = sorted(
            (entry.relative_to(path).as_posix(), file_identity(entry))
            for entry in path.rglob("*")
            if entry.is_file()
        )
        listing = json.dumps(entries, sort_keys=True).encode()
        return {"folder": True, "files": len(entries),
                "listing_sha256": hashlib.sha256(listing).hexdigest()}
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(_EDGE_BYTES))
        if size > _EDGE_BYTES:
            handle.seek(max(_EDGE_BYTES, size - _EDGE_BYTES))
            digest.update(handle.read())
    return {"size": size, "edges_sha256": digest.hexdigest()}


def sample_ids_digest(sample_ids: list[str]) -> str:
    """SHA-256 of the ordered sample ids: the data part of the fingerprint."""
    return hashlib.sha256("\n".join(sample_ids).encode()).hexdigest()


def fingerprint(source: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``source`` (sorted keys)."""
    return hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()
