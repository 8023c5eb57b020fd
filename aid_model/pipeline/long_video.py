"""Long videos: one instruction per segment, each segment starting from the last k frames
of the one before (paper Appendix B: k = 2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from aid_model.images import FrameLike, prepare_frames
from aid_model.pipeline.options import PredictionOptions, check_seed
from aid_model.pipeline.pipeline import AIDPipeline, PredictionRequest, ProgressCallback
from aid_model.sampling import StepInfo

if TYPE_CHECKING:
    from aid_model.states.prompter import StatePredictor


def predict_long_video(
    pipeline: AIDPipeline,
    reference_frames: Sequence[FrameLike],
    instructions: Sequence[str],
    overlap: int = 2,
    states: Sequence[Sequence[str] | None] | None = None,
    options: PredictionOptions = PredictionOptions(),
    callback: ProgressCallback | None = None,
    state_predictor: StatePredictor | None = None,
) -> Tensor:
    """Chains one prediction per instruction.

    Segment i > 0 takes the last ``overlap`` frames of segment i − 1 as its reference
    frames and uses seed ``options.seed + i``; the joined video keeps those frames once.
    Progress is reported over all segments (step counts run from 0 to steps × segments).

    ``state_predictor`` (a VLM prompter or the synthetic world's stand-in) writes the
    future states of every segment whose ``states`` entry is None, from that segment's
    latest reference frame as the model sees it: states for segment i > 0 can only be
    written once segment i − 1 exists, so they cannot be passed in up front.

    Returns:
        (T + (N − 1)·(T − overlap), H, W, 3) in [0, 1] for N instructions.
    """
    if not instructions:
        raise ValueError("give at least one instruction (one per segment)")
    states = list(states) if states is not None else [None] * len(instructions)
    if len(states) != len(instructions):
        raise ValueError(f"{len(instructions)} instructions but {len(states)} state lists")
    options = pipeline.check_inputs(options, [len(reference_frames)])
    check_seed(options.seed + len(instructions) - 1, "seed + segments - 1 (the last segment's)")
    if not 1 <= overlap < options.num_frames:
        raise ValueError(
            f"overlap must be between 1 and num_frames - 1 = {options.num_frames - 1}, "
            f"got {overlap}"
        )

    total = options.steps * len(instructions)
    pieces: list[Tensor] = []
    references: Sequence[FrameLike] = reference_frames
    for index, (instruction, segment_states) in enumerate(zip(instructions, states, strict=True)):
        segment_callback = _offset(callback, index * options.steps, total)
        if segment_states is None and state_predictor is not None:
            latest = prepare_frames(references[-1:], options.height, options.width)[0]
            segment_states = state_predictor.predict_states(
                [latest.permute(1, 2, 0)], [instruction], pipeline.num_states
            )[0]
        request = PredictionRequest(references, instruction, segment_states, options.seed + index)
        video = pipeline._predict([request], options, segment_callback)[0]
        pieces.append(video if index == 0 else video[overlap:])
        references = [frame.permute(2, 0, 1) for frame in video[-overlap:]]
    return torch.cat(pieces)


def _offset(callback: ProgressCallback | None, start: int, total: int) -> ProgressCallback | None:
    if callback is None:
        return None

    def report(info: StepInfo) -> None:
        callback(replace(info, step=start + info.step, total=total))

    return report
