"""A vision-language model that writes a video's future states from its first frame.

Works with any model that transformers' ``AutoModelForImageTextToText`` loads from a local
folder, with its ``AutoProcessor`` and chat template: LLaVA-1.5, LLaVA-NeXT,
LLaVA-OneVision (the paper's choice), Qwen2-VL / Qwen2.5-VL and peers. Decoding is greedy,
so the same frame and instruction always give the same states.

torch and transformers are imported inside the functions that need them, so importing
``aid_model.states`` stays cheap.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aid_model.states.images import ImageInput, load_image
from aid_model.states.parser import parse_states
from aid_model.states.template import TEMPLATE_VERSION, build_messages

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# New-token budget when none is given: room for S short sentences and a little preamble.
# A bound matters: a confused model can otherwise ramble until its context is full.
TOKENS_PER_STATE = 40
TOKENS_OVERHEAD = 48
DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


@dataclass(frozen=True)
class StatePrediction:
    """The states for one first frame, with the model's answer and the parser's repairs.

    ``states``: exactly S sentences in video order. ``num_found``: states the parser found
    in ``raw_text`` before resampling (0: the instruction filled every state).
    """

    instruction: str
    states: list[str]
    raw_text: str
    num_found: int
    warnings: list[str] = field(default_factory=list)

    @property
    def used_fallback(self) -> bool:
        return self.num_found == 0


def default_max_new_tokens(num_states: int) -> int:
    """The new-token bound for an answer of ``num_states`` states (200 for S = 4)."""
    return TOKENS_OVERHEAD + TOKENS_PER_STATE * num_states


class StatePredictor:
    """What every state prompter offers: ``predict`` (subclasses) and ``predict_states``.

    The real VLM prompter and the synthetic world's stand-in share this interface, so the
    cache, the dataset annotation and the nodes accept either.
    """

    def predict(
        self,
        images: Sequence[ImageInput] | ImageInput,
        instructions: Sequence[str] | str,
        num_states: int = 4,
        *,
        batch_size: int = 4,
    ) -> list[StatePrediction]:
        raise NotImplementedError

    @staticmethod
    def pair_inputs(
        images: Sequence[ImageInput] | ImageInput, instructions: Sequence[str] | str
    ) -> tuple[list[ImageInput], list[str]]:
        """One instruction per image: a single string is shared by every image."""
        image_list = _as_list(images)
        if isinstance(instructions, str):
            instruction_list = [instructions] * len(image_list)
        else:
            instruction_list = [str(instruction) for instruction in instructions]
        if len(instruction_list) != len(image_list):
            raise ValueError(
                f"got {len(image_list)} images but {len(instruction_list)} instructions; "
                f"pass one instruction per image, or a single string for all of them"
            )
        return image_list, instruction_list

    def predict_states(
        self,
        images: Sequence[ImageInput] | ImageInput,
        instructions: Sequence[str] | str,
        num_states: int = 4,
        *,
        batch_size: int = 4,
    ) -> list[list[str]]:
        """``num_states`` states for each (image, instruction) pair, in input order.

        A single image or a single instruction is accepted for one pair, and one
        instruction is shared by every image. Parser repairs are logged as warnings;
        ``predict`` returns them instead, with the raw answers.
        """
        predictions = self.predict(images, instructions, num_states, batch_size=batch_size)
        for prediction in predictions:
            for warning in prediction.warnings:
                logger.warning("states for %r: %s", prediction.instruction, warning)
        return [prediction.states for prediction in predictions]


class StatePrompter(StatePredictor):
    """Writes S future states for (first frame, instruction) pairs with a vision-language model.

    Build one with ``StatePrompter.from_pretrained(folder)``; ``model`` and ``processor``
    may also be passed directly (any transformers image-text-to-text model and its
    processor). ``model_id`` names the model in cache keys. ``max_new_tokens`` bounds each
    answer; ``None`` gives ``default_max_new_tokens(S)``.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_id: str,
        max_new_tokens: int | None = None,
    ) -> None:
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.max_new_tokens = max_new_tokens
        self.template_version = TEMPLATE_VERSION
        tokenizer = processor.tokenizer
        # Decoder-only generation continues from the last position, so a batch of prompts
        # of different lengths must be padded on the left.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        dtype: str | torch.dtype | None = None,
        device: str | torch.device | None = None,
        trust_remote_code: bool = False,
        max_new_tokens: int | None = None,
        model_id: str | None = None,
    ) -> StatePrompter:
        """Load a model and its processor from a local folder (never from the network).

        ``dtype``: ``"float32"``, ``"float16"``, ``"bfloat16"`` (or a ``torch.dtype``);
        ``None`` picks float32 on CPU, bfloat16 on a GPU that supports it, else float16.
        ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; ``None`` picks CUDA
        when available. ``trust_remote_code``: run Python files shipped in the folder,
        needed only for models transformers has no built-in class for; off unless asked.
        ``model_id``: the name cache rows carry, by default the folder's name.
        """
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = Path(path).expanduser()
        _check_model_folder(folder, trust_remote_code)
        resolved_device = _resolve_device(device)
        resolved_dtype = _resolve_dtype(dtype, resolved_device)

        # The processor first: it is small, and a folder without one should fail before
        # gigabytes of weights are read.
        try:
            processor = AutoProcessor.from_pretrained(
                folder, local_files_only=True, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError) as error:
            raise ValueError(
                f"could not load a processor from {str(folder)!r}: {error}. The folder needs "
                f"the processor files saved with the model (processor_config.json or "
                f"preprocessor_config.json, tokenizer files, chat template)"
            ) from error
        _check_processor(processor, folder)

        try:
            model = AutoModelForImageTextToText.from_pretrained(
                folder,
                dtype=resolved_dtype,
                local_files_only=True,
                trust_remote_code=trust_remote_code,
            )
        except ValueError as error:
            if "Unrecognized configuration class" in str(error):
                raise ValueError(
                    f"the model in {str(folder)!r} is not one that "
                    f"AutoModelForImageTextToText can load ({error}); pass a vision-language "
                    f"model such as LLaVA-OneVision or Qwen2-VL"
                ) from error
            raise
        model.to(resolved_device)
        model.eval()
        return cls(
            model,
            processor,
            model_id=model_id or folder.resolve().name,
            max_new_tokens=max_new_tokens,
        )

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        """The model's floating dtype, which pixel values are cast to."""
        return self.model.dtype

    def predict(
        self,
        images: Sequence[ImageInput] | ImageInput,
        instructions: Sequence[str] | str,
        num_states: int = 4,
        *,
        batch_size: int = 4,
    ) -> list[StatePrediction]:
        """Like ``predict_states``, keeping each answer's raw text and parser warnings."""
        if num_states < 1:
            raise ValueError(f"num_states must be at least 1, got {num_states}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        image_list, instruction_list = self.pair_inputs(images, instructions)
        frames = [load_image(image) for image in image_list]
        predictions: list[StatePrediction] = []
        for start in range(0, len(frames), batch_size):
            batch_instructions = instruction_list[start : start + batch_size]
            answers = self.generate(
                frames[start : start + batch_size], batch_instructions, num_states
            )
            for instruction, answer in zip(batch_instructions, answers, strict=True):
                parsed = parse_states(answer, num_states, fallback=instruction)
                predictions.append(
                    StatePrediction(
                        instruction=instruction,
                        states=parsed.states,
                        raw_text=answer,
                        num_found=parsed.num_found,
                        warnings=parsed.warnings,
                    )
                )
        return predictions

    def generate(
        self, frames: Sequence[Any], instructions: Sequence[str], num_states: int
    ) -> list[str]:
        """The model's raw answers for one batch: PIL RGB ``frames``, one instruction each."""
        import torch

        conversations = [
            build_messages(instruction, num_states, image=frame)
            for frame, instruction in zip(frames, instructions, strict=True)
        ]
        # The processor lays each conversation out with the model's chat template, expands
        # the image placeholders, and leaves out a second BOS when the template writes one.
        inputs = self.processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True},
        )
        # Floating tensors (pixel values) take the model's dtype; token ids only move.
        inputs = inputs.to(self.device, dtype=self.dtype)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, generation_config=self._generation_config(num_states)
            )
        # generate returns prompt + answer; with left padding every prompt ends at the same column.
        answers = output[:, inputs["input_ids"].shape[1] :]
        return [
            text.strip() for text in self.processor.batch_decode(answers, skip_special_tokens=True)
        ]

    def _generation_config(self, num_states: int) -> Any:
        """The model's own generation config (stop tokens, suppressed tokens), made greedy."""
        config = copy.deepcopy(self.model.generation_config)
        config.do_sample = False
        config.num_beams = 1
        # Sampling knobs left set would only draw "ignored because do_sample=False" warnings.
        config.temperature = None
        config.top_p = None
        config.top_k = None
        config.max_new_tokens = self.max_new_tokens or default_max_new_tokens(num_states)
        config.max_length = None
        config.pad_token_id = self.processor.tokenizer.pad_token_id
        return config


def _as_list(images: Sequence[ImageInput] | ImageInput) -> list[ImageInput]:
    """One image (path, PIL image, (H, W, C) array) or a sequence of them, as a list."""
    if isinstance(images, (str, Path)) or not isinstance(images, Sequence):
        shape = getattr(images, "shape", None)
        if shape is not None and len(shape) == 4:
            return list(images)  # a (frames, H, W, C) batch, ComfyUI's IMAGE layout
        return [images]
    return list(images)


def _check_model_folder(folder: Path, trust_remote_code: bool) -> None:
    """Fail early, with the fix, on folders that cannot hold a loadable vision-language model."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"state model folder {str(folder)!r} does not exist; pass a local folder holding "
            f"a transformers vision-language model (config.json, weights, processor files), "
            f"e.g. one fetched with `hf download llava-hf/llava-onevision-qwen2-7b-ov-hf "
            f"--local-dir DIR`"
        )
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{str(folder)!r} has no config.json, so it is not a transformers model folder; "
            f"pass the folder that holds config.json and the weights"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"could not read {str(config_path)!r} as JSON: {error}") from error

    from transformers import __version__ as transformers_version
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    model_type = config.get("model_type")
    auto_map = config.get("auto_map") or {}
    if model_type in CONFIG_MAPPING_NAMES:
        if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and not (
            trust_remote_code and "AutoModelForImageTextToText" in auto_map
        ):
            raise ValueError(
                f"{str(folder)!r} holds a {model_type!r} model, which is not an "
                f"image-text-to-text (vision-language) model; pass a model such as "
                f"LLaVA-OneVision, LLaVA-NeXT or Qwen2-VL"
            )
        return
    if auto_map:
        if not trust_remote_code:
            raise ValueError(
                f"{str(folder)!r} holds a model with its own Python code (config.json "
                f"model_type {model_type!r}, auto_map for {', '.join(sorted(auto_map))}), "
                f"which transformers {transformers_version} has no built-in class for. "
                f"Pass trust_remote_code=True (CLI: --trust-remote-code) only if you trust "
                f"the code in that folder, since it will run on this machine"
            )
        if "AutoModelForImageTextToText" not in auto_map:
            raise ValueError(
                f"the custom code in {str(folder)!r} does not register an "
                f"AutoModelForImageTextToText class (its auto_map has "
                f"{', '.join(sorted(auto_map))}), so it cannot be loaded as a vision-language "
                f"model here"
            )
        return
    raise ValueError(
        f"config.json in {str(folder)!r} has model_type {model_type!r}, which transformers "
        f"{transformers_version} does not know; upgrade transformers, or check that the "
        f"folder holds a transformers model"
    )


def _check_processor(processor: Any, folder: Path) -> None:
    if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
        raise ValueError(
            f"{str(folder)!r} has a {type(processor).__name__} but no multimodal processor "
            f"(an image processor with its tokenizer); copy the model's processor_config.json "
            f"or preprocessor_config.json into the folder, or save the processor with "
            f"processor.save_pretrained(folder)"
        )
    if getattr(processor, "chat_template", None) is None:
        tokenizer_template = getattr(processor.tokenizer, "chat_template", None)
        if tokenizer_template is None:
            raise ValueError(
                f"the processor in {str(folder)!r} has no chat template, so the prompt "
                f"cannot be laid out the way the model was trained; add the model's "
                f"chat_template.jinja (or chat_template.json) to the folder"
            )
        # Older folders keep the template on the tokenizer only.
        processor.chat_template = tokenizer_template


def _resolve_device(device: str | torch.device | None) -> torch.device:
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device {device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:1' or 'mps'"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU; use 'cpu'")
    return resolved


def _resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    import torch

    if dtype is None:
        if device.type == "cpu":
            return torch.float32  # half precision on CPU is slow where it works at all
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point type, got {dtype}")
        return dtype
    name = DTYPE_NAMES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise ValueError(
            f"dtype {dtype!r} is not one of {', '.join(sorted(set(DTYPE_NAMES.values())))}"
        )
    return getattr(torch, name)
