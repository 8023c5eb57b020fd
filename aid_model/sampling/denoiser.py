"""SVD's EDM denoiser D(x; σ, cond) over a diffusers ``UNetSpatioTemporalConditionModel``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aid_model.sampling.condition import VideoCondition
from aid_model.sampling.edm import v_prediction_scalings


class VideoDenoiser(nn.Module):
    """D(x; σ, cond) = c_skip·x + c_out·F(cat[c_in·x, concat_latents]; ¼ ln σ, cond).

    ``unet`` is a diffusers UNetSpatioTemporalConditionModel, or any module with the
    same call signature; a module that also accepts ``mcondition=`` (AID) receives the
    condition's MCondition as it is (not cast: ``AIDUNet`` casts it), a plain one is
    called exactly as diffusers' SVD pipeline does.
    """

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def network(self, unet_input: Tensor, c_noise: Tensor, cond: VideoCondition) -> Tensor:
        """The raw UNet output F for an already preconditioned input (B, T, C_in, h, w)."""
        dtype = unet_input.dtype
        kwargs = {}
        if cond.mcondition is not None:
            # Passed as it is (AIDUNet casts it): the same tensor at every step lets AID
            # compute the MCondition's keys and values once per clip.
            kwargs["mcondition"] = cond.mcondition
        return self.unet(
            unet_input,
            c_noise,
            encoder_hidden_states=cond.image_embeddings.to(dtype),
            added_time_ids=cond.added_time_ids,
            return_dict=False,
            **kwargs,
        )[0]

    def forward(self, x: Tensor, sigma: Tensor, cond: VideoCondition) -> Tensor:
        """Denoised estimate of ``x``.

        Args:
            x: (B, T, C, h, w) noisy latents in model space (VAE latent × scaling factor).
                Keep the sampler state in float32; the UNet runs in its own dtype.
            sigma: (B,) or scalar noise level(s).
            cond: the batch's conditioning (batch size B).
        Returns:
            (B, T, C, h, w) denoised latents, same dtype as ``x``.
        """
        unet_dtype = next(self.unet.parameters()).dtype
        batch = x.shape[0]
        sigma = torch.as_tensor(sigma, device=x.device, dtype=torch.float32).reshape(-1)
        sigma = sigma.expand(batch) if sigma.numel() == 1 else sigma
        if sigma.shape[0] != batch:
            raise ValueError(f"sigma has {sigma.shape[0]} values for a batch of {batch}")
        c_skip, c_out, c_in, c_noise = (
            s.reshape(batch, 1, 1, 1, 1) for s in v_prediction_scalings(sigma)
        )
        unet_input = torch.cat([x * c_in, cond.concat_latents.to(x.dtype)], dim=2).to(unet_dtype)
        model_output = self.network(unet_input, c_noise.reshape(batch), cond)
        return (c_skip * x + c_out * model_output.float()).to(x.dtype)
