"""``AIDPipeline``: reference frames + instruction in, predicted video out.

Without AID weights it is plain SVD image-to-video (the instruction is ignored). With
them, each prediction builds the three condition branches of eq. 8 — (∅,∅), (c_f,∅),
(c_f,c_t) — once per clip, and samples with ``DualCFG``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from aid_model.aid.model import has_aid_attached
from aid_model.aid.reference import reference_concat_latents
from aid_model.conditioning import (
    clip_image_embedding,
    clip_pixel_values,
    condition_latents,
    svd_added_time_ids,
)
from aid_model.images import FrameLike, prepare_frames
from aid_model.pipeline.options import PredictionOptions, check_seed
from aid_model.sampling import (
    DualCFG,
    StepInfo,
    VideoCondition,
    VideoDenoiser,
    karras_sigmas,
    noise_to_initial_state,
    sample,
)
from aid_model.text_condition import encode_text_condition, null_text_condition
from aid_model.video_decode import decode_to_frames

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[StepInfo], None]


@dataclass(frozen=True)
class PredictionRequest:
    """One video to predict.

    Attributes:
        reference_frames: the K given frames (paths, PIL images, arrays or tensors; any
            size: resized and centre-cropped to the requested size).
        instruction: what should happen ("" is allowed: text guidance is then turned off).
        states: future-state texts (from a VLM or typed), or None for the instruction alone.
        seed: noise seed; None = the options' seed.
    """

    reference_frames: Sequence[FrameLike]
    instruction: str = ""
    states: Sequence[str] | None = None
    seed: int | None = None


@dataclass
class SemanticConditions:
    """What "Build MCondition" produces: everything that does not depend on the seed.

    Attributes:
        references: per item, the prepared reference frames (K, 3, H, W) in [0, 1].
        image_embeddings: (B, 1, d) CLIP image token of each item's first frame.
        full_mcondition: (B, T, L, d) MCondition of instruction + states; None for SVD.
        null_mcondition: (B, T, L, d) MCondition of the null text; None for SVD.
        empty_instructions: batch indices whose instruction is empty.
    """

    references: list[Tensor]
    image_embeddings: Tensor
    full_mcondition: Tensor | None
    null_mcondition: Tensor | None
    empty_instructions: list[int]


def keep_reference_frames(videos: Tensor, references: Sequence[Tensor]) -> list[Tensor]:
    """Puts the K given frames back at their places: (B, T, H, W, 3) → list of (T, H, W, 3)."""
    results = []
    for video, reference in zip(videos, references, strict=True):
        video = video.clone()
        video[: reference.shape[0]] = reference.permute(0, 2, 3, 1)
        results.append(video)
    return results


class AIDPipeline:
    """Prediction with a loaded SVD base, an optional text encoder and optional AID model.

    Args:
        components: ``SVDComponents`` (``load_svd``).
        aid: an ``AIDModel`` attached to ``components`` (``attach_aid_from_file``), or None
            for plain SVD.
        text_encoder: a ``TextEncoder`` (``load_text_encoder``); required with ``aid``.
    """

    def __init__(self, components, aid=None, text_encoder=None):
        if aid is not None and text_encoder is None:
            raise ValueError(
                "an AID model needs a text encoder (load_text_encoder) to read instructions"
            )
        if aid is not None and aid.components is not components:
            raise ValueError(
                "the AID model is attached to other SVD components than the ones given"
            )
        if aid is not None:
            width = components.unet.config.cross_attention_dim
            if text_encoder.width != width:
                raise ValueError(
                    f"the text encoder makes {text_encoder.width}-wide embeddings but the UNet's "
                    f"context is {width}-wide; use the text encoder this model was trained with "
                    "(OpenCLIP ViT-H/14's text tower for SVD: 1024)"
                )
        self.components = components
        self.aid = aid
        self.text_encoder = text_encoder
        self.denoiser = VideoDenoiser(aid.unet if aid is not None else components.unet)

    # --- facts about the model ---------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.components.device

    @property
    def size_multiple(self) -> int:
        """Pixel sizes must be multiples of this: VAE factor × UNet downsampling."""
        vae_levels = len(self.components.vae.config.block_out_channels)
        unet_levels = len(self.components.unet.config.block_out_channels)
        return 2 ** (vae_levels - 1) * 2 ** (unet_levels - 1)

    @property
    def num_states(self) -> int:
        """S, the future states the model reads (AIDConfig's default without AID weights)."""
        from aid_model.aid import AIDConfig

        return (self.aid.config if self.aid is not None else AIDConfig()).num_states

    def resolve(self, options: PredictionOptions) -> PredictionOptions:
        """Fills ``num_frames`` from the AID model and checks it matches the DQFormer."""
        if self.aid is None:
            return options if options.num_frames is not None else options.with_(num_frames=14)
        frames = self.aid.config.num_frames
        if options.num_frames is None:
            return options.with_(num_frames=frames)
        if options.num_frames != frames and self.aid.config.use_mcondition:
            raise ValueError(
                f"this AID model predicts T={frames} frames (its DQFormer has T×77 queries); "
                f"num_frames={options.num_frames} is not possible, use {frames} or leave it unset"
            )
        return options

    # --- predictions ---------------------------------------------------------------------

    def predict(
        self,
        reference_frames: Sequence[FrameLike],
        instruction: str = "",
        states: Sequence[str] | None = None,
        options: PredictionOptions = PredictionOptions(),
        callback: ProgressCallback | None = None,
    ) -> Tensor:
        """One video: (T, H, W, 3) float in [0, 1] with the K given frames at their places."""
        request = PredictionRequest(reference_frames, instruction, states)
        return self.predict_batch([request], options, callback)[0]

    def manipulate(
        self,
        reference_frame: FrameLike,
        instructions: Sequence[str],
        states: Sequence[Sequence[str] | None] | None = None,
        options: PredictionOptions = PredictionOptions(),
        callback: ProgressCallback | None = None,
    ) -> list[Tensor]:
        """One frame, several instructions, one batched call; each result equals the single
        prediction with the same seed."""
        states = states or [None] * len(instructions)
        if len(states) != len(instructions):
            raise ValueError(f"{len(instructions)} instructions but {len(states)} state lists")
        requests = [
            PredictionRequest([reference_frame], text, s)
            for text, s in zip(instructions, states, strict=True)
        ]
        return self.predict_batch(requests, options, callback)

    @torch.no_grad()
    def predict_batch(
        self,
        requests: Sequence[PredictionRequest],
        options: PredictionOptions = PredictionOptions(),
        callback: ProgressCallback | None = None,
    ) -> list[Tensor]:
        """Several videos in one batched sampling run (same options; each its own seed)."""
        if not requests:
            return []
        options = self.check_inputs(
            options,
            [len(r.reference_frames) for r in requests],
            [r.seed for r in requests if r.seed is not None],
        )
        return self._predict(requests, options, callback)

    def check_inputs(
        self,
        options: PredictionOptions,
        reference_counts: Sequence[int],
        seeds: Sequence[int] = (),
    ) -> PredictionOptions:
        """Step 1 of every prediction: ``options`` resolved against the model (``resolve``)
        and checked for videos with ``reference_counts`` given frames each and for the
        requests' own ``seeds``. Raises ValueError naming the option, its value and the fix;
        nothing below checks them again."""
        options = self.resolve(options)
        for count in sorted(set(reference_counts)):
            options.validate(count, self.size_multiple)
        for seed in seeds:
            check_seed(seed)
        return options

    def _predict(self, requests, options: PredictionOptions, callback) -> list[Tensor]:
        """``predict_batch`` for options that ``check_inputs`` returned."""
        conditions = self.encode_conditions(requests, options.height, options.width)
        seeds = [options.seed if r.seed is None else r.seed for r in requests]
        latents = self.sample_latents(conditions, options, seeds, callback)
        videos = self.decode(latents, options.decode_chunk_size)
        return keep_reference_frames(videos, conditions.references)

    # --- the three stages (the ComfyUI nodes call them one by one) ------------------------

    @torch.no_grad()
    def encode_conditions(
        self, requests: Sequence[PredictionRequest], height: int, width: int
    ) -> SemanticConditions:
        """Seed-independent conditioning: prepared reference frames, CLIP image token and,
        with AID, the MCondition of the instruction/states and of the null text."""
        if not requests:
            raise ValueError("nothing to encode: no prediction requests")
        references = [prepare_frames(r.reference_frames, height, width) for r in requests]
        first = torch.stack([r[0] for r in references]).to(self.device) * 2.0 - 1.0
        image_embeddings = clip_image_embedding(self.components.image_encoder, first).float()
        empty = [i for i, r in enumerate(requests) if not r.instruction.strip()]
        if self.aid is None:
            if any(r.instruction.strip() for r in requests):
                logger.info("no AID weights loaded: plain SVD, the instruction is not used")
            return SemanticConditions(references, image_embeddings, None, None, empty)
        config = self.aid.config
        size = self.components.image_encoder.config.image_size
        image_tokens = self.aid.image_context(clip_pixel_values(first, size))
        e_t, e_s = encode_text_condition(
            self.text_encoder,
            [r.instruction for r in requests],
            [r.states for r in requests],
            config.num_states,
        )
        null_t, null_s = null_text_condition(self.text_encoder, len(requests), config.num_states)
        device = self.device
        full = self.aid.build_mcondition(e_t.to(device), e_s.to(device), image_tokens)
        null = self.aid.build_mcondition(null_t.to(device), null_s.to(device), image_tokens)
        return SemanticConditions(references, image_embeddings, full, null, empty)

    @torch.no_grad()
    def sample_latents(
        self,
        conditions: SemanticConditions,
        options: PredictionOptions,
        seeds: Sequence[int],
        callback: ProgressCallback | None = None,
    ) -> Tensor:
        """Dual-CFG EDM sampling → (B, T, C, h, w) UNSCALED VAE latents.

        ``options`` as ``check_inputs`` returns them (resolved and checked). Per item, a CPU
        generator seeded with its seed draws the cond_aug noise, then the initial latent
        noise, so an item's result never depends on the rest of the batch.
        """
        if self.aid is None and has_aid_attached(self.components.unet):
            # Its trained adapters would run in "plain SVD" sampling without being asked for.
            raise ValueError(
                "these SVD components have AID attached to their UNet, so plain SVD sampling "
                "would still run AID's adapters; pass the AIDModel (AIDPipeline(components, "
                "aid, text_encoder)), or sample the base from a fresh load_svd(...) or after "
                "aid.detach()"
            )
        if self.aid is None and options.text_scale:
            # Plain SVD has no text branch: (c_f, c_t) would repeat (c_f, ∅) at full cost.
            logger.debug("no AID weights: text_scale=%g ignored (2 branches, plain CFG)",
                         options.text_scale)
            options = options.with_(text_scale=0.0)
        batch = len(conditions.references)
        if len(seeds) != batch:
            raise ValueError(f"{len(seeds)} seeds for a batch of {batch}")
        text_enabled = None
        if conditions.empty_instructions and options.text_scale > 0 and self.aid is not None:
            logger.warning(
                "empty instruction (batch items %s) with text_scale=%g: text guidance is turned "
                "off for those items (text_scale=0)",
                conditions.empty_instructions,
                options.text_scale,
            )
            text_enabled = torch.ones(batch, dtype=torch.bool)
            text_enabled[conditions.empty_instructions] = False
        branches, noise = self._frame_conditions(conditions, options, seeds)
        sigmas = karras_sigmas(options.steps, device=self.device)
        guided = DualCFG(self.denoiser, *branches, options.guidance(), text_enabled)
        x = noise_to_initial_state(noise.to(self.device), sigmas[0])
        check = FiniteCheck(x.device)
        x = sample(options.sampler, guided, x, sigmas, check.wrap(callback))
        check.raise_if_failed(final=x)
        return x / self.components.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: Tensor, chunk_size: int | None = 8) -> Tensor:
        """(B, T, C, h, w) unscaled latents → (B, T, H, W, 3) frames in [0, 1] on the CPU."""
        return decode_to_frames(self.components.vae, latents, chunk_size)

    def _frame_conditions(self, conditions: SemanticConditions, options, seeds):
        """The three branch conditions (batch B each) and the initial noise (B, T, C, h, w)."""
        vae = self.components.vae
        frames_count = options.num_frames
        concat, noises = [], []
        for reference, seed in zip(conditions.references, seeds, strict=True):
            generator = torch.Generator().manual_seed(int(seed))
            pixels = reference.to(self.device) * 2.0 - 1.0  # (K, 3, H, W) in [-1, 1]
            latents = condition_latents(vae, pixels, options.cond_aug, generator)
            latents = latents.float().unsqueeze(0)  # (1, K, C, h, w)
            if self.aid is not None:
                concat.append(self.aid.concat_latents(latents))
            else:
                concat.append(reference_concat_latents(latents, frames_count, "repeat_last"))
            shape = (1, frames_count, *latents.shape[2:])
            noises.append(torch.randn(shape, generator=generator))
        concat = torch.cat(concat)
        image_embeddings = conditions.image_embeddings
        ids = svd_added_time_ids(
            options.fps, options.motion_bucket_id, options.cond_aug, len(seeds)
        ).to(self.device)
        null_frame = dict(
            image_embeddings=torch.zeros_like(image_embeddings),
            concat_latents=torch.zeros_like(concat),
            added_time_ids=ids,
        )
        frame = dict(image_embeddings=image_embeddings, concat_latents=concat, added_time_ids=ids)
        null_mc, full_mc = conditions.null_mcondition, conditions.full_mcondition
        branches = (
            VideoCondition(**null_frame, mcondition=null_mc),
            VideoCondition(**frame, mcondition=null_mc),
            VideoCondition(**frame, mcondition=full_mc),
        )
        return branches, torch.cat(noises)


class FiniteCheck:
    """The NaN/inf check of sampling: every step's denoised latents, then the final state.

    On a GPU, reading a check's result waits for the device; done at every step it would
    stall the queue each step. There the results are gathered on the device (the first
    failing step) and read once, at the end. On the CPU nothing waits, so each step is
    read at once and a failing run stops at that step.

    Args:
        device: where the sampler state lives.
        immediate: read each step's result at once; None: on the CPU only.
    """

    def __init__(self, device: torch.device, immediate: bool | None = None):
        self.immediate = device.type == "cpu" if immediate is None else immediate
        # First step whose denoised latents were not finite, or -1 (a scalar on the device).
        self._first_failure = None if self.immediate else torch.full((), -1, device=device)

    def wrap(self, callback: ProgressCallback | None) -> ProgressCallback:
        """A step callback that checks ``info.denoised``, then calls ``callback``."""

        def check(info: StepInfo) -> None:
            self.check_step(info.denoised, info.step)
            if callback is not None:
                callback(info)

        return check

    def check_step(self, denoised: Tensor, step: int) -> None:
        if self.immediate:
            _raise_if_not_finite(denoised, step=step)
            return
        failed = ~torch.isfinite(denoised).all()
        self._first_failure = torch.where(failed & (self._first_failure < 0), step,
                                          self._first_failure)

    def raise_if_failed(self, final: Tensor) -> None:
        """Raises FloatingPointError naming the first failing step, or if ``final`` (the
        sampler's result) is not finite; one device read."""
        if self.immediate:
            _raise_if_not_finite(final)
            return
        final_failed = (~torch.isfinite(final).all()).long()
        first_failure, final_failed = torch.stack([self._first_failure, final_failed]).tolist()
        if first_failure >= 0:
            _raise_if_not_finite(None, step=first_failure)
        if final_failed:
            _raise_if_not_finite(None)


def _raise_if_not_finite(tensor: Tensor | None, step: int | None = None) -> None:
    """Raises the sampling error if ``tensor`` has NaN/inf; ``tensor=None`` raises."""
    if tensor is None or not torch.isfinite(tensor).all():
        where = "" if step is None else f" at step {step}"
        raise FloatingPointError(
            f"sampling produced NaN/inf latents{where} (float16 overflow is the usual cause); "
            "load the model in bfloat16 or float32. Nothing was written."
        )
