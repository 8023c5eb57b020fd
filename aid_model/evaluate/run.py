"""``evaluate(config, settings)``: one evaluation, in one process or across a torchrun group.

    prepare        every process: checks and loads everything that can fail before
                   sampling (settings, AID file, data, I3D/Inception files on a real clip,
                   the pipeline), and finds rows earlier runs already computed
    ── barrier ──  a failure on any process stops all of them here
    run_rank       every process: predicts its share, writes <out>/shards/rank_XXXX
    ── barrier ──
    gather         rank 0: reads the shards, computes FVD, KVD (and FID), writes
                   report.json and samples.png

Simulating ranks in one process (tests) is ``prepare`` + ``run_rank(rank, world)`` for each
rank, then ``gather(world)``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from aid_model.evaluate.features import FeatureNetworks
from aid_model.evaluate.gather import compute_metrics, gather_shards
from aid_model.evaluate.identity import (
    FORMAT,
    file_identity,
    fingerprint,
    sample_ids_digest,
)
from aid_model.evaluate.predictors import (
    ClipPredictor,
    GroundTruthPredictor,
    PipelinePredictor,
)
from aid_model.evaluate.report import (
    REPORT_FILE,
    SAMPLES_FILE,
    skipped_summary,
    versions,
    write_report,
    write_samples_sheet,
)
from aid_model.evaluate.settings import EvaluationSettings
from aid_model.evaluate.shards import (
    SHARDS_FOLDER,
    ShardHeader,
    ShardRows,
    assigned_indices,
    rank_file,
    ranks_present,
    remove_rank_files,
    reusable_rows,
)
from aid_model.evaluate.worker import RankOutcome, run_rank
from aid_model.train.config import TrainConfig
from aid_model.train.distributed import DistributedContext


class OtherProcessFailed(RuntimeError):
    """Raised on the processes of a torchrun group that did not fail themselves."""


@dataclass
class EvaluationResult:
    """What ``evaluate`` returns: on rank 0 the report (also in ``report.json``) and the
    files written; on every rank its own ``RankOutcome``."""

    outcome: RankOutcome
    report: dict[str, Any] | None = None
    report_path: Path | None = None
    samples_path: Path | None = None


class Evaluation:
    """The pieces of one evaluation; ``evaluate`` runs them in order.

    Args:
        config: the training config (model, text encoder, data, conditioning, runtime).
        settings: what to evaluate and how.
        dataset: a map-style dataset of the sample contract in place of
            ``build_dataset(config.data)``.
        log: where progress lines go (rank 0 passes ``print``).
    """

    def __init__(self, config: TrainConfig, settings: EvaluationSettings,
                 dataset: Dataset | None = None, log=None):
        self.config = config
        self.settings = settings
        self.dataset = dataset
        self.log = log or (lambda message: None)
        self.shards_dir = Path(settings.out_dir) / SHARDS_FOLDER
        self.predictor: ClipPredictor | None = None
        self.aid_config = None
        self.device = torch.device("cpu")

    # --- before sampling ------------------------------------------------------------------

    def prepare(self, device: torch.device | str = "cpu") -> None:
        """Checks settings, files and data and loads the feature networks (cheapest first);
        computes the settings fingerprint. Raises with the value and the fix."""
        from aid_model.aid import read_aid_config

        settings, config = self.settings, self.config
        self.device = torch.device(device)
        settings.validate()
        if not settings.self_check:
            _check_paths(config, settings)
            self.aid_config = read_aid_config(settings.aid)
        if self.dataset is None:
            from aid_model.data import build_dataset

            self.dataset = build_dataset(config.data)
            self.log(self.dataset.describe() if hasattr(self.dataset, "describe")
                     else f"dataset: {len(self.dataset)} samples")
        split = str(config.data.get("split", "")).lower()
        if split == "train":
            self.log("warning: evaluating on the training split; the paper evaluates on the "
                     "validation set (--set data.split=validation)")
        available = len(self.dataset)
        if available < settings.num_samples:
            raise ValueError(
                f"--num-samples {settings.num_samples} but the dataset ({config.data.get('name')}"
                f", split {config.data.get('split', 'default')!r}) has {available} samples; "
                f"lower --num-samples (at most {available}) or check data.root"
            )
        first = self.dataset[0]
        frames = first["frames"]
        self.clip_shape = tuple(frames.shape)  # (T, 3, H, W)
        if (self.aid_config is not None and self.aid_config.use_mcondition
                and self.aid_config.num_frames != frames.shape[0]):
            raise ValueError(
                f"the AID weights {settings.aid} predict T={self.aid_config.num_frames} frames "
                f"but the data gives clips of {frames.shape[0]} frames; set "
                f"--set data.num_frames={self.aid_config.num_frames} (the model's T)"
            )
        self.networks = FeatureNetworks.load(
            Path(settings.i3d), settings.inception, self.device, settings.batch_size,
            settings.i3d_features, settings.i3d_bn_eps)
        self.networks.check_on_clip(frames, first["sample_id"])
        self.source = self.fingerprint_source()
        self.fingerprint = fingerprint(self.source)

    def fingerprint_source(self) -> dict[str, Any]:
        """Everything the shards depend on (``identity``), JSON-ready."""
        settings, config = self.settings, self.config
        records = getattr(self.dataset, "records", None)
        ids = ([record.sample_id for record in records[: settings.num_samples]]
               if records is not None else None)
        source: dict[str, Any] = {
            "format": FORMAT,
            "num_samples": settings.num_samples,
            "self_check": settings.self_check,
            "preview": settings.preview,
            "data": {key: value for key, value in config.data.items() if key != "root"},
            "sample_ids_sha256": sample_ids_digest(ids) if ids is not None else None,
            "clip_shape": list(self.clip_shape),
            "i3d": {"file": file_identity(settings.i3d), "features": settings.i3d_features,
                    "bn_eps": settings.i3d_bn_eps},
            "inception": file_identity(settings.inception),
        }
        if not settings.self_check:
            model, text = config.model, config.text_encoder
            source.update({
                "sampling": settings.sampling(),
                "model": {"svd": file_identity(model.svd), "dtype": model.dtype,
                          "unet_head_channels": model.unet_head_channels,
                          "clip_num_heads": model.clip_num_heads},
                "text_encoder": {"source": file_identity(text.source or None),
                                 "tokenizer_dir": file_identity(text.tokenizer_dir),
                                 "num_heads": text.num_heads},
                "aid": {"file": file_identity(settings.aid),
                        "config": json.loads(self.aid_config.to_json())},
            })
        return source

    def header(self, rank: int, world_size: int) -> ShardHeader:
        return ShardHeader(self.fingerprint, self.source, rank, world_size)

    def load_predictor(self) -> ClipPredictor:
        """The pipeline with the AID weights (or the ground truth for ``self_check``)."""
        settings, config = self.settings, self.config
        if settings.self_check:
            self.predictor = GroundTruthPredictor()
            return self.predictor
        from aid_model.pipeline import load_pipeline

        pipeline = load_pipeline(
            config.model.svd, aid=settings.aid, text_encoder=config.text_encoder.source or None,
            tokenizer=config.text_encoder.tokenizer_dir, dtype=config.model.dtype,
            device=self.device, unet_head_channels=config.model.unet_head_channels,
            clip_num_heads=config.model.clip_num_heads,
            text_num_heads=config.text_encoder.num_heads,
        )
        _, _, height, width = self.clip_shape
        multiple = pipeline.size_multiple
        if height % multiple or width % multiple:
            raise ValueError(
                f"the data's clips are {width}×{height} pixels, not multiples of the model's "
                f"size factor {multiple}; set data.size to a multiple (e.g. "
                f"--set data.size={max(multiple, round(height / multiple) * multiple)})"
            )
        self.predictor = PipelinePredictor(pipeline, settings.options, settings.seed,
                                           settings.fps)
        return self.predictor

    def reusable(self, rank: int, world_size: int) -> ShardRows | None:
        """Rows of this rank's indices already in ``<out>/shards`` for the same settings
        (none with ``overwrite``: the rank's old files are deleted instead)."""
        if self.settings.overwrite:
            remove_rank_files(self.shards_dir, rank)
            if rank == 0:  # files of ranks beyond this world size would confuse later runs
                for other in ranks_present(self.shards_dir):
                    if other >= world_size:
                        remove_rank_files(self.shards_dir, other)
            return None
        keep = set(assigned_indices(self.settings.num_samples, rank, world_size))
        return reusable_rows(self.shards_dir, self.fingerprint, self.source, keep)

    # --- sampling ------------------------------------------------------------------------

    def run_rank(self, rank: int, world_size: int, reused: ShardRows | None = None,
                 progress=None) -> RankOutcome:
        """Predicts and featurises this rank's share; writes ``rank_XXXX.safetensors``."""
        assigned = assigned_indices(self.settings.num_samples, rank, world_size)
        if self.predictor is None and len(reused or ()) < len(assigned):
            self.load_predictor()
        return run_rank(
            self.dataset, self.predictor, self.networks,
            num_samples=self.settings.num_samples, rank=rank, world_size=world_size,
            shards_dir=self.shards_dir, header=self.header(rank, world_size), reused=reused,
            batch_size=self.settings.batch_size, num_workers=self.config.loader.num_workers,
            preview=self.settings.preview, progress=progress,
        )

    # --- after the barrier (rank 0) -------------------------------------------------------

    def gather(self, world_size: int, extra: dict[str, Any] | None = None,
               started: float | None = None) -> tuple[dict[str, Any], Path, Path | None]:
        """Reads the shards, computes the metrics, writes ``report.json`` and
        ``samples.png``. Returns (report, report path, contact sheet path or None).

        ``extra``: more timings for the report; ``started``: ``time.perf_counter()`` at the
        start of the run, for its wall time."""
        settings, config = self.settings, self.config
        gather_started = time.perf_counter()
        rows = gather_shards(self.shards_dir, world_size, self.fingerprint, settings.num_samples)
        metrics = compute_metrics(rows, settings.kvd_subset_size, settings.kvd_num_subsets,
                                  settings.seed)
        out = Path(settings.out_dir)
        sheet = write_samples_sheet(rows, out / SAMPLES_FILE)
        duplicates = len(rows.sample_ids) - len(set(rows.sample_ids))
        if duplicates:
            metrics["warnings"].append(
                f"{duplicates} clip(s) appear twice: unreadable records were replaced by the "
                "next readable one (dataset.skipped)")
        timings = {key: round(value, 3) for key, value in rows.timings.items()}
        _, _, height, width = self.clip_shape
        report: dict[str, Any] = {
            "metrics": metrics,
            "num_samples": settings.num_samples,
            "self_check": settings.self_check,
            "dataset": {
                "config": config.data,
                "description": (self.dataset.describe() if hasattr(self.dataset, "describe")
                                else None),
                "available": len(self.dataset),
                "clip": {"frames": self.clip_shape[0], "height": height, "width": width},
                "first_sample_ids": rows.sample_ids[:5],
                "sample_ids_sha256": sample_ids_digest(rows.sample_ids),
                "skipped": skipped_summary(rows),
                "duplicates": duplicates,
            },
            "sampling": None if settings.self_check else settings.sampling(),
            "files": {
                "aid": _file_entry(settings.aid),
                "i3d": {**_file_entry(settings.i3d), "kind": self.networks.i3d.kind,
                        "feature_dim": self.networks.i3d.feature_dim,
                        "features": settings.i3d_features, "bn_eps": settings.i3d_bn_eps},
                "inception": _file_entry(settings.inception),
            },
            "aid_config": (json.loads(self.aid_config.to_json())
                           if self.aid_config is not None else None),
            "config": config.to_dict(),
            "processes": {"world_size": world_size, "device": str(self.device),
                          "dtype": config.model.dtype, "batch_size": settings.batch_size},
            "timings": {"shards": timings, **(extra or {})},
            "versions": versions(),
            "fingerprint": self.fingerprint,
            "outputs": {"report": str(out / REPORT_FILE),
                        "samples": str(sheet) if sheet is not None else None,
                        "shards": [str(rank_file(self.shards_dir, r)) for r in range(world_size)]},
        }
        now = time.perf_counter()
        report["timings"]["gather_s"] = round(now - gather_started, 3)
        report["timings"]["wall_s"] = round(now - started, 3) if started is not None else None
        path = write_report(out / REPORT_FILE, report)
        return report, path, sheet


def evaluate(config: TrainConfig, settings: EvaluationSettings, dataset: Dataset | None = None,
             context: DistributedContext | None = None) -> EvaluationResult:
    """Runs an evaluation in this process, which may be one of a torchrun group.

    Every process checks everything and loads the models; a failure on any of them stops
    all at the first barrier, before sampling. Each process then predicts its share
    (indices ≡ rank mod world size) and writes its shard; after the second barrier rank 0
    gathers them and writes the report. Rows of earlier runs with the same settings are
    reused (``settings.overwrite`` recomputes everything).
    """
    started = time.perf_counter()
    owns_context = context is None
    if context is None:
        context = DistributedContext.from_environment(config.runtime.device)
    threads_before = torch.get_num_threads()
    if config.runtime.threads is not None:
        torch.set_num_threads(config.runtime.threads)
    log = print if context.is_main else None
    rank, world = context.rank, context.world_size
    try:
        evaluation = Evaluation(config, settings, dataset, log=_flushed(log))
        failure: BaseException | None = None
        reused = None
        share = len(assigned_indices(settings.num_samples, rank, world))
        try:
            evaluation.prepare(context.device)
            reused = evaluation.reusable(rank, world)
            if len(reused or ()) < share:
                evaluation.load_predictor()  # the slow part: only when there is work
        except Exception as error:  # reported on this rank, shared with the others below
            failure = error
        _stop_if_any_failed(context, failure, "preparing")
        remaining = share - len(reused or ())
        if context.is_main:
            print(f"evaluating {settings.num_samples} samples on {world} process(es); this "
                  f"process: {remaining} to predict, {len(reused or ())} reused from "
                  f"{evaluation.shards_dir}", flush=True)
        bar = _progress_bar(remaining, settings.progress and context.is_main)
        outcome = None
        try:
            outcome = evaluation.run_rank(rank, world, reused,
                                          progress=bar.update if bar is not None else None)
        except Exception as error:
            failure = error
        finally:
            if bar is not None:
                bar.close()
        _stop_if_any_failed(context, failure, "sampling")
        result = EvaluationResult(outcome)
        if context.is_main:
            extra = {"rank0": {"computed": outcome.computed, "reused": outcome.reused,
                               "seconds": round(outcome.seconds, 3)}}
            report, path, sheet = evaluation.gather(world, extra, started)
            result.report, result.report_path, result.samples_path = report, path, sheet
        return result
    finally:
        torch.set_num_threads(threads_before)
        if owns_context:
            context.close()


def _stop_if_any_failed(context: DistributedContext, failure: BaseException | None,
                        stage: str) -> None:
    """A barrier that also tells every process whether one of them failed; all stop then
    (the others would otherwise wait at the next collective until a timeout)."""
    if context.any(failure is not None):
        if failure is not None:
            raise failure
        raise OtherProcessFailed(f"another process failed while {stage}; see its error")


def _progress_bar(total: int, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="evaluate (rank 0)", unit="clip")


def _flushed(log):
    if log is None:
        return None
    return lambda message: log(message, flush=True)


def _file_entry(path: str | Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    return {"path": str(path), **(file_identity(path) or {})}


def _check_paths(config: TrainConfig, settings: EvaluationSettings) -> None:
    """Fails fast, naming the option or config key, when a model file is missing."""
    sources = {"--aid": settings.aid, "model.svd": config.model.svd}
    if config.text_encoder.source:
        sources["text_encoder.source"] = config.text_encoder.source
    if config.text_encoder.tokenizer_dir:
        sources["text_encoder.tokenizer_dir"] = config.text_encoder.tokenizer_dir
    for key, value in sources.items():
        if not Path(value).exists():
            how = "pass the file" if key.startswith("--") else f"set it with --set {key}=PATH"
            raise FileNotFoundError(
                f"{key}: {value} does not exist (relative paths are taken from the working "
                f"directory, {Path.cwd()}); {how}"
            )
