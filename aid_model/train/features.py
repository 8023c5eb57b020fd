"""What a training step needs of a batch: latents, frame conditions, text embeddings.

Computed from the frames by the frozen VAE, CLIP image tower and text encoder
(``FeatureEncoder.from_batch``), or read back from the feature cache (``cache.py``); both
give the same ``ClipFeatures``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from aid_model.aid import AIDModel
from aid_model.conditioning import clip_image_embedding, clip_pixel_values, condition_latents
from aid_model.text_condition import encode_text_condition
from aid_model.train.config import CondAugSection
from aid_model.train.randomness import AUGMENT_STREAM, sample_generator


@dataclass
class ClipFeatures:
    """One batch's inputs to the denoising loss (B samples of T frames).

    Attributes:
        latents: (B, T, C, h, w) UNSCALED VAE latent modes of the clip (the target, once
            multiplied by the VAE's scaling factor).
        concat_latents: (B, T, C, h, w) UNSCALED concat condition from the K references.
        cond_aug: (B,) the cond_aug each sample's references were noised with.
        image_embeddings: (B, 1, d) SVD's CLIP image token of frame 0.
        image_context: (B, M, d_v) e_v of frame 0 (the DQFormer's).
        instruction_embeddings: e_t (B, 77, d), or None without MCondition.
        state_embeddings: e_s (B, S·77, d), or None without MCondition.
        fps: (B,) float; num_reference_frames: (B,) long K; indices: (B,) long dataset
            indices (they key the per-sample random streams).
    """

    latents: Tensor
    concat_latents: Tensor
    cond_aug: Tensor
    image_embeddings: Tensor
    image_context: Tensor
    instruction_embeddings: Tensor | None
    state_embeddings: Tensor | None
    fps: Tensor
    num_reference_frames: Tensor
    indices: Tensor

    @property
    def batch_size(self) -> int:
        return self.latents.shape[0]


def draw_cond_aug(generator: torch.Generator, settings: CondAugSection) -> float:
    """One sample's cond_aug: the fixed value, or exp(N(log_mean, log_std²))."""
    if settings.distribution == "fixed":
        return settings.value
    normal = torch.randn((), generator=generator).item()
    return math.exp(settings.log_mean + settings.log_std * normal)


class FeatureEncoder:
    """The frozen encoders, applied to batches of the sample contract.

    Args:
        model: the AID model (concat fill, e_v mode); its ``components`` give the VAE and
            CLIP image tower.
        text_encoder: ``TextEncoder``, or None (``without_mcondition``, or cached text).
        cond_aug: how each sample's cond_aug is chosen.
        seed: run seed (keys the cond_aug streams).
        vae_batch: frames per VAE call.
        device: where features are computed and returned.
    """

    def __init__(self, model: AIDModel, text_encoder, cond_aug: CondAugSection, seed: int,
                 vae_batch: int, device: torch.device):
        self.model = model
        self.components = model.components
        self.text_encoder = text_encoder
        self.cond_aug = cond_aug
        self.seed = seed
        self.vae_batch = vae_batch
        self.device = device

    # --- pieces -----------------------------------------------------------------------

    @torch.no_grad()
    def clip_latents(self, frames: Tensor) -> Tensor:
        """(N, 3, H, W) frames in [−1, 1] → (N, C, h, w) unscaled latent modes (float32)."""
        vae = self.components.vae
        parts = []
        for chunk in frames.split(self.vae_batch):
            chunk = chunk.to(device=vae.device, dtype=vae.dtype)
            parts.append(vae.encode(chunk).latent_dist.mode().float())
        return torch.cat(parts).to(self.device)

    @torch.no_grad()
    def reference_latents(self, references: Tensor, cond_aug: float,
                          generator: torch.Generator) -> Tensor:
        """(K, 3, H, W) reference frames → (K, C, h, w) unscaled concat latents with
        cond_aug noise in pixel space (SVD's convention, ``condition_latents``)."""
        return condition_latents(self.components.vae, references, cond_aug, generator).float()

    @torch.no_grad()
    def image_features(self, first_frames: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 3, H, W) first frames → (CLIP image token (B, 1, d), e_v (B, M, d_v))."""
        encoder = self.components.image_encoder
        first_frames = first_frames.to(encoder.device)
        token = clip_image_embedding(encoder, first_frames).float()
        pixels = clip_pixel_values(first_frames, encoder.config.image_size)
        context = self.model.image_context(pixels).float()
        return token.to(self.device), context.to(self.device)

    @torch.no_grad()
    def text(self, instructions: Sequence[str],
             states: Sequence[Sequence[str]]) -> tuple[Tensor | None, Tensor | None]:
        """(e_t (B, 77, d), e_s (B, S·77, d)), or (None, None) without MCondition."""
        if not self.model.config.use_mcondition:
            return None, None
        if self.text_encoder is None:
            raise ValueError("no text encoder loaded to encode instructions with")
        e_t, e_s = encode_text_condition(
            self.text_encoder, list(instructions), [list(s) for s in states],
            self.model.config.num_states)
        return e_t.float().to(self.device), e_s.float().to(self.device)

    def concat_from_references(self, references: Sequence[Tensor]) -> Tensor:
        """Per-sample (K_i, C, h, w) references → (B, T, C, h, w) concat latents."""
        return torch.cat([self.model.concat_latents(r[None].to(self.device, torch.float32))
                          for r in references])

    # --- a whole batch --------------------------------------------------------------------

    def from_batch(self, batch: dict, step: int, micro_step: int) -> ClipFeatures:
        """Features of a collated batch, frames or cached (keys of ``collate_training``)."""
        indices = batch["index"]
        fps = batch["fps"].float()
        num_refs = batch["num_reference_frames"].long()
        if "latents" in batch:  # cached clip features
            latents = batch["latents"].float().to(self.device)
            concat = self.concat_from_references(batch["reference_latents"])
            cond_aug = batch["cond_aug"].float()
            image_embeddings = batch["image_embedding"].float().to(self.device)
            image_context = batch["image_context"].float().to(self.device)
        else:
            frames = batch["frames"]
            check_frames(frames, num_refs, self.model.config.num_frames)
            batch_size, num_frames = frames.shape[:2]
            latents = self.clip_latents(frames.flatten(0, 1)).unflatten(0, (batch_size, num_frames))
            references, values = [], []
            for i in range(batch_size):
                generator = sample_generator(self.seed, step, micro_step, int(indices[i]),
                                             AUGMENT_STREAM)
                value = draw_cond_aug(generator, self.cond_aug)
                references.append(self.reference_latents(frames[i, : int(num_refs[i])], value,
                                                         generator))
                values.append(value)
            concat = self.concat_from_references(references)
            cond_aug = torch.tensor(values, dtype=torch.float32)
            image_embeddings, image_context = self.image_features(frames[:, 0])
        if "instruction_embedding" in batch:  # cached text
            e_t = batch["instruction_embedding"].float().to(self.device)
            e_s = batch["state_embeddings"].float().to(self.device)
        else:
            e_t, e_s = self.text(batch["instruction"], batch["states"])
        return ClipFeatures(latents, concat, cond_aug, image_embeddings, image_context,
                            e_t, e_s, fps, num_refs, indices.long())


def check_frames(frames: Tensor, num_reference_frames: Tensor, num_frames: int) -> None:
    """The sample contract's frames fit the model: (B, T, 3, H, W) with T = the AID model's
    frame count and 1 ≤ K < T; raises ValueError naming the mismatch."""
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise ValueError(
            f"batch frames must be (B, T, 3, H, W) in [-1, 1], got shape {tuple(frames.shape)}"
        )
    if frames.shape[1] != num_frames:
        raise ValueError(
            f"the dataset gives clips of T={frames.shape[1]} frames but the AID model is built "
            f"for aid.num_frames={num_frames} (its DQFormer has T×N queries); set the "
            "dataset's frame count and aid.num_frames to the same value"
        )
    bad = [int(k) for k in num_reference_frames if not 1 <= int(k) < num_frames]
    if bad:
        raise ValueError(
            f"num_reference_frames {bad[0]} is outside 1 … {num_frames - 1} for T={num_frames} "
            "frames: at least one reference and one predicted frame are needed"
        )
