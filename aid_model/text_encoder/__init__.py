"""OpenCLIP ViT-H/14 text encoder (SD 2.x penultimate convention) for AID's instructions.

    encoder = load_text_encoder("open_clip_model.safetensors", tokenizer_dir="tokenizer/")
    context = encoder.encode(["move the red block left", ""])   # (2, 77, 1024)

See docs/text-encoder.md for the conventions and the equivalence with open_clip.
"""

from .cleaning import FTFY_AVAILABLE, clean_text
from .convert import openclip_to_transformers, text_config_from_openclip
from .encoder import TextEncoder, TextEncoding
from .load import load_text_encoder
from .tokenizer import OpenCLIPTokenizer, load_tokenizer

__all__ = [
    "FTFY_AVAILABLE",
    "OpenCLIPTokenizer",
    "TextEncoder",
    "TextEncoding",
    "clean_text",
    "load_text_encoder",
    "load_tokenizer",
    "openclip_to_transformers",
    "text_config_from_openclip",
]
