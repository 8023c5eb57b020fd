"""One (micro-)batch's loss: condition dropout, σ and ε per sample, D(x_σ), EDM loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from aid_model.conditioning import svd_added_time_ids
from aid_model.train.dropout import DropoutRates, drop_frame_condition, drop_text_condition
from aid_model.train.features import ClipFeatures
from aid_model.train.loss import denoising_loss, frame_mask, sample_sigma
from aid_model.train.randomness import NOISE_STREAM, sample_generator


@dataclass(frozen=True)
class ObjectiveSettings:
    """Everything the loss needs besides the batch.

    Attributes:
        seed: run seed (keys the per-sample streams).
        scaling_factor: the VAE's latent scale (0.18215): the target is latents × it.
        p_mean, p_std: σ's log-normal.
        loss_frames: ``all`` or ``predicted``.
        dropout: condition dropout rates.
        motion_bucket_id: micro-conditioning value.
        null_instruction: (77, d) null e_t; null_states: (S·77, d) null e_s (None without
            MCondition).
    """

    seed: int
    scaling_factor: float
    p_mean: float
    p_std: float
    loss_frames: str
    dropout: DropoutRates
    motion_bucket_id: float
    null_instruction: Tensor | None
    null_states: Tensor | None


@dataclass
class LossOutput:
    """loss: scalar (mean over the batch); per_sample: (B,); sigma: (B,);
    drop_text, drop_frame: (B,) bool."""

    loss: Tensor
    per_sample: Tensor
    sigma: Tensor
    drop_text: Tensor
    drop_frame: Tensor


def training_loss(denoise: Callable[..., Tensor], features: ClipFeatures, step: int,
                  micro_step: int, settings: ObjectiveSettings) -> LossOutput:
    """L = mean_b λ(σ_b)·‖D(x_b + σ_b·ε_b; σ_b, c_b) − x_b‖² (over the covered frames).

    Per sample b, its stream (seed, step, micro_step, dataset index) draws, in this order,
    the dropout uniform, σ, then ε of the latent's shape.

    Args:
        denoise: ``AIDDenoisingModule`` (or its DDP wrapper).
        features: the batch.
        step, micro_step: position in training (key the random streams).
    """
    latents = features.latents
    device = latents.device
    batch = features.batch_size
    uniforms, sigmas, noises = [], [], []
    for index in features.indices.tolist():
        generator = sample_generator(settings.seed, step, micro_step, index, NOISE_STREAM)
        uniforms.append(float(torch.rand((), generator=generator)))
        sigmas.append(sample_sigma(generator, settings.p_mean, settings.p_std))
        noises.append(torch.randn(latents.shape[1:], generator=generator))
    decisions = [settings.dropout.decide(u) for u in uniforms]
    drop_text = torch.tensor([d[0] for d in decisions], dtype=torch.bool)
    drop_frame = torch.tensor([d[1] for d in decisions], dtype=torch.bool)
    sigma = torch.stack(sigmas).to(device)
    noise = torch.stack(noises).to(device)

    image, concat = drop_frame_condition(drop_frame, features.image_embeddings,
                                         features.concat_latents)
    e_t, e_s = features.instruction_embeddings, features.state_embeddings
    if e_t is not None:  # without MCondition there is no text to drop
        e_t, e_s = drop_text_condition(drop_text, e_t, e_s, settings.null_instruction,
                                       settings.null_states)

    time_ids = torch.cat([
        svd_added_time_ids(float(features.fps[i]), settings.motion_bucket_id,
                           float(features.cond_aug[i]))
        for i in range(batch)
    ]).to(device)
    target = latents * settings.scaling_factor
    noisy = target + sigma.reshape(-1, 1, 1, 1, 1) * noise
    denoised = denoise(noisy, sigma, image, concat, time_ids, e_t, e_s,
                       features.image_context if e_t is not None else None)
    mask = frame_mask(latents.shape[1], features.num_reference_frames.to(device),
                      settings.loss_frames)
    per_sample = denoising_loss(denoised, target, sigma, mask)
    return LossOutput(per_sample.mean(), per_sample.detach(), sigma.detach(), drop_text,
                      drop_frame)
