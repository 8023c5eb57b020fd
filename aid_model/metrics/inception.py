"""The Inception-v3 feature extractor behind FID, from a TorchScript file the user supplies:
NVIDIA's ``inception-2015-12-05.pt`` (a TorchScript port of the TF Inception used by the
original FID code, published with StyleGAN2-ADA). It takes uint8 images (N, 3, H, W) of
any size, resizes them to 299 itself, and with ``return_features=True`` returns the 2048
pool features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from aid_model.metrics.model_file import (
    FeatureModelError,
    existing_file,
    is_torchscript,
    load_torchscript,
)
from aid_model.metrics.preprocess import inception_preprocess

WHERE = (
    "Supply NVIDIA's inception-2015-12-05.pt (TorchScript) yourself; nothing is downloaded. "
    "docs/evaluation.md says where it is published."
)
FEATURE_DIM = 2048


@dataclass
class InceptionFeatureExtractor:
    model: torch.nn.Module
    feature_dim: int
    device: torch.device
    path: Path | None = None

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        """uint8 images (N, 3, H, W) → features (N, D) float32."""
        return self.model(images.to(self.device), return_features=True).float()

    @torch.no_grad()
    def frame_features(
        self,
        frames: Tensor,
        batch_size: int = 64,
        value_range: tuple[float, float] = (-1.0, 1.0),
    ) -> Tensor:
        """Frames (N, 3, H, W) in ``value_range`` → Inception features (N, D) float64, CPU."""
        outputs = [
            self(inception_preprocess(frames[start : start + batch_size], value_range))
            .double()
            .cpu()
            for start in range(0, frames.shape[0], batch_size)
        ]
        if not outputs:
            return torch.empty(0, self.feature_dim, dtype=torch.float64)
        return torch.cat(outputs)


def load_inception(
    path: str | Path, device: str | torch.device = "cpu", *, check: bool = True
) -> InceptionFeatureExtractor:
    """The Inception TorchScript in ``path``; with ``check``, a dummy image (1, 3, 299, 299)
    must give (1, D) features (2048 for the published file)."""
    device = torch.device(device)
    path = existing_file(path, "Inception", WHERE)
    if not is_torchscript(path):
        raise FeatureModelError(f"Inception file {str(path)!r} is not TorchScript. {WHERE}")
    extractor = InceptionFeatureExtractor(
        load_torchscript(path, device, "Inception"), FEATURE_DIM, device, path
    )
    if check:
        try:
            out = extractor(torch.zeros(1, 3, 299, 299, dtype=torch.uint8))
        except Exception as error:  # any failure of a foreign network means the file is unusable
            raise FeatureModelError(
                f"Inception file {str(path)!r} failed on a dummy image called as "
                f"model(images, return_features=True): {type(error).__name__}: {error}"
            ) from None
        if out.ndim != 2 or out.shape[0] != 1:
            raise FeatureModelError(
                f"Inception file {str(path)!r} gave shape {tuple(out.shape)} for one image; "
                f"expected (1, {FEATURE_DIM}). {WHERE}"
            )
        extractor.feature_dim = int(out.shape[1])
    return extractor
