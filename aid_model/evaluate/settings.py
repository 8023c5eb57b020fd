"""What an evaluation run is asked to do, besides the training config it reads.

The training config says which model, text encoder and data (``model``, ``text_encoder``,
``aid``, ``data``, ``conditioning``, ``runtime``); these settings say which AID weights,
which feature networks, how many samples and how to sample them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aid_model.pipeline.options import SEED_MAX, PredictionOptions

# The options a prediction takes from the data rather than from the user: T, the size and
# (by default) the fps are each validation clip's own.
FROM_THE_DATA = ("num_frames", "height", "width", "fps")


@dataclass(frozen=True)
class EvaluationSettings:
    """One evaluation.

    Attributes:
        num_samples: N, the first N samples of the dataset in its order (SSv2: 2,048).
        i3d: the I3D file (TorchScript or pytorch-i3d state dict), ``load_i3d``.
        out_dir: where shards, ``report.json`` and ``samples.png`` go.
        aid: the AID weight file; None only with ``self_check``.
        inception: an Inception TorchScript file for FID on frames, or None.
        batch_size: clips per sampling call and per feature-network call, per process.
        options: sampling options (steps, sampler, guidance scales, motion bucket, cond_aug,
            decode chunk); ``num_frames``, ``height``, ``width`` and ``fps`` are ignored:
            they come from each clip (see ``fps``).
        fps: micro-conditioning fps for every clip; None = each sample's own fps (what
            training conditioned on).
        seed: sample i is predicted with seed ``seed + i`` (rank- and batch-independent).
        self_check: the "generated" clips are the real ones (no model is loaded): FVD must
            come out 0; a check of the data, the I3D file and the plumbing.
        preview: samples (the first ones) kept as videos for ``samples.png``.
        kvd_subset_size, kvd_num_subsets: KVD over random subsets (None: whole sets).
        i3d_features, i3d_bn_eps: ``load_i3d``'s ``features`` and ``bn_eps``.
        overwrite: discard shards of other settings (and this one's) and recompute.
        progress: a tqdm bar on rank 0.
    """

    num_samples: int
    i3d: Path
    out_dir: Path
    aid: Path | None = None
    inception: Path | None = None
    batch_size: int = 4
    options: PredictionOptions = field(default_factory=PredictionOptions)
    fps: float | None = None
    seed: int = 0
    self_check: bool = False
    preview: int = 8
    kvd_subset_size: int | None = None
    kvd_num_subsets: int = 100
    i3d_features: str = "logits"
    i3d_bn_eps: float = 1e-5
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> None:
        """Raises ``ValueError`` naming the option, its value and the fix."""
        if self.num_samples < 2:
            raise ValueError(
                f"--num-samples must be at least 2 (a covariance needs two samples), got "
                f"{self.num_samples}; the paper uses 2,048 (SSv2, UCF-101), 5,558 (Bridge), "
                "9,342 (Epic-100)"
            )
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.aid is None and not self.self_check:
            raise ValueError(
                "no AID weights: pass --aid PATH (the file training wrote, e.g. "
                "runs/ssv2/aid_final.safetensors), or --self-check to evaluate the real clips "
                "against themselves"
            )
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps >= 1):
            raise ValueError(f"--fps must be a finite number >= 1 (SVD embeds fps − 1), got "
                             f"{self.fps}")
        last_seed = self.seed + max(self.num_samples - 1, 0) if isinstance(self.seed, int) else None
        if last_seed is None or self.seed < 0 or last_seed > SEED_MAX:
            raise ValueError(f"--seed must be a whole number from 0 to {SEED_MAX} − (N − 1) "
                             f"(sample i uses SEED + i), got {self.seed!r}")
        if Path(self.out_dir).exists() and not Path(self.out_dir).is_dir():
            raise ValueError(f"--out {self.out_dir} is a file; give a folder")
        for flag, path in (("--i3d", self.i3d), ("--inception", self.inception),
                           ("--aid", None if self.self_check else self.aid)):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{flag} {path} " + (
                    "is a folder; give the file" if Path(path).is_dir() else "does not exist"))
        if self.preview < 0:
            raise ValueError(f"--preview must be >= 0, got {self.preview}")
        if self.kvd_subset_size is not None and self.kvd_subset_size < 2:
            raise ValueError(f"--kvd-subset-size must be at least 2, got {self.kvd_subset_size}")
        if self.kvd_num_subsets < 1:
            raise ValueError(f"--kvd-subsets must be at least 1, got {self.kvd_num_subsets}")
        if self.i3d_features not in ("logits", "pool"):
            raise ValueError(f"--i3d-features must be logits or pool, got {self.i3d_features!r}")

    def sampling(self) -> dict[str, Any]:
        """The sampling options that apply (those not taken from the data), JSON-ready."""
        options = asdict(self.options)
        for name in FROM_THE_DATA:
            options.pop(name)
        if options["guidance_interval"] is not None:
            options["guidance_interval"] = list(options["guidance_interval"])
        options["fps"] = "sample" if self.fps is None else self.fps
        options["seed"] = f"{self.seed} + dataset index"
        return options
