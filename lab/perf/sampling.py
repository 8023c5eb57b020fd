"""``python -m lab.perf sampling``: our sampling next to diffusers', AID's guidance
cost, VAE decode chunks (docs/performance.md).

Tables:
1. our vanilla SVD (``AIDPipeline`` without AID, SVD's linear frame guidance) against
   diffusers' ``StableVideoDiffusionPipeline`` built from the same UNet, VAE and CLIP
   objects: time per step, per clip, peak memory;
2. AID's dual CFG (3 branches) and the guidance interval against our SVD CFG (2 branches),
   sampling stage only;
3. what AID's own modules cost inside a step (adapters, MCondition attention) and per clip
   (DQFormer);
4. VAE decode chunk size against time and peak memory;
5. with ``--channels-last`` / ``--compile``: the UNet call in those variants;
6. (only when asked for) the one-token cross-attention shortcut on and off in one
   process, on an SVD UNet call, SVD CFG and AID's dual CFG sampling.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable
from functools import cached_property
from unittest import mock

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from aid_model.conditioning import CLIP_MEAN, CLIP_STD, clip_image_embedding, clip_pixel_values
from aid_model.pipeline import AIDPipeline, PredictionOptions, SemanticConditions
from aid_model.pipeline.pipeline import FiniteCheck
from aid_model.sampling import karras_sigmas
from aid_model.svd.single_token_attention import single_token_shortcut_disabled
from aid_model.video_decode import decode_latents
from lab.perf.measure import (
    MemoryReading,
    Stats,
    StepClock,
    Workload,
    interleave,
    measure_memory,
    mebibytes,
    memory_in_child,
    ratio,
    seconds,
    table,
    timed,
)
from lab.perf.models import (
    attach_aid_copy,
    build_components,
    parameter_count,
)
from lab.perf.setup import RunSettings, machine_description

# SVD's published sampling settings, used on both pipelines.
MIN_GUIDANCE, MAX_GUIDANCE = 1.0, 3.0  # diffusers' defaults for its linear frame ramp
FPS, MOTION_BUCKET_ID, COND_AUG = 7, 127, 0.02
# AID's guidance (pipeline defaults): s_f = 1.5, s_t = 7.5.
FRAME_SCALE, TEXT_SCALE = 1.5, 7.5

# Peak dense bf16 tensor throughput (TFLOP/s, without sparsity) from the vendors' data
# sheets, for "achieved vs peak"; matched on the device name.
GPU_PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "H200": 989.0,
                        "A100": 312.0}


class _NoTextEncoder:
    """Stands in for the text encoder: the benchmark feeds the DQFormer random e_t and e_s
    (text encoding is per clip and outside every question asked here)."""

    def __init__(self, width: int):
        self.width = width  # what AIDPipeline checks against the UNet's context width

    def encode(self, texts):
        raise RuntimeError("the benchmark passes text embeddings directly")


def svd_scheduler():
    """diffusers' EulerDiscreteScheduler configured as SVD's published ``scheduler``."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
        beta_schedule="scaled_linear", prediction_type="v_prediction",
        interpolation_type="linear", use_karras_sigmas=True, sigma_min=0.002,
        sigma_max=700.0, timestep_spacing="leading", timestep_type="continuous",
        steps_offset=1,
    )


def svd_feature_extractor():
    """CLIP image preprocessing as SVD's published ``feature_extractor`` (224 px, CLIP
    mean/std); the PIL backend, since torchvision is not a dependency."""
    import transformers

    processor = getattr(transformers, "CLIPImageProcessorPil", None)
    processor = processor or transformers.CLIPImageProcessor
    return processor(
        do_resize=True, size={"shortest_edge": 224}, resample=3, do_center_crop=True,
        crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD),
        do_convert_rgb=True,
    )


class SamplingSetup:
    """Models and inputs of the sampling workloads, built on first use.

    Args:
        settings: the run.
        copy_unet_for_aid: attach AID to a copy of the UNet, keeping plain SVD available
            (False in a child process that measures one AID workload's memory).
    """

    def __init__(self, settings: RunSettings, copy_unet_for_aid: bool = True):
        self.settings = settings
        self.config = settings.config
        self.device = settings.device
        self.copy_unet_for_aid = copy_unet_for_aid

    # --- models -------------------------------------------------------------------------

    @cached_property
    def components(self):
        return build_components(self.config, self.device, self.settings.dtype,
                                self.settings.seed)

    @cached_property
    def aid_parts(self):
        """(SVDComponents with AID's UNet, AIDModel)."""
        return attach_aid_copy(self.components, self.config.aid, self.copy_unet_for_aid,
                               self.settings.seed + 1)

    @cached_property
    def plain_pipeline(self) -> AIDPipeline:
        return AIDPipeline(self.components)

    @cached_property
    def aid_pipeline(self) -> AIDPipeline:
        components, model = self.aid_parts
        return AIDPipeline(components, model,
                           _NoTextEncoder(components.unet.config.cross_attention_dim))

    @cached_property
    def diffusers_pipeline(self):
        from diffusers import StableVideoDiffusionPipeline

        components = self.components
        pipeline = StableVideoDiffusionPipeline(
            vae=components.vae, image_encoder=components.image_encoder, unet=components.unet,
            scheduler=svd_scheduler(), feature_extractor=svd_feature_extractor(),
        )
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    # --- inputs -------------------------------------------------------------------------

    def _generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.settings.seed + offset)

    @cached_property
    def image(self) -> Image.Image:
        """A random RGB frame at the clip's size (a photo would cost the same)."""
        config = self.config
        pixels = torch.randint(0, 256, (config.height, config.width, 3),
                               generator=self._generator(1), dtype=torch.uint8)
        return Image.fromarray(pixels.numpy())

    @cached_property
    def reference(self) -> Tensor:
        """(1, 3, H, W) in [0, 1]: the image as the pipeline prepares it."""
        array = np.asarray(self.image, dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1)[None]

    def text_embeddings(self, offset: int) -> tuple[Tensor, Tensor]:
        """Random (e_t (1, 77, d), e_s (1, S·77, d)) on the device."""
        width = self.config.unet["cross_attention_dim"]
        states = self.config.aid.num_states
        generator = self._generator(offset)
        e_t = torch.randn(1, 77, width, generator=generator)
        e_s = torch.randn(1, states * 77, width, generator=generator)
        return (e_t.to(self.device, self.settings.dtype), e_s.to(self.device, self.settings.dtype))

    @cached_property
    def image_tokens(self) -> Tensor:
        """e_v of the reference frame, from the CLIP tower."""
        _, model = self.aid_parts
        first = self.reference.to(self.device) * 2.0 - 1.0
        size = self.components.image_encoder.config.image_size
        with torch.no_grad():
            return model.image_context(clip_pixel_values(first, size))

    @cached_property
    def image_embeddings(self) -> Tensor:
        first = self.reference.to(self.device) * 2.0 - 1.0
        return clip_image_embedding(self.components.image_encoder, first).float()

    def build_mconditions(self) -> tuple[Tensor, Tensor]:
        """(full, null) MCondition, as ``encode_conditions`` builds them: two DQFormer calls."""
        _, model = self.aid_parts
        with torch.no_grad():
            full = model.build_mcondition(*self.text_embeddings(2), self.image_tokens)
            null = model.build_mcondition(*self.text_embeddings(3), self.image_tokens)
        return full, null

    @cached_property
    def plain_conditions(self) -> SemanticConditions:
        return SemanticConditions([self.reference[0:1]], self.image_embeddings, None, None, [])

    @cached_property
    def aid_conditions(self) -> SemanticConditions:
        full, null = self.build_mconditions()
        return SemanticConditions([self.reference[0:1]], self.image_embeddings, full, null, [])

    def options(self, **changes) -> PredictionOptions:
        config = self.config
        base = PredictionOptions(
            num_frames=config.frames, height=config.height, width=config.width,
            steps=config.steps, sampler="euler", seed=self.settings.seed, fps=FPS,
            motion_bucket_id=MOTION_BUCKET_ID, cond_aug=COND_AUG,
            decode_chunk_size=config.decode_chunk,
        )
        return base.with_(**changes)

    # --- workloads ----------------------------------------------------------------------

    def workload(self, name: str) -> Workload:
        """The named workload, with its inputs built now (outside any measurement)."""
        factories: dict[str, Callable[[], Workload]] = {
            "ours": lambda: self._clip(self.ours_runner()),
            "ours-deferred-check": lambda: self._clip(self.ours_runner(check_every_step=False)),
            "diffusers": lambda: self._clip(self.diffusers_runner()),
            "svd-cfg": lambda: self._sampling(aid=False, text_scale=0.0),
            "svd-default-text-scale": lambda: self._sampling(aid=False, text_scale=TEXT_SCALE),
            "aid-dual": lambda: self._sampling(aid=True, text_scale=TEXT_SCALE),
            "aid-interval": lambda: self._sampling(aid=True, text_scale=TEXT_SCALE,
                                                   interval=self.config.guidance_interval),
            "svd-cfg-attention": lambda: self._sampling(aid=False, text_scale=0.0,
                                                        shortcut=False),
            "aid-dual-attention": lambda: self._sampling(aid=True, text_scale=TEXT_SCALE,
                                                         shortcut=False),
            "unet-base": lambda: self._unet_call("base"),
            "unet-adapters": lambda: self._unet_call("adapters"),
            "unet-aid": lambda: self._unet_call("aid"),
            "dqformer": self._dqformer,
            "unet-cfg": lambda: self._cfg_unet_call(self.components.unet),
            "unet-cfg-attention": lambda: self._cfg_unet_call(self.components.unet,
                                                              shortcut=False),
            "unet-cfg-channels-last": lambda: self._cfg_unet_call(self._channels_last_unet),
            "unet-cfg-compiled": lambda: self._cfg_unet_call(self._compiled_unet),
        }
        if name.startswith("decode-"):
            return self._decode(int(name.removeprefix("decode-")))
        if name not in factories:
            raise ValueError(f"unknown sampling workload {name!r}; known: {sorted(factories)} "
                             "and decode-N")
        return factories[name]()

    def ours_runner(self, check_every_step: bool = True) -> Callable[[Callable], object]:
        """``run(on_step)``: one clip through ``AIDPipeline.predict`` (AID off, SVD's linear
        frame guidance); ``check_every_step=False`` drops the per-step finite check (on a
        GPU a reduction kernel per step, read once at the end), keeping the final one."""
        pipeline = self.plain_pipeline
        options = self.options(frame_scale_first=MIN_GUIDANCE, frame_scale=MAX_GUIDANCE,
                               text_scale=0.0)
        image = self.image

        def run(on_step: Callable[[], None]) -> object:
            patch = (contextlib.nullcontext() if check_every_step else
                     mock.patch.object(FiniteCheck, "check_step",
                                       lambda self, denoised, step: None))
            with patch:
                return pipeline.predict([image], "", options=options,
                                        callback=lambda info: on_step())

        return run

    def diffusers_runner(self) -> Callable[[Callable], object]:
        """``run(on_step)``: one clip through diffusers' pipeline, same settings."""
        pipeline = self.diffusers_pipeline
        config, image, seed = self.config, self.image, self.settings.seed

        def run(on_step: Callable[[], None]) -> object:
            def on_step_end(pipe, step, timestep, tensors):
                on_step()
                return {}

            return pipeline(
                image, height=config.height, width=config.width, num_frames=config.frames,
                num_inference_steps=config.steps, min_guidance_scale=MIN_GUIDANCE,
                max_guidance_scale=MAX_GUIDANCE, fps=FPS, motion_bucket_id=MOTION_BUCKET_ID,
                noise_aug_strength=COND_AUG, decode_chunk_size=config.decode_chunk,
                generator=torch.Generator().manual_seed(seed), output_type="pt",
                callback_on_step_end=on_step_end,
            )

        return run

    def _clip(self, runner: Callable[[Callable], object]) -> Workload:
        device = self.device

        def run() -> dict[str, float]:
            clock = StepClock(device)
            clip = timed(device, lambda: runner(clock.mark))
            return {"clip_s": clip, "step_s": _median(clock.intervals())}

        return run

    def _sampling(self, aid: bool, text_scale: float,
                  interval: tuple[float, float] | None = None,
                  shortcut: bool = True) -> Workload:
        """``sample_latents`` only (the stage between encode_conditions and decode);
        ``shortcut=False`` runs the one-token cross-attentions as diffusers does."""
        pipeline = self.aid_pipeline if aid else self.plain_pipeline
        unet = pipeline.denoiser.unet
        conditions = self.aid_conditions if aid else self.plain_conditions
        options = self.options(frame_scale=FRAME_SCALE, text_scale=text_scale,
                               guidance_interval=interval)
        device, seed = self.device, self.settings.seed
        sigmas = karras_sigmas(self.config.steps)[:-1].tolist()
        low, high = interval if interval is not None else (0.0, float("inf"))
        guided = [low <= sigma <= high for sigma in sigmas]

        def run() -> dict[str, float]:
            clock = StepClock(device)

            switch = (contextlib.nullcontext() if shortcut else
                      single_token_shortcut_disabled(unet))
            with switch:
                clip = timed(device, lambda: pipeline.sample_latents(
                    conditions, options, [seed], callback=lambda info: clock.mark()))
            intervals = clock.intervals()
            values = {"clip_s": clip, "step_s": _median(intervals)}
            if interval is not None:
                # Interval j runs step j + 1's denoiser call (marks follow each call).
                values["guided_step_s"] = _median(
                    [t for j, t in enumerate(intervals) if guided[j + 1]])
                values["unguided_step_s"] = _median(
                    [t for j, t in enumerate(intervals) if not guided[j + 1]])
            return values

        return run

    def _unet_inputs(self, batch: int) -> dict[str, Tensor]:
        config, dtype, device = self.config, self.settings.dtype, self.device
        generator = self._generator(4)
        shape = (batch, config.frames, 8, *config.latent_size)
        width = config.unet["cross_attention_dim"]
        return {
            "sample": torch.randn(shape, generator=generator).to(device, dtype),
            "timestep": torch.full((batch,), 0.25 * float(np.log(10.0)), device=device),
            "encoder_hidden_states": torch.randn(batch, 1, width, generator=generator).to(
                device, dtype),
            "added_time_ids": torch.tensor([[FPS - 1.0, MOTION_BUCKET_ID, COND_AUG]] * batch,
                                           device=device),
        }

    def _unet_call(self, variant: str) -> Workload:
        """One UNet evaluation at dual CFG's batch (3 branches): the plain SVD UNet
        (``base``), AID's with MCondition off (``adapters``: adapters only), or AID's with
        MCondition (``aid``)."""
        inputs = self._unet_inputs(3)
        device = self.device
        if variant == "base":
            unet, extra = self.components.unet, {}
        else:
            full, null = self.aid_conditions.full_mcondition, self.aid_conditions.null_mcondition
            mcondition = torch.cat([null, null, full]) if variant != "adapters" else None
            unet, extra = self.aid_pipeline.denoiser.unet, {"mcondition": mcondition}

        def run() -> dict[str, float]:
            with torch.no_grad():
                seconds_taken = timed(device, lambda: unet(**inputs, return_dict=False, **extra))
            return {"call_s": seconds_taken}

        return run

    def _cfg_unet_call(self, unet, shortcut: bool = True) -> Workload:
        """One UNet evaluation at plain CFG's batch (2 branches); ``shortcut=False`` runs
        the one-token cross-attentions as diffusers does."""
        inputs, device = self._unet_inputs(2), self.device

        def run() -> dict[str, float]:
            switch = (contextlib.nullcontext() if shortcut else
                      single_token_shortcut_disabled(unet))
            with torch.no_grad(), switch:
                return {"call_s": timed(device, lambda: unet(**inputs, return_dict=False))}

        return run

    @cached_property
    def _channels_last_unet(self):
        """A copy whose convolution weights are channels-last (2-D) / channels-last-3d
        (the temporal 3-D convolutions); ``Module.to(memory_format=)`` refuses a model that
        has both."""
        unet = copy.deepcopy(self.components.unet)
        formats = {torch.nn.Conv2d: torch.channels_last, torch.nn.Conv3d: torch.channels_last_3d}
        for module in unet.modules():
            memory_format = formats.get(type(module))
            if memory_format is not None:
                module.weight.data = module.weight.data.contiguous(memory_format=memory_format)
        return unet

    @cached_property
    def _compiled_unet(self):
        return torch.compile(self.components.unet)

    def _dqformer(self) -> Workload:
        self.image_tokens  # noqa: B018 - e_v is CLIP's work, built before timing
        device = self.device

        def run() -> dict[str, float]:
            return {"clip_s": timed(device, self.build_mconditions)}

        return run

    def _decode(self, chunk: int) -> Workload:
        config, device = self.config, self.device
        vae = self.components.vae
        shape = (1, config.frames, 4, *config.latent_size)
        latents = torch.randn(shape, generator=self._generator(5)).to(device)

        def run() -> dict[str, float]:
            return {"decode_s": timed(device, lambda: decode_latents(vae, latents, chunk))}

        return run


def _median(values: list[float]) -> float:
    return Stats(values).median if values else float("nan")


def decode_chunks(frames: int) -> list[int]:
    """Chunk sizes for the decode table: 1, 2, 4, … and T itself."""
    chunks = [c for c in (1, 2, 4, 8, 16) if c < frames]
    return [*chunks, frames]


def guided_steps(steps: int, interval: tuple[float, float]) -> int:
    """Steps whose σ lies in the guidance interval (the rest run 1 branch)."""
    low, high = interval
    return sum(1 for sigma in karras_sigmas(steps)[:-1].tolist() if low <= sigma <= high)


def unet_flops(setup: SamplingSetup, batch: int) -> float:
    """FLOPs of one UNet call at ``batch`` (matmuls, convolutions, attention), counted by
    torch's FlopCounterMode on one real call."""
    from torch.utils.flop_counter import FlopCounterMode

    inputs = setup._unet_inputs(batch)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        setup.components.unet(**inputs, return_dict=False)
    return float(counter.get_total_flops())


def count_host_syncs(device: torch.device, run: Callable[[], object]) -> int | None:
    """How many synchronising CUDA calls ``run()`` makes (torch's sync debug mode reports
    each as a warning); None on a CPU, where nothing waits for a device."""
    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(warning.message) for warning in caught)


def gpu_peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in GPU_PEAK_BF16_TFLOPS.items():  # the PCIe and NVL H100s before "H100"
        if key in name:
            return value
    return None


# --- the command ---------------------------------------------------------------------------


def _memory(setup: SamplingSetup, settings: RunSettings, names: list[str],
            log: Callable[[str], None]) -> dict[str, MemoryReading]:
    """Peak memory of each workload's run (see ``lab.perf.measure``)."""
    readings: dict[str, MemoryReading] = {}
    if settings.memory == "off":
        return readings
    for name in names:
        log(f"  memory {name} ({settings.memory if settings.device.type == 'cpu' else 'cuda'})")
        if settings.device.type == "cpu" and settings.memory == "process":
            readings[name] = memory_in_child(["sampling", name, *settings.child_arguments()])
        else:
            workload = setup.workload(name)
            readings[name] = measure_memory(settings.device, workload)
    return readings


def _memory_cells(readings: dict[str, MemoryReading], name: str) -> list[str]:
    reading = readings.get(name)
    if reading is None:
        return ["—", "—"]
    return [mebibytes(reading.increase), mebibytes(reading.peak)]


TABLES = (1, 2, 3, 4, 5)


def run_sampling(settings: RunSettings, channels_last: bool = False, compile_unet: bool = False,
                 tables: tuple[int, ...] = TABLES, log: Callable[[str], None] = print) -> str:
    """Runs the chosen sampling tables (5 only with ``channels_last`` or ``compile_unet``);
    returns them as Markdown text."""
    config, device = settings.config, settings.device
    setup = SamplingSetup(settings)
    repeats = settings.repeats
    memory_kind = ("CUDA max_memory_allocated" if device.type == "cuda" else
                   {"process": "RSS, fresh process per workload",
                    "inline": "RSS in this process (lower bound)",
                    "off": "not measured"}[settings.memory])
    out = [
        f"machine: {machine_description(device)}",
        f"config {config.describe()}; {settings.dtype_name} on {device}; UNet "
        f"{parameter_count(setup.components.unet) / 1e6:.1f} M parameters; "
        f"{repeats} repeats after 1 warm-up, interleaved; memory: {memory_kind}",
    ]
    out += [f"note: {note}" for note in config.notes]

    if 1 in tables:
        out += _ours_vs_diffusers(setup, settings, log)
    if 2 in tables:
        out += _guidance_cost(setup, settings, log)
    if 3 in tables:
        out += _aid_modules(setup, settings, log)
    if 4 in tables:
        out += _decode_chunks(setup, settings, log)
    if 5 in tables and (channels_last or compile_unet):
        out += _unet_variants(setup, settings, channels_last, compile_unet, log)
    if 6 in tables:
        out += _inference_shortcuts(setup, settings, log)
    return "\n\n".join(out)


def _ours_vs_diffusers(setup: SamplingSetup, settings: RunSettings,
                       log: Callable[[str], None]) -> list[str]:
    config, device, repeats = settings.config, settings.device, settings.repeats
    out: list[str] = []
    log("1. ours vs diffusers' StableVideoDiffusionPipeline")
    names = ["ours", "diffusers"]
    # On a GPU the per-step finite check is a reduction kernel per step, read once at the
    # end (it used to be a host-device synchronisation a step); on a CPU it is one pass
    # over the latents.
    names += ["ours-deferred-check"] if device.type == "cuda" else []
    times = interleave({n: setup.workload(n) for n in names}, repeats, log=log)
    memory = _memory(setup, settings, ["ours", "diffusers"], log)
    theirs = times["diffusers"]
    labels = {
        "ours": "ours: AIDPipeline without AID",
        "diffusers": "diffusers StableVideoDiffusionPipeline",
        "ours-deferred-check": "ours, per-step finite check off",
    }
    syncs = {
        "ours": count_host_syncs(device, lambda: setup.ours_runner()(lambda: None)),
        "diffusers": count_host_syncs(device, lambda: setup.diffusers_runner()(lambda: None)),
        "ours-deferred-check": count_host_syncs(
            device, lambda: setup.ours_runner(check_every_step=False)(lambda: None)),
    }
    rows = []
    for name in names:
        stats = times[name]
        memory_ratio = "—"
        if name in memory and "diffusers" in memory:
            memory_ratio = ratio(memory[name].increase, memory["diffusers"].increase)
        rows.append([labels[name], seconds(stats["step_s"]), seconds(stats["clip_s"]),
                     *_memory_cells(memory, name),
                     ratio(stats["step_s"].median, theirs["step_s"].median),
                     ratio(stats["clip_s"].median, theirs["clip_s"].median), memory_ratio,
                     "—" if syncs[name] is None else str(syncs[name])])
    flops = unet_flops(setup, 2)
    ours_step = times["ours"]["step_s"].median
    achieved = flops / ours_step / 1e12
    peak = gpu_peak_tflops(device)
    out.append(table(
        f"1. Vanilla SVD, ours vs diffusers ({config.steps} steps, {config.frames} frames, "
        f"{config.height}x{config.width}, linear guidance {MIN_GUIDANCE}→{MAX_GUIDANCE}, "
        f"decode chunk {config.decode_chunk})",
        ["pipeline", "s/step", "s/clip", "peak mem. increase", "peak mem.", "step ×",
         "clip ×", "mem. ×", "GPU syncs/clip"], rows))
    out.append(
        f"UNet call at CFG batch 2: {flops / 1e12:.3f} TFLOP; ours achieves "
        f"{achieved:.3f} TFLOP/s per step (UNet FLOPs / step time)"
        + (f", {achieved / peak:.1%} of the GPU's {peak:.0f} TFLOP/s bf16 peak" if peak else "")
    )

    return out


def _guidance_cost(setup: SamplingSetup, settings: RunSettings,
                   log: Callable[[str], None]) -> list[str]:
    config, repeats = settings.config, settings.repeats
    out: list[str] = []
    log("2. AID dual CFG vs SVD CFG (sampling stage)")
    names = ["svd-cfg", "aid-dual", "aid-interval", "svd-default-text-scale"]
    times = interleave({n: setup.workload(n) for n in names}, repeats, log=log)
    # The interval's peak is a 3-branch step's, as dual CFG's: not measured twice.
    memory = _memory(setup, settings, names[:2], log)
    low, high = config.guidance_interval
    inside = guided_steps(config.steps, config.guidance_interval)
    evaluations = {
        "svd-cfg": 2 * config.steps,
        "aid-dual": 3 * config.steps,
        "aid-interval": 3 * inside + (config.steps - inside),
        "svd-default-text-scale": 2 * config.steps,  # AIDPipeline drops the text branch
    }
    labels = {
        "svd-cfg": "SVD CFG, 2 branches (AID off, s_t = 0)",
        "aid-dual": "AID dual CFG, 3 branches batched",
        "aid-interval": f"AID dual CFG, interval σ∈[{low:g}, {high:g}]",
        "svd-default-text-scale": "AID off with default s_t = 7.5 (text branch skipped)",
    }
    goals = {"aid-dual": "≤ 1.55×", "aid-interval": "≤ 1.25×"}
    reference = times["svd-cfg"]["clip_s"].median
    rows = []
    for name in names:
        stats = times[name]["clip_s"]
        rows.append([labels[name], str(evaluations[name]), seconds(stats),
                     f"{stats.median / config.steps * 1e3:.1f} ms",
                     *_memory_cells(memory, name), ratio(stats.median, reference),
                     goals.get(name, "—")])
    out.append(table(
        f"2. Guidance cost, sampling stage ({config.steps} steps; the interval guides "
        f"{inside} of them)",
        ["sampling", "UNet items/clip", "s/clip", "mean per step", "peak mem. increase",
         "peak mem.", "× SVD CFG", "goal"], rows))
    at_25 = guided_steps(25, config.guidance_interval)
    guided_step = times["aid-interval"]["guided_step_s"].median
    unguided_step = times["aid-interval"]["unguided_step_s"].median
    svd_step = times["svd-cfg"]["step_s"].median
    projected = (at_25 * guided_step + (25 - at_25) * unguided_step) / (25 * svd_step)
    out.append(
        f"At 25 steps the interval guides {at_25} of 25 steps. Measured medians per step: "
        f"3 branches {guided_step:.3g} s, 1 branch {unguided_step:.3g} s, SVD's 2 branches "
        f"{svd_step:.3g} s; projected 25-step cost ({at_25}·3-branch + {25 - at_25}·1-branch)"
        f" / 25·SVD = {projected:.2f}× SVD CFG (goal ≤ 1.25×); dual CFG without the interval "
        f"{times['aid-dual']['step_s'].median / svd_step:.2f}× per step."
    )

    return out


def _aid_modules(setup: SamplingSetup, settings: RunSettings,
                 log: Callable[[str], None]) -> list[str]:
    config, repeats = settings.config, settings.repeats
    out: list[str] = []
    log("3. adapters, MCondition attention and DQFormer")
    names = ["unet-base", "unet-adapters", "unet-aid", "dqformer"]
    parts = interleave({n: setup.workload(n) for n in names}, repeats, log=log)
    base = parts["unet-base"]["call_s"].median
    adapters = parts["unet-adapters"]["call_s"].median
    full = parts["unet-aid"]["call_s"].median
    dqformer = parts["dqformer"]["clip_s"].median
    aid_clip = config.steps * full  # a clip's sampling: one 3-branch call a step
    rows = [
        ["SVD UNet (AID detached)", seconds(parts["unet-base"]["call_s"]), "—"],
        ["AID UNet, MCondition off (adapters only)", seconds(parts["unet-adapters"]["call_s"]),
         f"adapters {(adapters - base) / adapters:+.1%} of the call"],
        ["AID UNet (adapters + MCondition attention)", seconds(parts["unet-aid"]["call_s"]),
         f"AID modules {(full - base) / full:+.1%} of the call "
         f"(MCondition {(full - adapters) / full:+.1%}); goal ≤ 3 %"],
        ["DQFormer, full + null MCondition (once per clip)", seconds(parts["dqformer"]["clip_s"]),
         f"{dqformer / aid_clip:.2%} of a {config.steps}-step clip's AID UNet calls "
         f"({aid_clip:.2f} s)"],
    ]
    out.append(table("3. AID's own modules: one UNet call at dual CFG's batch 3, and the "
                     "DQFormer per clip", ["call", "time", "share"], rows))

    return out


def _decode_chunks(setup: SamplingSetup, settings: RunSettings,
                   log: Callable[[str], None]) -> list[str]:
    config, repeats = settings.config, settings.repeats
    out: list[str] = []
    log("4. VAE decode chunk size")
    chunks = decode_chunks(config.frames)
    names = [f"decode-{c}" for c in chunks]
    times = interleave({n: setup.workload(n) for n in names}, repeats, log=log)
    memory = _memory(setup, settings, names, log)
    rows = [[str(c), seconds(times[f"decode-{c}"]["decode_s"]),
             *_memory_cells(memory, f"decode-{c}")] for c in chunks]
    out.append(table(f"4. VAE decode of {config.frames} frames "
                     f"({config.height}x{config.width}) by chunk size",
                     ["chunk (frames)", "time", "peak mem. increase", "peak mem."], rows))

    return out


def _unet_variants(setup: SamplingSetup, settings: RunSettings, channels_last: bool,
                   compile_unet: bool, log: Callable[[str], None]) -> list[str]:
    device = settings.device
    log("5. UNet call variants")
    names = ["unet-cfg"]
    names += ["unet-cfg-channels-last"] if channels_last else []
    names += ["unet-cfg-compiled"] if compile_unet else []
    workloads = {n: setup.workload(n) for n in names}
    # The first call is the warm-up, timed on its own: a compiled UNet compiles in it.
    first_call = {name: timed(device, workload) for name, workload in workloads.items()}
    times = interleave(workloads, settings.repeats, warmup=0, log=log)
    reference = times["unet-cfg"]["call_s"].median
    labels = {"unet-cfg": "default (contiguous)", "unet-cfg-channels-last": "channels-last",
              "unet-cfg-compiled": "torch.compile (default mode)"}
    rows = [[labels[n], seconds(times[n]["call_s"]),
             ratio(times[n]["call_s"].median, reference), f"{first_call[n]:.1f} s"]
            for n in names]
    return [table("5. UNet call at CFG batch 2, variants",
                  ["UNet", "time", "× default", "first call"], rows)]


def _inference_shortcuts(setup: SamplingSetup, settings: RunSettings,
                         log: Callable[[str], None]) -> list[str]:
    """Sampling with the one-token cross-attention shortcut on and off, interleaved in one
    process (the ratios between separate runs move by more than this effect on a shared
    CPU)."""
    config = settings.config
    log("6. inference shortcut on and off")
    names = ["unet-cfg", "unet-cfg-attention", "svd-cfg", "svd-cfg-attention", "aid-dual",
             "aid-dual-attention"]
    times = interleave({n: setup.workload(n) for n in names}, settings.repeats, log=log)
    clip = {name: times[name]["clip_s"].median for name in names if "clip_s" in times[name]}
    calls = {name: times[name]["call_s"] for name in names if "call_s" in times[name]}
    rows = [
        ["SVD UNet call, batch 2", "on", seconds(calls["unet-cfg"]),
         ratio(calls["unet-cfg"].median, calls["unet-cfg-attention"].median)],
        ["SVD UNet call, batch 2", "off", seconds(calls["unet-cfg-attention"]), "1.00×"],
        ["SVD CFG", "on", seconds(times["svd-cfg"]["clip_s"]),
         ratio(clip["svd-cfg"], clip["svd-cfg-attention"])],
        ["SVD CFG", "off", seconds(times["svd-cfg-attention"]["clip_s"]), "1.00×"],
        ["AID dual CFG", "on", seconds(times["aid-dual"]["clip_s"]),
         ratio(clip["aid-dual"], clip["aid-dual-attention"])],
        ["AID dual CFG", "off", seconds(times["aid-dual-attention"]["clip_s"]), "1.00×"],
    ]
    return [
        table(f"6. Inference shortcut, sampling stage ({config.steps} steps), on and off in "
              "one process", ["sampling", "one-token shortcut", "time", "× off"], rows),
        f"Dual CFG × SVD CFG: {clip['aid-dual'] / clip['svd-cfg']:.2f}× with the shortcut, "
        f"{clip['aid-dual-attention'] / clip['svd-cfg-attention']:.2f}× without.",
    ]
