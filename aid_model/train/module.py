"""The trained network as one ``nn.Module``: DQFormer → MCondition → AID UNet → D(x; σ).

DistributedDataParallel needs a module whose ``forward`` runs every trained parameter; the
AID model's parts are called through separate methods, so this wraps them in one call.
"""

from __future__ import annotations

from torch import Tensor, nn

from aid_model.aid import AIDModel
from aid_model.sampling import VideoCondition, VideoDenoiser


class AIDDenoisingModule(nn.Module):
    """``forward(...) -> D(x_σ; σ, c)`` for a training batch; holds the ``AIDModel``."""

    def __init__(self, model: AIDModel):
        super().__init__()
        self.model = model

    def forward(self, noisy: Tensor, sigma: Tensor, image_embeddings: Tensor,
                concat_latents: Tensor, added_time_ids: Tensor,
                instruction_embeddings: Tensor | None, state_embeddings: Tensor | None,
                image_context: Tensor | None) -> Tensor:
        """
        Args:
            noisy: x_σ (B, T, C, h, w), scaled latents plus noise, float32.
            sigma: (B,).
            image_embeddings: (B, 1, d) CLIP image token (zeros where the frame is dropped).
            concat_latents: (B, T, C, h, w) unscaled (zeros where the frame is dropped).
            added_time_ids: (B, 3) [fps − 1, motion bucket, cond_aug].
            instruction_embeddings: e_t (B, 77, d); state_embeddings: e_s (B, S·77, d);
            image_context: e_v (B, M, d_v). All None for ``without_mcondition``.
        Returns:
            (B, T, C, h, w) denoised latents, float32.
        """
        mcondition = None
        if instruction_embeddings is not None:
            mcondition = self.model.build_mcondition(
                instruction_embeddings, state_embeddings, image_context)
        condition = VideoCondition(image_embeddings, concat_latents, added_time_ids, mcondition)
        # Built per call: registering it would list the UNet twice among the submodules.
        return VideoDenoiser(self.model.unet)(noisy, sigma, condition)
