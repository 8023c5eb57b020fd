"""The Stable Video Diffusion base: loading, key conversion, layout inference.

Names resolve lazily (PEP 562): the key tables (``convert``, ``layout``) import no
diffusers, so a host that keeps SVD in the original layout (the ComfyUI nodes) reads them
without it.
"""

from __future__ import annotations

from aid_model.lazy_exports import lazy_exports

_EXPORTS = {
    "CheckpointError": "aid_model.safetensors_io",
    "SVDLayout": "aid_model.svd.layout",
    "infer_svd_layout": "aid_model.svd.layout",
    "SVDComponents": "aid_model.svd.load",
    "load_svd": "aid_model.svd.load",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("aid_model.svd", _EXPORTS, globals())
