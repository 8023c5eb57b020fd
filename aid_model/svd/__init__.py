"""The Stable Video Diffusion base: loading, key conversion, layout inference."""

from aid_model.safetensors_io import CheckpointError
from aid_model.svd.layout import SVDLayout, infer_svd_layout
from aid_model.svd.load import SVDComponents, load_svd

__all__ = ["CheckpointError", "SVDComponents", "SVDLayout", "infer_svd_layout", "load_svd"]
