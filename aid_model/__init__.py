"""AID: instruction-guided video prediction on Stable Video Diffusion, in pure PyTorch.

This package never imports ComfyUI. Public names are resolved lazily (PEP 562), so
``import aid_model.states`` does not pay for importing diffusers.
"""

from __future__ import annotations

from aid_model.lazy_exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "load_svd": "aid_model.svd",
    "SVDComponents": "aid_model.svd",
    "CheckpointError": "aid_model.svd",
    "VideoCondition": "aid_model.sampling",
    "VideoDenoiser": "aid_model.sampling",
    "karras_sigmas": "aid_model.sampling",
    "sample": "aid_model.sampling",
    "SAMPLERS": "aid_model.sampling",
    "decode_latents": "aid_model.video_decode",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("aid_model", _EXPORTS, globals())
