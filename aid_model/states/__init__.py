"""Future-state prompting (paper §3.3): a vision-language model writes S states of the video.

    prompter = StatePrompter.from_pretrained("models/llava-onevision-qwen2-7b-ov-hf")
    prompter.predict_states([first_frame], ["pour water into the cup"], num_states=4)
    # [["An empty glass stands on the table.", …, "The glass is full of water."]]

The pieces, one module each: ``template`` (the prompt, versioned), ``parser`` (answer →
exactly S states, never raising), ``prompter`` (loading and batched greedy generation),
``cache`` (JSONL rows keyed by image hash, instruction, model, S and template version),
``annotate`` (a dataset through the cache, resumable). See docs/state-prompting.md.

Importing this package does not import torch or transformers; loading a model does.
"""

from aid_model.states.annotate import AnnotationResult, StateSample, annotate, read_csv_samples
from aid_model.states.cache import CachedStates, StateCache
from aid_model.states.images import image_sha256, load_image
from aid_model.states.parser import ParsedStates, parse_states, resample_states
from aid_model.states.prompter import StatePrediction, StatePrompter
from aid_model.states.template import TEMPLATE_VERSION, build_prompt

__all__ = [
    "TEMPLATE_VERSION",
    "AnnotationResult",
    "CachedStates",
    "ParsedStates",
    "StateCache",
    "StatePrediction",
    "StatePrompter",
    "StateSample",
    "annotate",
    "build_prompt",
    "image_sha256",
    "load_image",
    "parse_states",
    "read_csv_samples",
    "resample_states",
]
