"""The training loop: frozen SVD + text encoder, AID's trainable set, EDM loss, AdamW.

    result = train(load_train_config("configs/tiny_cpu.yaml"))

One code path for a laptop CPU run on a tiny model and a multi-node torchrun on SVD: every
difference is a config value. Launched by torchrun, each process trains on its shard of
every global batch (DistributedDataParallel); rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from aid_model.aid import (
    AIDModel,
    attach_aid,
    load_aid_weights,
    save_aid_weights,
)
from aid_model.aid import trainable_parameters as aid_trainable_parameters
from aid_model.nested_diff import differing_keys
from aid_model.text_condition import null_text_condition
from aid_model.train.cache import FeatureCache, cache_settings
from aid_model.train.checkpoint import (
    EMA_WEIGHTS_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    atomic_write_file,
    list_checkpoints,
    prune_checkpoints,
    read_resume_state,
    remove_temporaries,
    write_checkpoint,
)
from aid_model.train.config import TrainConfig, with_current_defaults
from aid_model.train.data import BatchStream, IndexedDataset, build_training_dataset
from aid_model.train.distributed import DistributedContext
from aid_model.train.dropout import DropoutRates
from aid_model.train.ema import EMA
from aid_model.train.features import FeatureEncoder
from aid_model.train.lock import RunLock, RunLockedError
from aid_model.train.logs import RunLog, truncate_log
from aid_model.train.module import AIDDenoisingModule
from aid_model.train.objective import LossOutput, ObjectiveSettings, training_loss
from aid_model.train.schedule import warmup_cosine_schedule

logger = logging.getLogger(__name__)

STATE_VERSION = 1
FINAL_WEIGHTS = "aid_final.safetensors"
_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class TrainResult:
    """What a ``train`` call did.

    Attributes:
        output_dir: the run folder.
        steps, losses: the optimizer steps run by this call (1-based counts) and their
            losses (mean over processes).
        final_weights: ``aid_final.safetensors`` (rank 0), or None.
        checkpoints: checkpoint folders written by this call.
        trainer: the ``Trainer`` (model, optimizer, …) for inspection.
    """

    output_dir: Path
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    final_weights: Path | None = None
    checkpoints: list[Path] = field(default_factory=list)
    trainer: Trainer | None = None


def train(config: TrainConfig, resume: str | None = None, dataset: Dataset | None = None,
          cache_only: bool = False, until: int | None = None) -> TrainResult:
    """Runs (or continues) a training run; see ``Trainer``.

    Args:
        config: the run's configuration.
        resume: ``auto`` (the newest checkpoint of the run, or a fresh start), a checkpoint
            folder, or None (fresh start).
        dataset: a map-style dataset of the sample contract; None builds it from
            ``config.data`` with ``aid_model.data.build_dataset``.
        cache_only: fill the feature cache and stop.
        until: stop after this optimizer step (checkpointed, resumable; the schedule
            stays ``optim.max_steps`` long); None trains to ``optim.max_steps``.
    """
    trainer = Trainer(config, dataset=dataset)
    try:
        if cache_only:
            trainer.setup(resume=None, cache_only=True)
            return TrainResult(trainer.output_dir, trainer=trainer)
        trainer.setup(resume=resume)
        return trainer.fit(until)
    finally:
        trainer.close()


class Trainer:
    """Holds everything of a run; ``setup`` then ``fit``.

    Attributes (after ``setup``):
        components: the frozen ``SVDComponents``; model: the ``AIDModel``; text_encoder;
        encoder: ``FeatureEncoder``; module: ``AIDDenoisingModule`` (DDP-wrapped in
        ``denoiser`` when distributed); optimizer, scheduler, scaler, ema; stream: the
        ``BatchStream``; step: optimizer steps done.
    """

    def __init__(self, config: TrainConfig, dataset: Dataset | None = None,
                 context: DistributedContext | None = None):
        config.validate()
        self.config = config
        self.source_dataset = dataset
        self.dataset: Dataset | None = None  # the contract dataset (given or built)
        self.context = context
        self.output_dir = Path(config.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self.step = 0
        self.log: RunLog | None = None
        self.cache: FeatureCache | None = None
        self.text_encoder = None
        self.scaler = None
        self.ema: EMA | None = None
        self.text_identity: dict | None = None  # recorded in the weight files
        self.lock: RunLock | None = None
        self._threads_before: int | None = None

    # --- set-up ---------------------------------------------------------------------------

    def setup(self, resume: str | None = None, cache_only: bool = False) -> None:
        config = self.config
        _check_sources(config)
        existing = list_checkpoints(self.checkpoint_dir)
        if resume is None and not cache_only and existing:
            # A fresh run would mix its checkpoints with the old run's (and keep-last-N
            # would delete the new ones, which have the lower step numbers).
            raise FileExistsError(
                f"{self.checkpoint_dir} already holds checkpoints of a run (newest: "
                f"{existing[-1][1].name}); continue it with --resume auto, or set another "
                "output_dir"
            )
        if self.context is None:
            self.context = DistributedContext.from_environment(config.runtime.device)
        context = self.context
        self._lock_output_dir()
        device = context.device
        if config.runtime.threads is not None:
            self._threads_before = torch.get_num_threads()  # restored by close()
            torch.set_num_threads(config.runtime.threads)
        if config.runtime.mixed_precision == "fp16" and device.type != "cuda":
            raise ValueError("runtime.mixed_precision=fp16 needs a CUDA device; use bf16 or "
                             "no on CPU")
        if device.type == "cuda":  # TF32 matmuls: the usual speed-up, ample precision here
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(config.seed)
        if context.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            remove_temporaries(self.checkpoint_dir)
            atomic_write_file(self.output_dir / "resolved_config.json", lambda p: p.write_text(
                json.dumps(config.to_dict(), indent=2), encoding="utf-8"))

        self.model = self._load_model(device)
        self.components = self.model.components
        dataset = self.source_dataset
        if dataset is None:
            dataset = build_training_dataset(config.data)
        self.dataset = dataset
        self.train_dataset = self._prepare_data(dataset, device)
        if self.text_identity is None and self.model.config.use_mcondition:
            from aid_model.text_encoder.identity import read_text_encoder_identity

            # Every text is cached, the tower was never loaded: its file tells who it is.
            self.text_identity = read_text_encoder_identity(config.text_encoder.source)
        if cache_only:
            return
        self._null_text = self._null_text_embeddings(device)
        self.settings = ObjectiveSettings(
            seed=config.seed,
            scaling_factor=float(self.components.vae.config.scaling_factor),
            p_mean=config.loss.p_mean,
            p_std=config.loss.p_std,
            loss_frames=config.loss.frames,
            dropout=DropoutRates(config.dropout.text, config.dropout.frame, config.dropout.both),
            motion_bucket_id=config.conditioning.motion_bucket_id,
            null_instruction=self._null_text[0],
            null_states=self._null_text[1],
        )

        self.module = AIDDenoisingModule(self.model)
        self.parameters = aid_trainable_parameters(self.model)
        self.optimizer = self._optimizer()
        optim = config.optim
        self.scheduler = warmup_cosine_schedule(self.optimizer, optim.warmup_steps,
                                                optim.max_steps, optim.min_lr_ratio)
        if config.runtime.mixed_precision == "fp16":
            self.scaler = torch.amp.GradScaler("cuda")
        if config.ema.enabled:
            self.ema = EMA(self.parameters, config.ema.decay, config.ema.warmup)
        self.stream = BatchStream(
            self.train_dataset, config.loader.batch_size, context.world_size, context.rank,
            config.seed, num_workers=config.loader.num_workers,
            pin_memory=device.type == "cuda", on_batch=self._count_skips,
            on_epoch_end=self._report_skips)
        resumed_from = None
        if resume is not None:
            def say(message: str) -> None:
                if context.is_main:
                    print(message, flush=True)

            found = read_resume_state(resume, self.checkpoint_dir, say)
            if found is not None:
                resumed_from, state = found
                self._load_state(resumed_from, state)
            elif context.is_main:
                print(f"--resume {resume}: no checkpoint in {self.checkpoint_dir}; starting fresh",
                      flush=True)
        jsonl = self.output_dir / config.logging.jsonl
        if context.is_main:
            if resumed_from is not None:
                truncate_log(jsonl, self.step)
            elif jsonl.exists():
                jsonl.unlink()  # a fresh start replaces an old run's log
        context.barrier()
        self.denoiser: torch.nn.Module = self.module
        if context.distributed:
            self.denoiser = DistributedDataParallel(
                self.module, device_ids=[device.index] if device.type == "cuda" else None)
        bar_total = config.optim.max_steps if config.logging.progress_bar else None
        self.log = RunLog(jsonl, config.logging.every, bar_total, initial=self.step,
                          enabled=context.is_main)
        if resumed_from is not None:
            self.log.message(f"resumed from {resumed_from} at step {self.step}")
        self._describe()

    def _lock_output_dir(self) -> None:
        """Rank 0 locks the output folder (``lock.py``); every rank learns the outcome, so
        a refused run stops on all of them instead of waiting at the next barrier."""
        context, refusal = self.context, None
        if context.is_main:
            try:
                self.lock = RunLock(self.output_dir, lambda m: print(m, flush=True)).acquire()
            except RunLockedError as error:
                refusal = error
        if context.any(refusal is not None):
            raise refusal or RunLockedError(
                f"{self.output_dir} is in use by another training run (rank 0 says which)")

    def _load_model(self, device: torch.device) -> AIDModel:
        from aid_model.svd import load_svd

        config = self.config
        dtype = _TORCH_DTYPES[config.model.dtype]
        components = load_svd(config.model.svd, dtype=dtype, device=device,
                              unet_head_channels=config.model.unet_head_channels,
                              clip_num_heads=config.model.clip_num_heads)
        model = attach_aid(components, config.aid)
        if config.model.aid_weights:
            # Before the optimiser and EMA are built, which copy the starting weights.
            load_aid_weights(model, config.model.aid_weights)
        # AdamW's updates are far below bfloat16's resolution: trained weights stay float32
        # (autocast runs the matmuls in the low precision).
        for parameter in aid_trainable_parameters(model).values():
            if parameter.dtype != torch.float32:
                parameter.data = parameter.data.float()
        model.train()
        components.vae.eval()
        components.image_encoder.eval()
        if config.runtime.gradient_checkpointing:
            components.unet.enable_gradient_checkpointing()
        return model

    def _load_text_encoder(self, device: torch.device):
        if self.text_encoder is None and self.model.config.use_mcondition:
            from aid_model.text_encoder import load_text_encoder

            section = self.config.text_encoder
            self.text_encoder = load_text_encoder(
                section.source, tokenizer_dir=section.tokenizer_dir,
                dtype=_TORCH_DTYPES[self.config.model.dtype], device=device,
                num_heads=section.num_heads)
            from aid_model.text_encoder.identity import text_encoder_identity

            self.text_identity = text_encoder_identity(self.text_encoder)
            width = self.text_encoder.width
            context_width = self.components.unet.config.cross_attention_dim
            if width != context_width:
                raise ValueError(
                    f"the text encoder {section.source} has width {width} but the UNet's "
                    f"cross-attention expects {context_width}; use the text tower that "
                    "matches the SVD (OpenCLIP ViT-H/14: 1024)"
                )
        return self.text_encoder

    def _prepare_data(self, dataset: Dataset, device: torch.device) -> Dataset:
        """The dataset training reads: the source (tagged with indices) or the cache."""
        config = self.config
        if not (config.cache.latents or config.cache.text):
            self.encoder = FeatureEncoder(self.model, self._load_text_encoder(device),
                                          config.conditioning.cond_aug, config.seed,
                                          config.runtime.vae_batch, device)
            return IndexedDataset(dataset)
        folder = Path(config.cache.dir) if config.cache.dir else self.output_dir / "cache"
        self.cache = FeatureCache(folder, cache_settings(config))
        if not self.cache.complete:
            encoder = FeatureEncoder(self.model, self._load_text_encoder(device),
                                     config.conditioning.cond_aug, config.seed,
                                     config.runtime.vae_batch, device)
            self.cache.prepare(dataset, encoder, self.context, config.loader.num_workers,
                               progress=config.logging.progress_bar and self.context.is_main)
        if config.cache.text:
            self.text_encoder = None  # every text the run needs is cached
        text_encoder = None if config.cache.text else self._load_text_encoder(device)
        self.encoder = FeatureEncoder(self.model, text_encoder, config.conditioning.cond_aug,
                                      config.seed, config.runtime.vae_batch, device)
        return self.cache.dataset(None if config.cache.latents else dataset)

    def _null_text_embeddings(self, device: torch.device) -> tuple[Tensor | None, Tensor | None]:
        """(null e_t (77, d), null e_s (S·77, d)): empty instruction and S empty states."""
        if not self.model.config.use_mcondition:
            return None, None
        if self.cache is not None and self.config.cache.text:
            e_t, e_s = self.cache.null_text()
        else:
            e_t, e_s = null_text_condition(self.text_encoder, 1, self.model.config.num_states)
            e_t, e_s = e_t[0], e_s[0]
        return e_t.float().to(device), e_s.float().to(device)

    def _optimizer(self) -> torch.optim.Optimizer:
        """AdamW; weight decay on matrices and larger tensors, none on biases, norms, gates."""
        optim = self.config.optim
        decayed = [p for p in self.parameters.values() if p.ndim >= 2]
        plain = [p for p in self.parameters.values() if p.ndim < 2]
        groups = [{"params": decayed, "weight_decay": optim.weight_decay},
                  {"params": plain, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)

    def _describe(self) -> None:
        context, config = self.context, self.config
        trained = sum(p.numel() for p in self.parameters.values())
        base = sum(p.numel() for p in self.components.unet.parameters())
        global_batch = (config.loader.batch_size * context.world_size
                        * config.optim.grad_accumulation)
        self.log.message(
            f"training {trained:,} parameters ({trained / max(base, 1):.2%} of the UNet's "
            f"{base:,}) on {context.world_size} process(es), device {context.device}; "
            f"{len(self.train_dataset)} samples, global batch {global_batch}, "
            f"{self.stream.batches_per_epoch} batches per process and epoch"
        )

    def _count_skips(self, batch: dict) -> None:
        """Unreadable records replaced inside DataLoader workers, counted by the dataset."""
        count = getattr(self.dataset, "count_skips", None)
        if callable(count) and batch.get("skipped"):
            count(batch["skipped"])

    def _report_skips(self, epoch: int) -> None:
        summary = getattr(self.dataset, "skip_summary", None)
        skipped = getattr(self.dataset, "skipped", None)
        if callable(summary) and getattr(skipped, "count", 0) and self.log is not None:
            self.log.message(f"epoch {epoch} (this process's share): {summary()}")

    # --- the loop ---------------------------------------------------------------------------

    def _autocast(self):
        precision = self.config.runtime.mixed_precision
        if precision == "no":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.context.device.type, dtype=dtype)

    def _denoise(self, *args) -> Tensor:
        with self._autocast():
            return self.denoiser(*args)

    def loss_on_batch(self, batch: dict, step: int, micro_step: int = 0,
                      settings: ObjectiveSettings | None = None) -> LossOutput:
        """The training loss of one collated batch (``collate_training``), with the random
        streams of (step, micro_step); gradients flow when enabled."""
        features = self.encoder.from_batch(batch, step, micro_step)
        return training_loss(self._denoise, features, step, micro_step,
                             settings or self.settings)

    def train_step(self) -> tuple[float, float]:
        """One optimizer step (``grad_accumulation`` micro-batches). Returns (loss averaged
        over processes, gradient norm before clipping)."""
        config, context = self.config, self.context
        accumulation = config.optim.grad_accumulation
        self.optimizer.zero_grad(set_to_none=True)
        loss_value = 0.0
        for micro in range(accumulation):
            batch = next(self.stream)
            last = micro == accumulation - 1
            sync = contextlib.nullcontext() if last or not context.distributed \
                else self.denoiser.no_sync()
            with sync:
                output = self.loss_on_batch(batch, self.step, micro)
                loss = output.loss / accumulation
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                else:
                    loss.backward()
            loss_value += float(output.loss.detach()) / accumulation
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        parameters = list(self.parameters.values())
        limit = config.optim.grad_clip if config.optim.grad_clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, limit))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the step on inf/NaN gradients
            self.scaler.update()
        else:
            if context.any(not math.isfinite(loss_value) or not math.isfinite(grad_norm)):
                raise FloatingPointError(
                    f"non-finite loss ({loss_value}) or gradient norm ({grad_norm}) at step "
                    f"{self.step + 1}; lower optim.lr, keep optim.grad_clip on, or use "
                    "runtime.mixed_precision=bf16 rather than fp16 weights"
                )
            self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        return context.mean(loss_value), grad_norm

    def fit(self, until: int | None = None) -> TrainResult:
        """Trains from ``self.step`` to ``optim.max_steps``; checkpoints, logs, exports.
        ``until`` stops earlier, after that step: checkpointed, not exported."""
        config, context = self.config, self.context
        if until is not None and not 0 < until <= config.optim.max_steps:
            raise ValueError(f"until={until}: stop at a step from 1 to optim.max_steps "
                             f"({config.optim.max_steps})")
        stop = config.optim.max_steps if until is None else until
        result = TrainResult(self.output_dir, trainer=self)
        every = config.checkpoint.every
        global_batch = (config.loader.batch_size * context.world_size
                        * config.optim.grad_accumulation)
        last_saved = None
        while self.step < stop:
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            loss, grad_norm = self.train_step()
            seconds = time.perf_counter() - started
            result.steps.append(self.step)
            result.losses.append(loss)
            epoch, taken = self.stream.position
            self.log.step({"step": self.step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                           "epoch": epoch, "epoch_batches": taken}, seconds, global_batch)
            if every and self.step % every == 0:
                last_saved = self.save_checkpoint()
                result.checkpoints.append(last_saved)
        if last_saved is None or not last_saved.name.endswith(f"{self.step:08d}"):
            result.checkpoints.append(self.save_checkpoint())
        if self.step < config.optim.max_steps:
            return result
        result.final_weights = self.export_final()
        if context.is_main:
            curve = self.log.draw_curve(self.output_dir / config.logging.loss_curve)
            self.log.message(f"done: {self.step} steps; weights {result.final_weights}; "
                             f"loss curve {curve}")
        return result

    # --- checkpoints ----------------------------------------------------------------------

    def training_state(self) -> dict[str, Any]:
        """Everything but the weights that a resumed run needs to continue exactly."""
        epoch, taken = self.stream.position
        return {
            "format_version": STATE_VERSION,
            "step": self.step,
            "epoch": epoch,
            "epoch_batches": taken,
            "world_size": self.context.world_size,
            "batch_size": self.config.loader.batch_size,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": _rng_state(),
            "config": self.config.to_dict(),
        }

    def save_checkpoint(self) -> Path:
        """Writes ``checkpoints/step_NNNNNNNN`` (rank 0; every process waits for it)."""
        context = self.context
        folder = self.checkpoint_dir / f"step_{self.step:08d}"
        context.barrier()
        if context.is_main:
            state = self.training_state()

            def write(target: Path) -> None:
                save_aid_weights(self.model, target / WEIGHTS_FILE, self.text_identity)
                if self.ema is not None:
                    with self.ema.applied():
                        save_aid_weights(self.model, target / EMA_WEIGHTS_FILE,
                                         self.text_identity)
                torch.save(state, target / STATE_FILE)

            folder = write_checkpoint(self.checkpoint_dir, self.step, write)
            removed = prune_checkpoints(self.checkpoint_dir, self.config.checkpoint.keep_last)
            self.log.message(f"checkpoint {folder}" + (
                f" (removed {', '.join(p.name for p in removed)})" if removed else ""))
        context.barrier()
        return folder

    def export_final(self) -> Path | None:
        """``aid_final.safetensors``: the EMA or raw weights (``checkpoint.export``)."""
        context = self.context
        path = self.output_dir / FINAL_WEIGHTS
        if context.is_main:
            use_ema = self.config.checkpoint.export == "ema" and self.ema is not None
            averaged = self.ema.applied() if use_ema else contextlib.nullcontext()
            with averaged:
                atomic_write_file(path, lambda p: save_aid_weights(self.model, p,
                                                                   self.text_identity))
        context.barrier()
        return path if context.is_main else None

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        """Continues from ``folder``, whose ``training_state.pt`` is ``state``."""
        if state.get("format_version") != STATE_VERSION:
            raise ValueError(f"{folder / STATE_FILE} has training-state format "
                             f"{state.get('format_version')}; this trainer reads {STATE_VERSION}")
        stored = with_current_defaults(state["config"]) or state["config"]
        differing = differing_keys(stored, self.config.to_dict(), opaque=("data",))
        if differing and self.context.is_main:
            logger.warning("resuming %s with a config that differs in %s", folder, differing)
            print(f"warning: resuming with a config that differs in {differing}", flush=True)
        if (state["world_size"], state["batch_size"]) != (self.context.world_size,
                                                          self.config.loader.batch_size):
            message = (
                f"resuming a run of {state['world_size']} process(es) × batch "
                f"{state['batch_size']} with {self.context.world_size} × "
                f"{self.config.loader.batch_size}: the data order continues only approximately"
            )
            logger.warning(message)
            if self.context.is_main:
                print(f"warning: {message}", flush=True)
        load_aid_weights(self.model, folder / WEIGHTS_FILE)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if state["ema"] is None:
                raise ValueError(f"{folder} was trained without EMA; set ema.enabled=false "
                                 "to resume it, or start a new run")
            self.ema.load_state_dict(state["ema"])
        self.stream.seek(int(state["epoch"]), int(state["epoch_batches"]))
        self.step = int(state["step"])
        _set_rng_state(state["rng"])

    def close(self) -> None:
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None
        if self.log is not None:
            self.log.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if self.context is not None:
            self.context.close()


def _check_sources(config: TrainConfig) -> None:
    """Fails fast, naming the config key, when a model file is missing (before any load)."""
    sources = {"model.svd": config.model.svd}
    if config.model.aid_weights:
        sources["model.aid_weights"] = config.model.aid_weights
    if config.aid.use_mcondition:
        sources["text_encoder.source"] = config.text_encoder.source
        if config.text_encoder.tokenizer_dir:
            sources["text_encoder.tokenizer_dir"] = config.text_encoder.tokenizer_dir
    for key, value in sources.items():
        path = Path(value)
        if not path.exists():
            raise FileNotFoundError(
                f"{key}: {value} does not exist (relative paths are taken from the working "
                f"directory, {Path.cwd()}); set it in the config or with --set {key}=PATH"
            )


def _rng_state() -> dict[str, Any]:
    """Global RNG states (the trainer's own draws are keyed streams; these cover anything
    else, e.g. a dataset drawing from the global generators in the main process)."""
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)),
                  *[float(x) if isinstance(x, float) else int(x) for x in numpy_state[2:]]],
        "python": [python_state[0], list(python_state[1]), python_state[2]],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
