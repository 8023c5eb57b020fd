"""The one prompt that asks a vision-language model for a video's future states.

Paper §3.3 ("Video Prediction Prompting"): a multimodal LLM sees the first frame and the
instruction and writes S states of the video (S = 4 in the paper: the initial state, two
intermediate states, the final state). Every state is later encoded by the CLIP text
encoder (77 tokens), so the prompt asks for one short, visual sentence per state.

The wording lives only here. Any change to what the model is asked must bump
``TEMPLATE_VERSION``: the version is part of every cache key (``aid_model.states.cache``),
so answers to an older wording are never served for the new one.
"""

from __future__ import annotations

from typing import Any

TEMPLATE_VERSION = "aid-states-v1"

# Wording of the request. ``{moments}`` and ``{numbered_lines}`` depend on S and are
# filled by ``build_prompt``; keep the answer format numbered ("1. ...") because that is
# what ``aid_model.states.parser`` reads first.
_PROMPT = (
    "This picture is the first frame of a short video. "
    'In the video, this instruction is carried out: "{instruction}".\n'
    "Predict what the scene looks like at {num_states} moments of the video, in order: "
    "{moments}.\n"
    "Describe each moment as one short sentence about what is visible in that frame: "
    "the objects, where they are and what state they are in.\n"
    "Answer with exactly {num_states} numbered lines and nothing else:\n"
    "{numbered_lines}"
)


def describe_moments(num_states: int) -> str:
    """The successive moments asked for, in words (initial, intermediate…, final)."""
    if num_states < 1:
        raise ValueError(f"num_states must be at least 1, got {num_states}")
    if num_states == 1:
        return "the end of the video, once the instruction has been carried out"
    start = "the start (this frame)"
    end = "the end, once the instruction has been carried out"
    if num_states == 2:
        return f"{start} and {end}"
    middle = num_states - 2
    plural = "moment" if middle == 1 else "moments"
    return f"{start}, {middle} intermediate {plural} while it is under way, and {end}"


def build_prompt(instruction: str, num_states: int) -> str:
    """The text half of the request for one first frame.

    ``instruction`` is the user's instruction (e.g. "pour water into the cup"); its
    whitespace is collapsed so a stray newline cannot break the numbered answer format.
    """
    instruction = " ".join(str(instruction).split())
    moments = describe_moments(num_states)
    numbered_lines = "\n".join(f"{i}. ..." for i in range(1, num_states + 1))
    return _PROMPT.format(
        instruction=instruction,
        num_states=num_states,
        moments=moments,
        numbered_lines=numbered_lines,
    )


def build_messages(instruction: str, num_states: int, image: Any = None) -> list[dict]:
    """One user turn in transformers' multimodal chat format: the image, then the prompt.

    ``image`` (a PIL image) rides along in the image entry when given; without it the
    entry only marks where the model's chat template puts its image placeholder.
    """
    image_entry: dict[str, Any] = {"type": "image"}
    if image is not None:
        image_entry["image"] = image
    return [
        {
            "role": "user",
            "content": [
                image_entry,
                {"type": "text", "text": build_prompt(instruction, num_states)},
            ],
        }
    ]
