"""Joining separately built conditions into one batch (several videos, one sampling run).

``AIDPipeline.encode_conditions`` already encodes a batch of requests in one call; this is
for conditions built at different times, e.g. one ComfyUI "Build MCondition" node per
instruction of a manipulation (one frame, several instructions).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from aid_model.pipeline.pipeline import SemanticConditions


def concat_conditions(parts: Sequence[SemanticConditions]) -> SemanticConditions:
    """Stacks conditions on the batch axis, in order.

    All parts must come from the same model at the same size: reference frames of one
    height and width, MConditions of one shape (B, T, L, d) or all None (plain SVD), on
    one device.

    Raises:
        ValueError: naming the first part that does not fit the first one.
    """
    if not parts:
        raise ValueError("nothing to join: no conditions given")
    first = parts[0]
    size = tuple(first.references[0].shape[-2:])
    with_mcondition = first.full_mcondition is not None
    for index, part in enumerate(parts[1:], start=1):
        part_size = tuple(part.references[0].shape[-2:])
        if part_size != size:
            raise ValueError(
                f"conditions {index} were built at {part_size[1]}×{part_size[0]} pixels but "
                f"conditions 0 at {size[1]}×{size[0]}; build all of them at the same width "
                "and height"
            )
        if (part.full_mcondition is not None) != with_mcondition:
            raise ValueError(
                f"conditions {index} {'have' if not with_mcondition else 'lack'} an MCondition "
                f"but conditions 0 {'have' if with_mcondition else 'lack'} one: they come from "
                "different models (AID and plain SVD); build all of them with the same model"
            )
        if with_mcondition and part.full_mcondition.shape[1:] != first.full_mcondition.shape[1:]:
            raise ValueError(
                f"conditions {index} have MCondition shape {tuple(part.full_mcondition.shape[1:])}"
                f" per video but conditions 0 have {tuple(first.full_mcondition.shape[1:])}: "
                "they come from different AID models; build all of them with the same model"
            )
        if part.image_embeddings.device != first.image_embeddings.device:
            raise ValueError(
                f"conditions {index} are on {part.image_embeddings.device} but conditions 0 on "
                f"{first.image_embeddings.device}"
            )

    references = [reference for part in parts for reference in part.references]
    empty, offset = [], 0
    for part in parts:
        empty.extend(offset + index for index in part.empty_instructions)
        offset += len(part.references)
    return SemanticConditions(
        references=references,
        image_embeddings=torch.cat([part.image_embeddings for part in parts]),
        full_mcondition=(
            torch.cat([part.full_mcondition for part in parts]) if with_mcondition else None
        ),
        null_mcondition=(
            torch.cat([part.null_mcondition for part in parts]) if with_mcondition else None
        ),
        empty_instructions=empty,
    )
