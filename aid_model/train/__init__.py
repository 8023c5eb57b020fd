"""Training AID: ``python -m aid_model train --config FILE`` (docs/training.md).

Frozen SVD (UNet, VAE, CLIP image tower) and text encoder; the trained set is exactly
``aid_model.aid.trainable_parameters``. One module per concept:

    config.py      TrainConfig, YAML/JSON files, ``--set`` overrides
    features.py    latents, frame conditions and text embeddings of a batch
    dropout.py     condition dropout (text only / frame only / both)
    loss.py        the EDM loss; objective.py: one batch's loss
    randomness.py  per-sample random streams (exact resume, rank-independent draws)
    module.py      the trained network as one module (for DDP)
    data.py        sharded, resumable batches; cache.py: the feature cache
    schedule.py, ema.py, checkpoint.py, logs.py, plot.py, distributed.py
    trainer.py     the loop: ``train(config)``
"""

from aid_model.train.config import (
    ConfigError,
    TrainConfig,
    apply_override,
    build_config,
    load_train_config,
)
from aid_model.train.dropout import DropoutRates, drop_frame_condition, drop_text_condition
from aid_model.train.ema import EMA
from aid_model.train.loss import denoising_loss, edm_loss_weight, sample_sigma
from aid_model.train.schedule import warmup_cosine_factor, warmup_cosine_schedule
from aid_model.train.trainer import FINAL_WEIGHTS, Trainer, TrainResult, train

__all__ = [
    "EMA",
    "FINAL_WEIGHTS",
    "ConfigError",
    "DropoutRates",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "apply_override",
    "build_config",
    "denoising_loss",
    "drop_frame_condition",
    "drop_text_condition",
    "edm_loss_weight",
    "load_train_config",
    "sample_sigma",
    "train",
    "warmup_cosine_factor",
    "warmup_cosine_schedule",
]
