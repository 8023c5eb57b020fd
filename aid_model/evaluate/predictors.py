"""Turning a batch of validation clips into predicted clips.

A predictor takes a collated batch (``aid_model.data.collate_clips``) and the batch's
dataset indices and returns clips shaped like the batch's frames: (B, T, 3, H, W) in
[−1, 1], the K given frames at their places. ``PipelinePredictor`` samples them with AID;
``GroundTruthPredictor`` returns the real clips (``--self-check``: FVD must be 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from aid_model.pipeline.options import PredictionOptions


class ClipPredictor(Protocol):
    def __call__(self, batch: dict[str, Any], indices: Sequence[int]) -> Tensor: ...


class GroundTruthPredictor:
    """The "prediction" is the real clip: the evaluation's self-check."""

    def __call__(self, batch: dict[str, Any], indices: Sequence[int]) -> Tensor:
        return batch["frames"].clone()


class PipelinePredictor:
    """Predicts each clip from its K reference frames, instruction and states.

    Args:
        pipeline: an ``AIDPipeline`` with AID weights.
        options: sampling options; T, height and width are taken from the clips.
        seed: clip i (dataset index) is sampled with seed ``seed + i``, so its prediction
            depends neither on the rank nor on the rest of its batch.
        fps: the micro-conditioning fps of every clip; None = each clip's own (what
            training conditioned on). Clips of different fps are sampled in separate calls.
        callback: the pipeline's per-step callback (progress), or None.
    """

    def __init__(self, pipeline, options: PredictionOptions, seed: int = 0,
                 fps: float | None = None, callback=None):
        self.pipeline = pipeline
        self.options = options
        self.seed = seed
        self.fps = fps
        self.callback = callback

    def __call__(self, batch: dict[str, Any], indices: Sequence[int]) -> Tensor:
        from aid_model.pipeline import PredictionRequest

        frames: Tensor = batch["frames"]  # (B, T, 3, H, W) in [−1, 1]
        _, num_frames, _, height, width = frames.shape
        options = self.options.with_(num_frames=num_frames, height=height, width=width)
        fps_values = [self.fps if self.fps is not None else float(f) for f in batch["fps"]]
        requests = []
        for b, index in enumerate(indices):
            k = int(batch["num_reference_frames"][b])
            references = [(frame + 1.0) / 2.0 for frame in frames[b, :k]]  # (3, H, W) in [0, 1]
            requests.append(PredictionRequest(references, batch["instruction"][b],
                                              batch["states"][b] or None, self.seed + int(index)))
        output = torch.empty_like(frames)
        # One sampling call per fps value: the micro-conditioning is one value per call.
        for fps in sorted(set(fps_values)):
            members = [b for b, value in enumerate(fps_values) if value == fps]
            videos = self.pipeline.predict_batch([requests[b] for b in members],
                                                 options.with_(fps=fps), self.callback)
            for b, video in zip(members, videos, strict=True):
                # (T, H, W, 3) in [0, 1] → (T, 3, H, W) in [−1, 1], the dataset's layout.
                output[b] = video.permute(0, 3, 1, 2).to(output) * 2.0 - 1.0
        # The given frames exactly as the data has them (the pipeline's copy went through
        # [0, 1] and back, one rounding apart).
        for b in range(frames.shape[0]):
            k = int(batch["num_reference_frames"][b])
            output[b, :k] = frames[b, :k]
        return output
