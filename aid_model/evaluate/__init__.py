"""Evaluating trained AID weights: FVD, KVD (and FID) on validation clips.

    python -m aid_model evaluate --config configs/ssv2.yaml --aid runs/ssv2/aid_final.safetensors \
        --i3d models/i3d_torchscript.pt --num-samples 2048 --set data.split=validation
    torchrun --standalone --nproc_per_node 8 -m aid_model evaluate ...   (same options)

The first N validation clips are predicted from their K reference frames, instruction and
states; I3D features of the predictions (reference frames included) and of the real clips
give FVD and KVD as aid-method §8 defines them (``aid_model.metrics``). One module per
concept:

    settings.py    EvaluationSettings: files, N, sampling options, seeds
    identity.py    the settings fingerprint that decides which shards can be reused
    predictors.py  a batch of clips → predicted clips (AID pipeline, or the ground truth)
    features.py    the I3D / Inception networks, checked on a real clip before sampling
    shards.py      per-rank result files (features, previews), resumable chunks
    worker.py      one process's share: predict, featurise, write its shard
    gather.py      rank 0: read the shards, compute the metrics
    report.py      report.json, samples.png, versions
    run.py         evaluate(config, settings): the order, the barriers

See docs/evaluation.md.
"""

from __future__ import annotations

from aid_model.lazy_exports import lazy_exports

# Resolved when first used: the run module imports the training package (and through it
# diffusers), which ``settings`` and ``shards`` readers do not need.
_EXPORTS = {
    "compute_metrics": "aid_model.evaluate.gather",
    "gather_shards": "aid_model.evaluate.gather",
    "GroundTruthPredictor": "aid_model.evaluate.predictors",
    "PipelinePredictor": "aid_model.evaluate.predictors",
    "REPORT_FILE": "aid_model.evaluate.report",
    "SAMPLES_FILE": "aid_model.evaluate.report",
    "Evaluation": "aid_model.evaluate.run",
    "EvaluationResult": "aid_model.evaluate.run",
    "OtherProcessFailed": "aid_model.evaluate.run",
    "evaluate": "aid_model.evaluate.run",
    "EvaluationSettings": "aid_model.evaluate.settings",
    "SHARDS_FOLDER": "aid_model.evaluate.shards",
    "ShardError": "aid_model.evaluate.shards",
    "ShardRows": "aid_model.evaluate.shards",
    "assigned_indices": "aid_model.evaluate.shards",
    "read_rows": "aid_model.evaluate.shards",
    "RankOutcome": "aid_model.evaluate.worker",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("aid_model.evaluate", _EXPORTS, globals())
