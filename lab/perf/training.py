"""``python -m lab.perf training``: a training step of AID's trainable set against
fine-tuning the whole SVD UNet on the same batch.

Both steps use the trainer's own loss (``aid_model.train.objective.training_loss``: condition
dropout, σ ~ LogNormal(0.7, 1.6), x_σ = x + σε, λ(σ) = (σ²+1)/σ², MSE against the clean
scaled latents through ``VideoDenoiser``), then backward, gradient clipping and an AdamW
step, as the trainer does (trained parameters in float32; on a GPU the frozen base in
``--dtype`` and the forward under bf16 autocast, the trainer's ``mixed_precision: bf16``).

- AID: ``attach_aid``; trained: ``trainable_parameters`` (adapters, MCondition attention,
  DQFormer, the base's spatial cross-attention); the DQFormer runs in the step.
- full: the plain SVD UNet, every parameter trained, no AID parts, no text.

The batch is random features (latents, CLIP token and e_v, text embeddings), i.e. training
from the feature cache: the frozen VAE, CLIP tower and text encoder are not part of a step.
"""

from __future__ import annotations

import argparse
import copy
import gc
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from aid_model.aid import attach_aid, count_parameters, trainable_parameters
from aid_model.sampling import VideoCondition, VideoDenoiser
from aid_model.train.dropout import DropoutRates
from aid_model.train.features import ClipFeatures
from aid_model.train.module import AIDDenoisingModule
from aid_model.train.objective import ObjectiveSettings, training_loss
from lab.perf.measure import (
    MemoryReading,
    interleave,
    measure_memory,
    mebibytes,
    memory_in_child,
    ratio,
    seconds,
    table,
    timed,
)
from lab.perf.models import built_on, cast_, parameter_count, seeded
from lab.perf.setup import RunSettings, machine_description

VARIANTS = ("aid", "full")
LEARNING_RATE, GRAD_CLIP = 1e-4, 1.0  # the trainer's defaults (optim.lr, optim.grad_clip)
CLIP_TOKENS = 257  # e_v: CLIP ViT/14 tokens at 224 px
MEMORY_STEPS = 2  # the second is the steady state (see measure_training_memory)


@dataclass(frozen=True)
class TrainingOptions:
    """batch: samples per step; gradient_checkpointing: diffusers' checkpointing on the
    UNet (both variants)."""

    batch: int = 1
    gradient_checkpointing: bool = False

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> TrainingOptions:
        return cls(batch=args.batch, gradient_checkpointing=args.gradient_checkpointing)

    def child_arguments(self) -> list[str]:
        return ["--batch", str(self.batch)] + (
            ["--gradient-checkpointing"] if self.gradient_checkpointing else [])


def _build_unet(settings: RunSettings):
    """The SVD UNet alone (training from cached features needs no VAE or CLIP tower)."""
    from diffusers import UNetSpatioTemporalConditionModel

    from aid_model.svd.build import restore_original_unet_norms

    with seeded(settings.seed, settings.device):
        unet = built_on(settings.device,
                        lambda: UNetSpatioTemporalConditionModel(**settings.config.unet))
    restore_original_unet_norms(unet)
    cast_(unet, settings.dtype)
    return unet.requires_grad_(False).eval()


class TrainingStep:
    """One variant's model, optimizer and batch; ``step()`` runs one optimizer step.

    Args:
        settings: the run.
        options: batch and checkpointing.
        variant: ``aid`` or ``full``.
        unet: the SVD UNet to train (modified in place: AID attached, or made trainable);
            None builds one.
    """

    def __init__(self, settings: RunSettings, options: TrainingOptions, variant: str,
                 unet=None):
        if variant not in VARIANTS:
            raise ValueError(f"unknown training variant {variant!r}; choose one of {VARIANTS}")
        self.settings = settings
        self.variant = variant
        self.device = settings.device
        config = settings.config
        unet = unet if unet is not None else _build_unet(settings)
        if options.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        if variant == "aid":
            with seeded(settings.seed + 1, settings.device):
                self.model = attach_aid(_UNetOnly(unet), config.aid)
            self.model.train()
            self.parameters = trainable_parameters(self.model)
            self.counts = count_parameters(self.model)
            denoise = AIDDenoisingModule(self.model)
        else:
            self.model = None
            self.parameters = dict(unet.named_parameters())
            self.counts = None
            denoiser = VideoDenoiser(unet)

            def denoise(noisy, sigma, image, concat, time_ids, e_t, e_s, e_v) -> Tensor:
                return denoiser(noisy, sigma, VideoCondition(image, concat, time_ids))
        # AdamW's updates are far below bfloat16's resolution: trained weights stay float32
        # (as the trainer keeps them; autocast runs the matmuls in the low precision).
        for parameter in self.parameters.values():
            parameter.requires_grad_(True)
            if parameter.dtype != torch.float32:
                parameter.data = parameter.data.float()
        unet.train()
        self.unet = unet
        self.denoise = denoise
        self.optimizer = torch.optim.AdamW(list(self.parameters.values()), lr=LEARNING_RATE)
        self.features = self._features(options.batch)
        self.objective = self._objective()
        self.steps = 0

    def _features(self, batch: int) -> ClipFeatures:
        config, device = self.settings.config, self.device
        generator = torch.Generator().manual_seed(self.settings.seed + 10)
        latent_shape = (batch, config.frames, 4, *config.latent_size)
        width = config.unet["cross_attention_dim"]
        image_width = config.image_encoder["projection_dim"]

        def random(*shape: int) -> Tensor:
            return torch.randn(shape, generator=generator).to(device)

        with_text = self.variant == "aid"
        return ClipFeatures(
            latents=random(*latent_shape),
            concat_latents=random(*latent_shape),
            cond_aug=torch.full((batch,), 0.02),
            image_embeddings=random(batch, 1, width),
            image_context=random(batch, CLIP_TOKENS, image_width),
            instruction_embeddings=random(batch, 77, width) if with_text else None,
            state_embeddings=(random(batch, config.aid.num_states * 77, width)
                              if with_text else None),
            fps=torch.full((batch,), 7.0),
            num_reference_frames=torch.ones(batch, dtype=torch.long),
            indices=torch.arange(batch),
        )

    def _objective(self) -> ObjectiveSettings:
        config, device = self.settings.config, self.device
        width = config.unet["cross_attention_dim"]
        with_text = self.variant == "aid"
        return ObjectiveSettings(
            seed=self.settings.seed, scaling_factor=0.18215, p_mean=0.7, p_std=1.6,
            loss_frames="predicted", dropout=DropoutRates(), motion_bucket_id=127.0,
            null_instruction=torch.zeros(77, width, device=device) if with_text else None,
            null_states=(torch.zeros(config.aid.num_states * 77, width, device=device)
                         if with_text else None),
        )

    def _autocast(self):
        # The trainer's mixed_precision: bf16 on a GPU with low-precision weights.
        enabled = self.device.type == "cuda" and self.settings.dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.settings.dtype, enabled=enabled)

    def step(self) -> Tensor:
        """One optimizer step, as the trainer's (loss, backward, gradient clipping at norm
        1, AdamW); returns the loss (not read back: no host-device sync in the step)."""
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            output = training_loss(self.denoise, self.features, self.steps, 0, self.objective)
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(list(self.parameters.values()), GRAD_CLIP)
        self.optimizer.step()
        self.steps += 1
        return output.loss.detach()


class _UNetOnly:
    """What ``attach_aid`` needs when only the UNet exists (no VAE, no CLIP tower: e_v
    then has the UNet's context width, as the benchmark configs' CLIP projection has)."""

    def __init__(self, unet):
        self.unet = unet


def measure_training_memory(settings: RunSettings, options: TrainingOptions,
                            variant: str) -> MemoryReading:
    """Peak memory of building ``variant`` and running two optimizer steps (weights,
    gradients, AdamW state, activations; the ``increase`` counts everything but the
    process's runtime).

    Two, because the first step's forward and backward run before AdamW has made its
    moments (8 bytes a trained parameter): only from the second step on are they resident
    with the activations, as in every step of a training run.
    """

    def build_and_step() -> None:
        step = TrainingStep(settings, options, variant)
        for _ in range(MEMORY_STEPS):
            step.step()

    reading = measure_memory(settings.device, build_and_step)
    gc.collect()
    if settings.device.type == "cuda":
        torch.cuda.empty_cache()
    return reading


def run_training(settings: RunSettings, options: TrainingOptions,
                 log: Callable[[str], None] = print) -> str:
    """Runs the training figures; returns the tables as Markdown text."""
    config, device = settings.config, settings.device
    memory: dict[str, MemoryReading] = {}
    if settings.memory != "off":  # first, before the timing models take memory
        for variant in VARIANTS:
            log(f"  memory {variant}")
            if device.type == "cpu" and settings.memory == "process":
                memory[variant] = memory_in_child(
                    ["training", variant, *settings.child_arguments(),
                     *options.child_arguments()])
            else:
                memory[variant] = measure_training_memory(settings, options, variant)

    log("training steps, interleaved")
    unet = _build_unet(settings)
    steps = {"aid": TrainingStep(settings, options, "aid", copy.deepcopy(unet)),
             "full": TrainingStep(settings, options, "full", unet)}

    def workload(step: TrainingStep):
        return lambda: {"step_s": timed(device, step.step)}

    times = interleave({v: workload(s) for v, s in steps.items()}, settings.repeats, log=log)
    counts = steps["aid"].counts
    trained = {"aid": counts.trainable, "full": parameter_count(steps["full"].unet)}
    full_time = times["full"]["step_s"].median
    rows = []
    for variant, label in (("aid", "AID trainable set"), ("full", "whole UNet")):
        reading = memory.get(variant)
        memory_cells = ["—", "—"] if reading is None else [mebibytes(reading.increase),
                                                           mebibytes(reading.peak)]
        memory_ratio = "—"
        if reading is not None and "full" in memory:
            memory_ratio = ratio(reading.increase, memory["full"].increase)
        rows.append([label, f"{trained[variant]:,}", f"{trained[variant] / counts.base_unet:.2%}",
                     seconds(times[variant]["step_s"]), *memory_cells,
                     ratio(times[variant]["step_s"].median, full_time), memory_ratio])
    memory_kind = ("CUDA max_memory_allocated" if device.type == "cuda" else
                   {"process": "RSS, fresh process per variant",
                    "inline": "RSS in this process (lower bound)",
                    "off": "not measured"}[settings.memory])
    autocast = device.type == "cuda" and settings.dtype != torch.float32
    header = [
        f"machine: {machine_description(device)}",
        f"config {config.describe()}; batch {options.batch}; {settings.dtype_name} frozen "
        f"weights, float32 trained weights, on {device}"
        f"{f' with {settings.dtype_name} autocast' if autocast else ''}; "
        f"gradient checkpointing {'on' if options.gradient_checkpointing else 'off'}; "
        f"{settings.repeats} repeats after 1 warm-up, interleaved; memory: {memory_kind} "
        "(increase: from before the models were built to the peak of the first two steps)",
    ]
    result = table(
        "Training step: AID's trainable set vs the whole UNet (goals: ≤ 0.6× time, ≤ 0.5× "
        "memory, ≤ 10 % parameters)",
        ["trained", "parameters", "of UNet", "s/step", "peak mem. increase", "peak mem.",
         "time ×", "mem. ×"], rows)
    return "\n\n".join([*header, result])
