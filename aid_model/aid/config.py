"""`AIDConfig`: every choice that shapes an AID model, saved as JSON with its weights."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

CONCAT_FILLS = ("repeat_last", "zeros")
IMAGE_CONTEXTS = ("tokens", "pooled")
# CLIP text encodings (instruction e_t, each state of e_s) have 77 positions.
TEXT_TOKENS = 77
# Fields of experiments that lost, with their "off" value: files written with an option
# off still load (the field is dropped); one with it on needs the commit that still ran it.
# The last commit whose AIDConfig had the experimental fields removed since: files and
# configs that name them run there.
EXPERIMENTS_COMMIT = "198c76e"


@dataclass(frozen=True)
class AIDConfig:
    """What AID adds to SVD (aid-method.md §2, §4, §5), including the paper's ablations.

    Frames:
        num_frames: T, frames per clip; the DQFormer learns T × ``queries_per_frame`` queries.
        num_reference_frames: K given frames; their own latents condition frames 0..K−1.
        concat_fill: concat condition of frames ≥ K: ``repeat_last`` (the last reference's
            latent; equals SVD's conditioning for K = 1) or ``zeros`` (the paper's mask).
        num_states: S, MLLM future states; state embeddings are (B, S·77, d).
    Adapters (§5):
        adapter_ratio: bottleneck width / model width (channels of the host attention).
        adapter_attention_heads: heads of the long-term temporal adapter's self-attention;
            must divide every bottleneck width.
    DQFormer (§4):
        dqformer_width: model width; None = the UNet's context width d (no projections).
        dqformer_heads: attention heads, must divide the width.
        dqformer_layers: pre-norm layers in each branch.
        queries_per_frame: N decomposed queries per frame; MCondition has 77 + N tokens.
        image_context: e_v as CLIP's projected visual ``tokens`` or only the ``pooled``
            image embedding (one token).
    Ablations (the paper's tables), each removes exactly its part:
        without_de, without_me: the decomposed / multimodal branch of the DQFormer.
        without_states: the DE branch's cross-attention to the states ("w/o LLaVA").
        without_mcondition: the DQFormer and the MCondition cross-attention (plain SVD
            text-wise; the adapters stay unless switched off too).
        without_adapters, without_sa, without_sta, without_lta: all adapters, or one kind.
    """

    num_frames: int = 16
    num_reference_frames: int = 1
    concat_fill: str = "repeat_last"
    num_states: int = 4

    adapter_ratio: float = 0.25
    adapter_attention_heads: int = 1

    dqformer_width: int | None = None
    dqformer_heads: int = 16
    dqformer_layers: int = 1
    queries_per_frame: int = 77
    image_context: str = "tokens"

    without_de: bool = False
    without_me: bool = False
    without_states: bool = False
    without_mcondition: bool = False
    without_adapters: bool = False
    without_sa: bool = False
    without_sta: bool = False
    without_lta: bool = False

    def __post_init__(self) -> None:
        for name in ("num_frames", "num_reference_frames", "num_states", "adapter_attention_heads",
                     "dqformer_heads", "dqformer_layers", "queries_per_frame"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"AIDConfig.{name} must be a positive integer, got {value!r}")
        if self.num_reference_frames >= self.num_frames:
            raise ValueError(
                f"AIDConfig.num_reference_frames ({self.num_reference_frames}) must be smaller "
                f"than num_frames ({self.num_frames}): at least one frame is predicted"
            )
        if self.concat_fill not in CONCAT_FILLS:
            raise ValueError(
                f"AIDConfig.concat_fill must be one of {CONCAT_FILLS}, got {self.concat_fill!r}"
            )
        if self.image_context not in IMAGE_CONTEXTS:
            raise ValueError(
                f"AIDConfig.image_context must be one of {IMAGE_CONTEXTS}, "
                f"got {self.image_context!r}"
            )
        if not isinstance(self.adapter_ratio, int | float) or not 0 < self.adapter_ratio <= 1:
            raise ValueError(
                f"AIDConfig.adapter_ratio must be in (0, 1], got {self.adapter_ratio!r}"
            )
        if self.dqformer_width is not None:
            if not isinstance(self.dqformer_width, int) or self.dqformer_width < 1:
                raise ValueError(
                    f"AIDConfig.dqformer_width must be a positive integer or None, "
                    f"got {self.dqformer_width!r}"
                )
            if self.dqformer_width % self.dqformer_heads:
                raise ValueError(
                    f"AIDConfig.dqformer_heads ({self.dqformer_heads}) must divide "
                    f"dqformer_width ({self.dqformer_width})"
                )
        if self.without_de and self.without_me:
            raise ValueError(
                "AIDConfig: without_de and without_me together leave MCondition empty; "
                "use without_mcondition=True for the model without MCondition"
            )

    # Which parts exist: one place, so the builder, the weights and the tests agree.
    @property
    def use_mcondition(self) -> bool:
        return not self.without_mcondition

    @property
    def use_me(self) -> bool:
        return self.use_mcondition and not self.without_me

    @property
    def use_de(self) -> bool:
        return self.use_mcondition and not self.without_de

    @property
    def use_states(self) -> bool:
        return self.use_de and not self.without_states

    @property
    def use_sa(self) -> bool:
        return not (self.without_adapters or self.without_sa)

    @property
    def use_sta(self) -> bool:
        return not (self.without_adapters or self.without_sta)

    @property
    def use_lta(self) -> bool:
        return not (self.without_adapters or self.without_lta)

    @property
    def mcondition_tokens(self) -> int:
        """L, tokens of one frame's MCondition: 77 (E_me) + N (E_de[t]) when both are on."""
        return (TEXT_TOKENS if self.use_me else 0) + (self.queries_per_frame if self.use_de else 0)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AIDConfig:
        values = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"AIDConfig JSON has unknown fields {unknown}; it was written by another "
                f"version of aid_model (experimental fields since removed run at commit "
                f"{EXPERIMENTS_COMMIT}; known fields: {sorted(known)})"
            )
        return cls(**values)
