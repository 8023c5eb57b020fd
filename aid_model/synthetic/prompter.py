"""``SyntheticStatePrompter``: the synthetic world's stand-in for the vision-language model.

It has the real ``StatePrompter``'s interface (``predict_states``, ``predict``,
``model_id``, ``template_version``), so the state cache, ``annotate`` and the pipeline
take it where they take a VLM. Like the VLM it sees only the first frame and the
instruction: it finds the objects in the frame (``detect``), reads the instruction
(``instructions``), imagines the move at the world's typical distance, stopping at the
border, and describes it (``states``). It works on any frame of this world, not only on
frames generated with a known trajectory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aid_model.states.images import ImageInput, load_image
from aid_model.states.prompter import StatePrediction, StatePredictor
from aid_model.synthetic.detect import detect_objects
from aid_model.synthetic.instructions import parse_instruction
from aid_model.synthetic.motion import instructed_trajectory
from aid_model.synthetic.states import trajectory_states
from aid_model.synthetic.world import WorldConfig

SYNTHETIC_TEMPLATE_VERSION = "synthetic-states-v1"


class SyntheticStatePrompter(StatePredictor):
    """Writes S states for (first frame, instruction) pairs of the synthetic world.

    ``travel``: the distance in px the imagined move covers; None = the middle of the
    world's range (18 px by default). The ground truth moves anywhere in that range, so
    these states can name a different final position than a clip's own states do, as a
    VLM's guess would.
    """

    def __init__(self, config: WorldConfig | None = None, travel: float | None = None) -> None:
        self.config = config or WorldConfig()
        self.travel = (
            (self.config.min_travel + self.config.max_travel) / 2.0 if travel is None else travel
        )
        self.model_id = "synthetic-world"
        self.template_version = SYNTHETIC_TEMPLATE_VERSION

    def predict(
        self,
        images: Sequence[ImageInput] | ImageInput,
        instructions: Sequence[str] | str,
        num_states: int = 4,
        *,
        batch_size: int = 4,
    ) -> list[StatePrediction]:
        """Like ``predict_states``, with each answer's text and warnings.

        When the instruction cannot be read or its object is not in the frame, the
        instruction fills every state (as the VLM's parser does) and a warning says why.
        """
        del batch_size  # nothing to batch: detection is per frame
        if num_states < 1:
            raise ValueError(f"num_states must be at least 1, got {num_states}")
        image_list, instruction_list = self.pair_inputs(images, instructions)
        return [
            self._predict_one(image, text, num_states)
            for image, text in zip(image_list, instruction_list, strict=True)
        ]

    def _predict_one(self, image: ImageInput, instruction: str, num_states: int) -> StatePrediction:
        frame = np.asarray(load_image(image), dtype=np.uint8)
        try:
            command = parse_instruction(instruction)
        except ValueError as error:
            return _fallback(instruction, num_states, str(error))
        found = detect_objects(frame, self.config)
        named = [obj for obj in found if obj.identity == command.target]
        if len(named) != 1:
            return _fallback(
                instruction,
                num_states,
                f"the frame has {len(named)} {command.colour} {command.shape}(s), expected one",
            )
        objects = [obj.as_scene_object() for obj in found]
        target = found.index(named[0])
        trajectory = instructed_trajectory(
            objects, target, command.direction, self.travel, self.config
        )
        states = trajectory_states(objects[target], trajectory[:, target], num_states, self.config)
        raw_text = "\n".join(f"{number}. {state}" for number, state in enumerate(states, 1))
        return StatePrediction(instruction, states, raw_text, num_found=num_states)


def _fallback(instruction: str, num_states: int, why: str) -> StatePrediction:
    return StatePrediction(instruction, [instruction] * num_states, "", num_found=0, warnings=[why])
