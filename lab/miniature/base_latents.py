"""The base's training clips, encoded once by the trained VAE and CLIP image tower.

At 64×64 the VAE encode of a batch costs as much as the base UNet's training step on it,
and the base sees every clip several times, so stage 1b reads features encoded once:

    <work>/base_latents/chunk_00000.pt …   ``CHUNK_CLIPS`` clips each, written atomically

A chunk holds, per clip (float16): ``latents`` (T, C, h, w) the UNSCALED VAE latent modes
of the clip, ``concat_latents`` (C, h, w) the UNSCALED latent of frame 0 with the
``cond_aug`` pixel noise drawn once (SVD's concat condition, frozen as the stage-2 feature
cache freezes it; one generator per encode batch, seeded by the seed and the batch's first
clip, so a chunk encoded again gets the same noise), and ``image_embeddings`` (1, d) the
CLIP image token of frame 0; and ``clip_seeds`` (N,), which clips these are. Chunks already
written are kept, so an interrupted encode continues.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from aid_model.conditioning import clip_image_embedding
from aid_model.synthetic import SyntheticClipDataset
from aid_model.train.checkpoint import atomic_write_file

_ENCODE_BATCH = 16  # clips per VAE call
CHUNK_CLIPS = 32 * _ENCODE_BATCH  # a multiple, so encode batches start where they always do
_NOISE_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class BaseLatents:
    """N encoded clips. ``latents`` (N, T, C, h, w), ``concat_latents`` (N, C, h, w),
    ``image_embeddings`` (N, 1, d); all float16 and unscaled (multiply ``latents`` by the
    VAE's scaling factor for the diffusion target)."""

    latents: Tensor
    concat_latents: Tensor
    image_embeddings: Tensor

    def __len__(self) -> int:
        return self.latents.shape[0]

    def batch(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """float32 (latents (B, T, C, h, w), concat latents repeated over T, embeddings)."""
        latents = self.latents[indices].float()
        concat = self.concat_latents[indices].float().unsqueeze(1).expand_as(latents)
        return latents, concat, self.image_embeddings[indices].float()


@torch.no_grad()
def encode_chunk(components, clips: SyntheticClipDataset, start: int, stop: int,
                 cond_aug: float, seed: int) -> dict[str, Tensor]:
    """Clips ``start … stop − 1`` of ``clips`` encoded (see the module docstring)."""
    vae, image_encoder = components.vae, components.image_encoder
    latents, concat, embeddings = [], [], []
    for first in range(start, stop, _ENCODE_BATCH):
        indices = range(first, min(first + _ENCODE_BATCH, stop))
        frames = torch.stack([clips[i]["frames"] for i in indices])  # (B, T, 3, H, W)
        batch, num_frames = frames.shape[:2]
        frames = frames.to(vae.device)
        modes = vae.encode(frames.flatten(0, 1)).latent_dist.mode()
        latents.append(modes.reshape(batch, num_frames, *modes.shape[1:]).cpu())
        noise = torch.randn(frames[:, 0].shape, generator=_noise_generator(seed, first))
        noisy = frames[:, 0] + cond_aug * noise.to(vae.device)
        concat.append(vae.encode(noisy).latent_dist.mode().cpu())
        embeddings.append(clip_image_embedding(image_encoder, frames[:, 0]).cpu())
    return {"latents": torch.cat(latents).half(), "concat_latents": torch.cat(concat).half(),
            "image_embeddings": torch.cat(embeddings).half(),
            "clip_seeds": torch.tensor(clips.seeds[start:stop], dtype=torch.long)}


def _noise_generator(seed: int, first_clip: int) -> torch.Generator:
    return torch.Generator().manual_seed(_NOISE_SEED_OFFSET + seed * 1_000_000 + first_clip)


def encode_base_latents(components, clips: SyntheticClipDataset, folder: Path,
                        cond_aug: float, seed: int) -> BaseLatents:
    """Every clip of ``clips`` encoded into ``folder`` (resumable), then loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    chunks = []
    for index, start in enumerate(range(0, len(clips), CHUNK_CLIPS)):
        path = folder / f"chunk_{index:05d}.pt"
        stop = min(start + CHUNK_CLIPS, len(clips))
        if not path.exists():
            chunk = encode_chunk(components, clips, start, stop, cond_aug, seed)
            atomic_write_file(path, lambda target, c=chunk: torch.save(c, target))
        chunk = torch.load(path, weights_only=True)
        if chunk["clip_seeds"].tolist() != list(clips.seeds[start:stop]):
            raise ValueError(f"{path} holds other clips than clips {start}…{stop - 1} of this "
                             f"run (another seed or clip count); delete {folder} to encode "
                             "them again")
        chunks.append(chunk)
    return BaseLatents(*(torch.cat([c[key] for c in chunks])
                         for key in ("latents", "concat_latents", "image_embeddings")))
