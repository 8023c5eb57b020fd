"""Where the bundled miniature lives in the repository."""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo_model"
SVD_DIR = "svd"  # diffusers folder: unet/, vae/, image_encoder/
TEXT_ENCODER_DIR = "text_encoder"  # transformers folder with the world's tokenizer
AID_FILE = "aid.safetensors"
MANIFEST = "demo_model.json"  # how it was trained, with the measured figures
