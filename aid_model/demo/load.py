"""Loading the bundled miniature AID as a pipeline, through the same loaders as real models."""

from __future__ import annotations

from pathlib import Path

import torch

from aid_model.demo import configs
from aid_model.demo.paths import AID_FILE, DEMO_DIR, SVD_DIR, TEXT_ENCODER_DIR
from aid_model.pipeline.options import PredictionOptions

# The miniature's own settings, overriding PredictionOptions' defaults (which are for
# SVD-sized models): its size, fps and decoding, and the guidance it was evaluated with
# (docs/results.md). Less frame guidance loses objects; more, without more text guidance,
# leaves the moves short.
DEMO_OPTIONS = PredictionOptions(
    height=configs.IMAGE_SIZE,
    width=configs.IMAGE_SIZE,
    steps=20,
    sampler="euler",
    frame_scale=2.0,
    text_scale=3.5,
    fps=configs.FPS,
    decode_chunk_size=None,
)


def demo_files(folder: str | Path = DEMO_DIR) -> dict[str, Path]:
    """The miniature's parts; a clear error when one is missing."""
    folder = Path(folder)
    parts = {"svd": folder / SVD_DIR, "text_encoder": folder / TEXT_ENCODER_DIR,
             "aid": folder / AID_FILE}
    missing = [name for name, path in parts.items() if not path.exists()]
    if missing:
        raise FileNotFoundError(
            f"the bundled demo model is incomplete in {folder}: {missing} missing. It ships "
            "with the repository; re-check out demo_model/ or rebuild it with `make demo-train`"
        )
    return parts


def load_demo_pipeline(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                       folder: str | Path = DEMO_DIR):
    """The miniature AID (SVD stand-in + AID weights + text tower) as an ``AIDPipeline``."""
    from aid_model.aid import attach_aid_from_file
    from aid_model.pipeline import AIDPipeline
    from aid_model.svd import load_svd
    from aid_model.text_encoder import load_text_encoder

    parts = demo_files(folder)
    components = load_svd(parts["svd"], dtype=dtype, device=device)
    text_encoder = load_text_encoder(parts["text_encoder"], dtype=dtype, device=device)
    aid = attach_aid_from_file(components, parts["aid"])
    return AIDPipeline(components, aid, text_encoder)
