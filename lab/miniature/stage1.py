"""Stage 1 of the miniature: the "pretrained SVD" it stands on, trained here.

1. The temporal VAE on the world's clips (reconstruction + a small KL term); its latent
   scale is then set so latents have unit standard deviation, as SD's 0.18215 does. Its
   decoder is then fine-tuned alone, the encoder frozen (as Stability fine-tuned SD's
   decoder): the latent space, so the base and stage 2 trained over it, stays as it was.
2. A base image-to-video UNet, SVD's recipe: EDM with v-prediction, the first frame as
   concat latent (with cond_aug noise) and CLIP image token, no text, objects moving at
   random; the frame condition is dropped 10 % of the time so CFG works.

Every draw comes from a CPU generator seeded by (seed, step, sample), so a run resumed
from its checkpoint continues exactly as an uninterrupted one would, and a run on a GPU
(the components moved there, ``--device cuda``) draws the same numbers.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aid_model.conditioning import svd_added_time_ids
from aid_model.demo import configs
from aid_model.sampling import VideoCondition, VideoDenoiser
from aid_model.synthetic import SyntheticClipDataset
from aid_model.train.checkpoint import atomic_write_file
from aid_model.train.ema import EMA
from aid_model.train.loss import denoising_loss, sample_sigma
from aid_model.train.randomness import sample_generator
from aid_model.train.schedule import warmup_cosine_factor
from lab.miniature.base_latents import BaseLatents, encode_base_latents

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageSettings:
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int = 50
    ema_decay: float = 0.995
    checkpoint_every: int = 100
    seed: int = 0
    frame_drop: float = 0.1  # base only: frame condition dropped (zero latent and token)
    cond_aug: float = 0.02
    p_mean: float = 0.7  # SVD's video noise distribution, as the AID stage uses
    p_std: float = 1.6


# 2,000 steps left a 0.016 error on flat grey 200 and 0.097 on grey 222 (issue #37): the
# VAE now trains 3 times as long, on every palette the world draws.
VAE_SETTINGS = StageSettings(steps=6000, batch_size=2, learning_rate=1e-3, ema_decay=0.999)
# The decoder alone, encoder frozen, on new clips (lab/NOTES.md, "The rebuilt miniature").
DECODER_SETTINGS = StageSettings(steps=3000, batch_size=2, learning_rate=3e-4,
                                 ema_decay=0.999, seed=2)
BASE_SETTINGS = StageSettings(steps=12_000, batch_size=16, learning_rate=1e-3)
# Random-motion clips the base trains on, encoded once and seen 10 times. Held-out
# denoising MSE at σ = 1 (lab/NOTES.md): 0.038 for the earlier 5,000 steps × 4 clips
# (20,000 clips seen once), 0.0195 at 5,000 × 16, 0.0156 at these settings.
BASE_CLIPS = 16_000
KL_WEIGHT = 1e-6
# Every stage trains on scenes drawn in their own colours (any grey 150-240, primaries off
# pure, any anti-aliasing: aid_model.synthetic.palette), so a user's own light-grey scene is
# inside what the model has seen; the world's exact palette is one of them.
PALETTE = "varied"


def clip_batch(dataset: SyntheticClipDataset, step: int, batch_size: int) -> Tensor:
    """(B, T, 3, H, W) in [−1, 1]: the clips a step sees, fixed by the step number."""
    first = step * batch_size
    return torch.stack([dataset[(first + i) % len(dataset)]["frames"] for i in range(batch_size)])


def vae_loss(vae, frames: Tensor, generator: torch.Generator) -> Tensor:
    """Reconstruction (MSE, pixels in [−1, 1]) + KL_WEIGHT × KL, on whole clips so the
    temporal decoder learns to mix frames. MSE, not L1: L1 weighs every pixel alike, so the
    flat background (most of a frame) outweighs the objects and their colours are learned
    late (lab/NOTES.md, "The rebuilt miniature")."""
    num_frames = frames.shape[1]
    images = frames.flatten(0, 1).to(vae.device)
    posterior = vae.encode(images).latent_dist
    noise = torch.randn(posterior.mean.shape, generator=generator).to(vae.device)
    latents = posterior.mean + posterior.std * noise
    reconstruction = vae.decode(latents, num_frames=num_frames).sample
    kl = posterior.kl().mean() / images[0].numel()
    return F.mse_loss(reconstruction, images) + KL_WEIGHT * kl


@torch.no_grad()
def latent_scale(vae, dataset: SyntheticClipDataset, clips: int = 64) -> float:
    """1 / std of the VAE latent modes: the scaling factor SD/SVD hard-code as 0.18215."""
    modes = [vae.encode(dataset[i]["frames"].to(vae.device)).latent_dist.mode()
             for i in range(clips)]
    return float(1.0 / torch.cat(modes).std())


def base_loss(unet, features: BaseLatents, scaling_factor: float, settings: StageSettings,
              step: int) -> Tensor:
    """SVD's EDM loss for the batch of encoded clips that step ``step`` sees."""
    batch = settings.batch_size
    indices = [(step * batch + i) % len(features) for i in range(batch)]
    generators = [sample_generator(settings.seed, step, 0, i, 1) for i in range(batch)]
    device = unet.device
    latents, concat, embeddings = (t.to(device) for t in features.batch(indices))
    target = latents * scaling_factor
    drop = torch.tensor([torch.rand((), generator=g).item() < settings.frame_drop
                         for g in generators]).float()
    keep = (1.0 - drop).reshape(batch, 1, 1, 1, 1).to(device)
    sigma = torch.stack([sample_sigma(g, settings.p_mean, settings.p_std)
                         for g in generators]).to(device)
    noise = torch.stack([torch.randn(target.shape[1:], generator=g)
                         for g in generators]).to(device)
    ids = svd_added_time_ids(configs.FPS, 127, settings.cond_aug, batch).to(device)
    condition = VideoCondition(embeddings * keep.reshape(batch, 1, 1), concat * keep, ids)
    noisy = target + sigma.reshape(batch, 1, 1, 1, 1) * noise
    denoised = VideoDenoiser(unet)(noisy, sigma, condition)
    mask = torch.ones(batch, target.shape[1], device=device)
    return denoising_loss(denoised, target, sigma, mask).mean()


def train_loop(
    name: str,
    module: nn.Module,
    loss_fn: Callable[[int], Tensor],
    settings: StageSettings,
    folder: Path,
) -> dict:
    """AdamW + warm-up/cosine + clipping + EMA; checkpoints every ``checkpoint_every``
    steps into ``folder/{name}.ckpt`` and resumes from it. Ends with the EMA weights
    copied into ``module``. Returns a summary (first/last losses, wall time)."""
    parameters = {n: p for n, p in module.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(parameters.values(), lr=settings.learning_rate,
                                  weight_decay=0.01)
    ema = EMA(parameters, settings.ema_decay)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / f"{name}.ckpt"
    log_path = folder / f"{name}.jsonl"
    start, elapsed = 0, 0.0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True, map_location="cpu")
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        start, elapsed = state["step"], state["elapsed"]
        logger.info("%s: resumed at step %d", name, start)
    module.train()
    began = time.perf_counter() - elapsed
    with log_path.open("a") as log:
        for step in range(start, settings.steps):
            factor = warmup_cosine_factor(step, settings.warmup_steps, settings.steps)
            for group in optimizer.param_groups:
                group["lr"] = settings.learning_rate * factor
            loss = loss_fn(step)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"{name}: loss is {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters.values(), 1.0)
            optimizer.step()
            ema.update()
            log.write(json.dumps({"step": step, "loss": round(loss.item(), 6),
                                  "lr": settings.learning_rate * factor,
                                  "wall_s": round(time.perf_counter() - began, 1)}) + "\n")
            log.flush()
            if (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps:
                state = {"module": module.state_dict(), "optimizer": optimizer.state_dict(),
                         "ema": ema.state_dict(), "step": step + 1,
                         "elapsed": time.perf_counter() - began}
                atomic_write_file(checkpoint, lambda path, s=state: torch.save(s, path))
    with torch.no_grad():
        for n, p in parameters.items():  # keep the EMA weights
            p.copy_(ema.shadow[n].to(p.dtype))
    module.eval()
    # A resume re-runs (and logs again) the steps after its checkpoint: keep the last of each.
    by_step = {record["step"]: record["loss"]
               for record in map(json.loads, log_path.read_text().splitlines())}
    losses = [by_step[step] for step in sorted(by_step)]
    return {"stage": name, "settings": asdict(settings), "steps": len(losses),
            "first_loss_mean": sum(losses[:50]) / max(1, len(losses[:50])),
            "last_loss_mean": sum(losses[-50:]) / max(1, len(losses[-50:])),
            "wall_s": round(time.perf_counter() - began, 1)}


def train_vae(components, work: Path, settings: StageSettings = VAE_SETTINGS) -> dict:
    """Trains the VAE (in place) and sets its latent scale; returns the stage's summary."""
    random_clips = SyntheticClipDataset(100_000, split="train", seed=settings.seed,
                                        random_motion=True, palette=PALETTE)
    components.unet.requires_grad_(False)
    components.vae.requires_grad_(True)

    def vae_step(step: int) -> Tensor:
        frames = clip_batch(random_clips, step, settings.batch_size)
        return vae_loss(components.vae, frames, sample_generator(settings.seed, step, 0, 0, 2))

    summary = train_loop("vae", components.vae, vae_step, settings, work)
    components.vae.requires_grad_(False)
    scale = latent_scale(components.vae, random_clips)
    components.vae.register_to_config(scaling_factor=scale)
    summary["scaling_factor"] = scale
    return summary


def train_decoder(components, work: Path, settings: StageSettings = DECODER_SETTINGS
                  ) -> dict:
    """Fine-tunes the trained VAE's decoder (in place), its encoder and quant conv frozen, so
    the latents, their scale and everything trained over them keep their meaning; returns
    the stage's summary. ``settings.seed`` draws clips the VAE stage did not see."""
    clips = SyntheticClipDataset(100_000, split="train", seed=settings.seed,
                                 random_motion=True, palette=PALETTE)
    vae = components.vae
    components.unet.requires_grad_(False)
    vae.requires_grad_(False)
    vae.decoder.requires_grad_(True)

    def decoder_step(step: int) -> Tensor:
        frames = clip_batch(clips, step, settings.batch_size)
        return vae_loss(vae, frames, sample_generator(settings.seed, step, 0, 0, 2))

    summary = train_loop("decoder", vae, decoder_step, settings, work)
    vae.requires_grad_(False)
    return summary


def train_base(components, work: Path, settings: StageSettings = BASE_SETTINGS,
               num_clips: int = BASE_CLIPS) -> dict:
    """Trains the base UNet (in place) over the trained VAE; returns the stage's summary.

    ``num_clips`` random-motion clips are encoded once (``base_latents``) and seen
    ``steps × batch_size / num_clips`` times each."""
    work.mkdir(parents=True, exist_ok=True)
    clips = SyntheticClipDataset(num_clips, split="train", seed=settings.seed + 1,
                                 random_motion=True, palette=PALETTE)
    features = encode_base_latents(components, clips, work / "base_latents",
                                   settings.cond_aug, settings.seed)
    scale = float(components.vae.config.scaling_factor)
    components.unet.requires_grad_(True)

    def base_step(step: int) -> Tensor:
        return base_loss(components.unet, features, scale, settings, step)

    summary = train_loop("base", components.unet, base_step, settings, work)
    components.unet.requires_grad_(False)
    summary["clips"] = num_clips
    return summary


def train_stage1(components, work: Path, vae_settings: StageSettings = VAE_SETTINGS,
                 decoder_settings: StageSettings = DECODER_SETTINGS,
                 base_settings: StageSettings = BASE_SETTINGS) -> list[dict]:
    """Trains the VAE, sets its latent scale, fine-tunes its decoder, then trains the base
    UNet (in place)."""
    work.mkdir(parents=True, exist_ok=True)
    return [train_vae(components, work, vae_settings),
            train_decoder(components, work, decoder_settings),
            train_base(components, work, base_settings)]
