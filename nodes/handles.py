"""What flows on the extension's links: AID_MODEL, AID_TEXT_ENCODER, AID_VLM, AID_CONDITIONING.

Each is a small record around the library's own objects plus the ``ManagedModel`` that
moves its modules between devices. ``expect`` turns a wrongly plugged input (possible
through reroutes, "*" sockets or the API) into an error that names the input, what was
found, and which node to connect instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from .comfy_services import ManagedModel

AID_MODEL = "AID_MODEL"
AID_TEXT_ENCODER = "AID_TEXT_ENCODER"
AID_VLM = "AID_VLM"
AID_CONDITIONING = "AID_CONDITIONING"


@dataclass(eq=False)
class AIDModelHandle:
    """AID_MODEL: SVD components (``load_svd``) and the attached ``AIDModel`` (None: plain SVD).

    Identity matters: a conditioning remembers the handle it was built with.
    """

    components: Any  # aid_model.svd.SVDComponents
    aid: Any | None  # aid_model.aid.AIDModel
    managed: ManagedModel
    label: str

    def pipeline(self, text_encoder: TextEncoderHandle | None = None):
        """An ``AIDPipeline`` over these modules (cheap: it only wires them together)."""
        from aid_model.pipeline import AIDPipeline

        encoder = text_encoder.encoder if text_encoder is not None else None
        return AIDPipeline(self.components, self.aid, encoder)

    def decoder(self):
        """A pipeline for decoding only: the VAE does not involve AID, so no text encoder
        is needed (plain SVD view of the same modules)."""
        from aid_model.pipeline import AIDPipeline

        return AIDPipeline(self.components)

    @property
    def context_width(self) -> int:
        """d, the UNet's cross-attention width (1024 for SVD)."""
        return int(self.components.unet.config.cross_attention_dim)


@dataclass(eq=False)
class TextEncoderHandle:
    """AID_TEXT_ENCODER: the library's ``TextEncoder`` (tokenizer + OpenCLIP text tower)."""

    encoder: Any  # aid_model.text_encoder.TextEncoder
    managed: ManagedModel
    label: str


@dataclass(eq=False)
class StatePrompterHandle:
    """AID_VLM: the library's ``StatePrompter`` (a vision-language model and its processor)."""

    prompter: Any  # aid_model.states.StatePrompter
    managed: ManagedModel
    label: str


@dataclass(eq=False)
class AIDConditioning:
    """AID_CONDITIONING: the seed-free conditions of B videos and what they were built with.

    Attributes:
        model: the AID_MODEL handle that built them (the sampler must get the same one).
        text_encoder: the text encoder used (None for plain SVD).
        conditions: ``SemanticConditions`` (references, CLIP token, full/null MCondition).
        height, width: the pixel size the reference frames were prepared at.
        instructions: one per video, for messages.
    """

    model: AIDModelHandle
    text_encoder: TextEncoderHandle | None
    conditions: Any  # aid_model.pipeline.SemanticConditions
    height: int
    width: int
    instructions: list[str] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return len(self.conditions.references)

    @property
    def reference_counts(self) -> list[int]:
        """K of each video."""
        return [int(reference.shape[0]) for reference in self.conditions.references]


# Which node makes each type, for error messages.
MADE_BY = {
    AID_MODEL: "Load AID Model",
    AID_TEXT_ENCODER: "Load AID Text Encoder",
    AID_VLM: "Load State Prompter",
    AID_CONDITIONING: "Build MCondition (DQFormer)",
}
HANDLES: dict[str, type] = {
    AID_MODEL: AIDModelHandle,
    AID_TEXT_ENCODER: TextEncoderHandle,
    AID_VLM: StatePrompterHandle,
    AID_CONDITIONING: AIDConditioning,
}

T = TypeVar("T")


def describe(value: Any) -> str:
    """A short, user-facing name for what arrived on an input."""
    for type_name, kind in HANDLES.items():
        if isinstance(value, kind):
            return f"an {type_name} (from '{MADE_BY[type_name]}')"
    kind = type(value)
    name = kind.__name__
    if name == "ModelPatcher":
        return "a ComfyUI MODEL (e.g. from 'Image Only Checkpoint Loader')"
    if name == "CLIP":
        return "a ComfyUI CLIP (from a CLIP loader)"
    if isinstance(value, dict) and "samples" in value:
        return "a LATENT"
    if isinstance(value, list) and value and isinstance(value[0], list):
        return "a ComfyUI CONDITIONING"
    if hasattr(value, "shape") and getattr(value, "ndim", 0) == 4:
        return f"an IMAGE-like tensor of shape {tuple(value.shape)}"
    return f"a {kind.__module__}.{name}"


def expect(value: Any, type_name: str, input_name: str) -> Any:
    """``value`` if it is the extension's ``type_name`` object, else a TypeError in
    ComfyUI's terms."""
    if isinstance(value, HANDLES[type_name]):
        return value
    raise TypeError(
        f"input '{input_name}' expects an {type_name} (output of '{MADE_BY[type_name]}'), "
        f"but got {describe(value)}; connect a '{MADE_BY[type_name]}' node to '{input_name}'"
    )


def check_text_encoder(model: AIDModelHandle, text_encoder: TextEncoderHandle | None,
                       input_name: str = "text_encoder") -> None:
    """An AID model reads instructions: a text encoder of its context width is required."""
    if model.aid is None:
        return
    if text_encoder is None:
        raise ValueError(
            f"input '{input_name}' is not connected, but the model ({model.label}) has AID "
            "weights, which read the instruction with the OpenCLIP ViT-H text encoder; connect "
            f"a 'Load AID Text Encoder' node to '{input_name}'"
        )
    width = text_encoder.encoder.width
    if width != model.context_width:
        advice = ("load the OpenCLIP ViT-H/14 text tower" if model.context_width == 1024 else
                  "connect the text encoder made for this model (the demo model's is the "
                  "second output of 'Load AID Demo Model')")
        raise ValueError(
            f"input '{input_name}': the text encoder ({text_encoder.label}) makes {width}-wide "
            f"tokens but the model ({model.label}) needs {model.context_width} (OpenCLIP ViT-H "
            f"is 1024; SD 1.x's CLIP-L is 768): {advice}"
        )
