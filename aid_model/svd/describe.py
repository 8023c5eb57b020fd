"""A human-readable summary of an SVD source, from tensor headers only."""

from __future__ import annotations

import json
from pathlib import Path

from aid_model.safetensors_io import CheckpointError, read_shapes
from aid_model.svd.layout import infer_svd_layout, split_components, summarize_prefixes


def describe_source(
    source: str | Path, unet_head_channels: int = 64, clip_num_heads: int | None = None
) -> str:
    """Key counts per component and the inferred layout of a single file, or the
    subfolder configs of a diffusers folder. Loads no tensor data."""
    path = Path(source)
    if path.is_dir():
        lines = [f"diffusers folder {path}"]
        for name in ("unet", "vae", "image_encoder"):
            config = path / name / "config.json"
            state = json.loads(config.read_text()) if config.exists() else "missing"
            lines.append(f"  {name}: {state}")
        return "\n".join(lines)
    shapes = read_shapes(path)
    groups = split_components(shapes)
    lines = [f"single file {path}: {len(shapes)} tensors"]
    for name, group in groups.items():
        lines.append(f"  {name}: {len(group)} tensors")
    if groups["other"]:
        lines.append(f"  not used: {summarize_prefixes(groups['other'])}")
    try:
        layout = infer_svd_layout(shapes, unet_head_channels, clip_num_heads)
    except CheckpointError as error:
        lines.append(f"  layout: not an SVD checkpoint this loader can read: {error}")
        return "\n".join(lines)
    for part, sizes in layout.as_dict().items():
        if part != "notes":
            lines.append(f"  {part}: {sizes}")
    return "\n".join(lines)
