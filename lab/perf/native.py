"""``python -m lab.perf.native``: AID on ComfyUI's own SVD (Apply AID) against the library
(docs/performance.md, "Native ComfyUI path: memory and speed").

Run with the Python of a ComfyUI host, ``COMFYUI_PATH`` set to its folder; ComfyUI runs on
the CPU. Two tables:

1. **Memory**: an original-layout SVD checkpoint with random weights (a bench config's
   shapes) loaded by ComfyUI as a MODEL, then AID two ways. Native: Apply AID (a clone with
   weight patches, hooks and the AID modules as an additional model). Old: what the old
   nodes did beside it, a second SVD through the library (``load_svd`` + ``attach_aid``).
   Counted: the bytes of the distinct storages (``untyped_storage().data_ptr()``) of every
   parameter, buffer and patch tensor, part by part, each storage once.
2. **Speed**: one sampling step of AID's dual CFG, ComfyUI's sampling of the Apply-AID'd
   MODEL (AID Conditioning's three conds, core DualCFGGuider, KSamplerSelect euler,
   KarrasScheduler, SamplerCustomAdvanced) against the library's ``AIDPipeline`` (DualCFG
   + VideoDenoiser), same weights, T, size, steps and scales, alternated in one process.

The extension's nodes are loaded as ComfyUI loads a custom node folder.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import importlib
import importlib.util
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType

import torch

from lab.perf.measure import MIB, Stats, interleave, seconds, table
from lab.perf.models import CONFIGS, BenchConfig, seeded
from lab.perf.setup import machine_description

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTENSION = "custom_nodes.comfyui-aid"  # the package name ComfyUI's loader gives the folder
UNET_KEYS, VAE_KEYS = "model.diffusion_model.", "first_stage_model."
CLIP_KEYS = "conditioner.embedders.0.open_clip.model.visual."
INSTRUCTION = "move the red cup to the left"
FPS, MOTION_BUCKET_ID, AUGMENTATION = 7, 127, 0.02


# --- ComfyUI in this process ------------------------------------------------------------


def import_comfyui() -> ModuleType:
    """ComfyUI's ``nodes`` with its built-in extra nodes, on the CPU (``$COMFYUI_PATH``)."""
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        raise SystemExit("set COMFYUI_PATH to a ComfyUI folder and run this with a Python that "
                         "has ComfyUI's requirements (e.g. the venv of `make comfyui-host`)")
    path = os.path.abspath(path)
    if sys.path[0] != path:
        sys.path.insert(0, path)  # ComfyUI's nodes.py before this repository's nodes/
    loaded = sys.modules.get("nodes")
    if loaded is not None and not (getattr(loaded, "__file__", "") or "").startswith(path):
        del sys.modules["nodes"]
    from comfy.cli_args import args

    args.cpu = True
    comfy_nodes = importlib.import_module("nodes")
    if "DualCFGGuider" not in comfy_nodes.NODE_CLASS_MAPPINGS:
        asyncio.run(comfy_nodes.init_builtin_extra_nodes())
    return comfy_nodes


def load_extension() -> ModuleType:
    """This repository as ComfyUI imports a custom node folder."""
    if EXTENSION in sys.modules:
        return sys.modules[EXTENSION]
    spec = importlib.util.spec_from_file_location(
        EXTENSION, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[EXTENSION] = module
    spec.loader.exec_module(module)
    return module


def extension_module(name: str) -> ModuleType:
    return sys.modules[f"{load_extension().__name__}.nodes.{name}"]


# --- storage counting -------------------------------------------------------------------


class StorageTally:
    """Bytes of distinct tensor storages; each storage counts once, where it is first seen."""

    def __init__(self):
        self.seen: set[tuple[str, int]] = set()

    def add(self, tensors: Iterable[torch.Tensor]) -> int:
        """Bytes of the storages of ``tensors`` not seen before."""
        new = 0
        for tensor in tensors:
            storage = tensor.untyped_storage()
            key = (str(storage.device), storage.data_ptr())
            if key not in self.seen:
                self.seen.add(key)
                new += storage.nbytes()
        return new


def module_tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]


def nested_tensors(value) -> list[torch.Tensor]:
    """The tensors inside ComfyUI's patch lists (tuples, lists, dicts, namedtuples)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in nested_tensors(item)]
    return []


# --- an original-layout checkpoint with random weights -----------------------------------


def diffusers_unet_config(config: BenchConfig) -> dict:
    """The full diffusers config of the bench UNet (built on the meta device: no memory)."""
    from diffusers import UNetSpatioTemporalConditionModel

    with torch.device("meta"):
        return dict(UNetSpatioTemporalConditionModel(**config.unet).config)


def head_channels(config: BenchConfig) -> int:
    widths, heads = config.unet["block_out_channels"], config.unet["num_attention_heads"]
    return widths[0] // heads[0]


def vae_ddconfig(config: BenchConfig) -> dict:
    """The original VAE's ``ddconfig`` at the bench VAE's widths (SVD's: 128 × [1, 2, 4, 4])."""
    widths = list(config.vae["block_out_channels"])
    return {"double_z": True, "z_channels": config.vae["latent_channels"], "resolution": 256,
            "in_channels": 3, "out_ch": 3, "ch": widths[0],
            "ch_mult": [width // widths[0] for width in widths],
            "num_res_blocks": config.vae["layers_per_block"], "attn_resolutions": [],
            "dropout": 0.0}


def comfy_model_config(config: BenchConfig, weight_dtype: torch.dtype, load_device):
    """ComfyUI's ``SVD_img2vid`` model config for the bench UNet, as checkpoint detection makes
    it for SVD (which assumes 64-channel heads; set here from the config)."""
    import comfy.model_management as mm
    import comfy.supported_models

    demo_model = extension_module("demo_model")
    unet_config = demo_model.comfy_unet_config(
        demo_model.unet_layout(diffusers_unet_config(config)))
    model_config = comfy.supported_models.SVD_img2vid(unet_config)
    model_config.unet_config.update(unet_config)
    manual_cast = mm.unet_manual_cast(weight_dtype, load_device,
                                      model_config.supported_inference_dtypes)
    model_config.set_inference_dtype(weight_dtype, manual_cast)
    return model_config


def original_shapes(config: BenchConfig) -> dict[str, tuple[int, ...]]:
    """{original single-file key: shape} of the bench SVD: the UNet and VAE as ComfyUI
    builds them (on the meta device), the OpenCLIP vision tower from its config."""
    from comfy.ldm.models.autoencoder import AutoencodingEngine

    model_config = comfy_model_config(config, torch.float32, torch.device("cpu"))
    unet = model_config.get_model({}, device=torch.device("meta")).diffusion_model
    ddconfig = vae_ddconfig(config)
    with torch.device("meta"):
        vae = AutoencodingEngine(
            regularizer_config={
                "target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
            encoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Encoder",
                            "params": ddconfig},
            decoder_config={"target": "comfy.ldm.modules.temporal_ae.VideoDecoder",
                            "params": {**ddconfig, "video_kernel_size": [3, 1, 1],
                                       "alpha": 0.0}})
    shapes = {UNET_KEYS + k: tuple(v.shape) for k, v in unet.state_dict().items()}
    shapes |= {VAE_KEYS + k: tuple(v.shape) for k, v in vae.state_dict().items()}
    return shapes | {CLIP_KEYS + k: v for k, v in openclip_vision_shapes(config).items()}


def openclip_vision_shapes(config: BenchConfig) -> dict[str, tuple[int, ...]]:
    """OpenCLIP's ``visual.*`` tensors for the bench image encoder's config."""
    clip = config.image_encoder
    width, patch = clip["hidden_size"], clip["patch_size"]
    tokens = (clip["image_size"] // patch) ** 2 + 1
    shapes = {"class_embedding": (width,), "positional_embedding": (tokens, width),
              "conv1.weight": (width, 3, patch, patch), "proj": (width, clip["projection_dim"])}
    for norm in ("ln_pre", "ln_post"):
        shapes |= {f"{norm}.weight": (width,), f"{norm}.bias": (width,)}
    hidden = clip["intermediate_size"]
    for i in range(clip["num_hidden_layers"]):
        block = f"transformer.resblocks.{i}."
        shapes |= {block + k: v for k, v in {
            "ln_1.weight": (width,), "ln_1.bias": (width,), "ln_2.weight": (width,),
            "ln_2.bias": (width,), "attn.in_proj_weight": (3 * width, width),
            "attn.in_proj_bias": (3 * width,), "attn.out_proj.weight": (width, width),
            "attn.out_proj.bias": (width,), "mlp.c_fc.weight": (hidden, width),
            "mlp.c_fc.bias": (hidden,), "mlp.c_proj.weight": (width, hidden),
            "mlp.c_proj.bias": (width,)}.items()}
    return shapes


def write_checkpoint(config: BenchConfig, path: Path, dtype: torch.dtype, seed: int) -> int:
    """A single-file SVD checkpoint (original key layout) with random weights; its bytes."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    state = {key: torch.empty(shape, dtype=dtype).normal_(0.0, 0.02, generator=generator)
             for key, shape in original_shapes(config).items()}
    save_file(state, str(path))
    return sum(t.numel() * t.element_size() for t in state.values())


# --- 1. memory ----------------------------------------------------------------------------


def core_loaded_model(config: BenchConfig, path: Path, weight_dtype: torch.dtype):
    """ComfyUI's MODEL from the checkpoint file, as ``load_state_dict_guess_config`` (what
    Image Only Checkpoint Loader calls) builds it: ``get_model`` + ``load_model_weights`` in
    a ``ModelPatcher``, ``weight_dtype`` as ``--fp16-unet`` would choose."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.utils

    state = comfy.utils.load_torch_file(str(path), safe_load=True)
    load_device = mm.get_torch_device()
    model_config = comfy_model_config(config, weight_dtype, load_device)
    model = model_config.get_model(state, UNET_KEYS,
                                   device=mm.unet_inital_load_device(0, weight_dtype))
    model.load_model_weights(state, UNET_KEYS)
    del state
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device,
                                            offload_device=mm.unet_offload_device())


def run_memory(config: BenchConfig, work: Path, dtype: torch.dtype, seed: int,
               log: Callable[[str], None]) -> str:
    """The memory table: storage bytes of each part, native Apply AID against the old path."""
    import comfy.model_management as mm
    import folder_paths

    from aid_model.aid import attach_aid, save_aid_weights
    from aid_model.svd import load_svd

    checkpoint = work / f"{config.name}.safetensors"
    log(f"writing {checkpoint.name}")
    file_bytes = write_checkpoint(config, checkpoint, dtype, seed)
    log("ComfyUI loads the MODEL")
    model = core_loaded_model(config, checkpoint, dtype)

    # Old path: a second SVD through the library, AID attached to it (the old Load AID
    # Model node); its AID weights are the file Apply AID reads below.
    log("old path: load_svd + attach_aid")
    old, base_bytes = StorageTally(), {}
    base_bytes["comfy"] = old.add(module_tensors(model.model))
    components = load_svd(checkpoint, dtype=dtype, unet_head_channels=head_channels(config),
                          clip_num_heads=config.image_encoder["num_attention_heads"])
    base_bytes["library_unet"] = old.add(module_tensors(components.unet))
    with seeded(seed + 1, "cpu"):
        aid_model = attach_aid(components, config.aid)
    aid_folder = work / "aid"
    aid_folder.mkdir(exist_ok=True)
    aid_name = f"memory-{config.name}.safetensors"  # the folder list is ComfyUI-wide
    save_aid_weights(aid_model, aid_folder / aid_name)
    old_aid_dtype = next(aid_model.parameters()).dtype
    old_rows = {
        "aid_modules": old.add(module_tensors(aid_model)),
        "library_vae_clip": old.add([*module_tensors(components.vae),
                                     *module_tensors(components.image_encoder)]),
    }
    del components, aid_model
    gc.collect()

    log("native path: Apply AID")
    folder_paths.add_model_folder_path("aid", str(aid_folder))
    native = StorageTally()
    comfy_bytes = native.add(module_tensors(model.model))
    clone = load_extension().NODE_CLASS_MAPPINGS["AIDApply"]().apply(model, aid_name, 1.0)[0]
    attachment = clone.get_attachment("aid")
    native_rows = {
        "clone_model": native.add(module_tensors(clone.model)),
        "patches": native.add(nested_tensors(clone.patches)),
        "aid_modules": native.add(module_tensors(attachment.parts)),
    }
    native_aid_dtype = next(attachment.parts.parameters()).dtype  # the UNet's compute dtype
    log("native path: ComfyUI loads the clone as sampling does")
    mm.load_models_gpu([clone, *clone.get_additional_models()])
    native_rows["patched"] = native.add([*module_tensors(clone.model),
                                         *nested_tensors(list(clone.backup.values()))])
    mm.unload_all_models()
    del clone, attachment, model
    gc.collect()
    checkpoint.unlink()

    native_total = comfy_bytes + sum(v for k, v in native_rows.items() if k != "patched")
    old_total = sum(base_bytes.values()) + sum(old_rows.values())

    def short(value: torch.dtype) -> str:
        return str(value).removeprefix("torch.")

    def mib(value: int) -> str:
        return f"{value / MIB:,.1f} MiB" if value else "0"

    def copies(*unet_bytes: int) -> str:  # storage holding UNet weights / one UNet
        return f"{sum(unet_bytes) / comfy_bytes:.2f}"

    rows = [
        ["ComfyUI MODEL (SVD_img2vid UNet from the checkpoint)", mib(comfy_bytes),
         mib(base_bytes["comfy"])],
        ["Apply AID's clone (shares the MODEL's UNet)", mib(native_rows["clone_model"]), "—"],
        ["trained cross-attention: weight patches (trained − base, float32)",
         mib(native_rows["patches"]), "(in the library UNet)"],
        ["AID modules (adapters, MCondition branches, DQFormer)",
         f"{mib(native_rows['aid_modules'])} ({short(native_aid_dtype)})",
         f"{mib(old_rows['aid_modules'])} ({short(old_aid_dtype)})"],
        ["second UNet (library, load_svd)", "—", mib(base_bytes["library_unet"])],
        ["second VAE + CLIP image encoder (library, load_svd)", "—",
         mib(old_rows["library_vae_clip"])],
        ["**total**", f"**{mib(native_total)}**", f"**{mib(old_total)}**"],
        ["UNet copies (storage holding UNet weights / one UNet)",
         copies(comfy_bytes, native_rows["clone_model"]),
         copies(base_bytes["comfy"], base_bytes["library_unet"])],
        ["while sampling: patched weights (the originals kept as ComfyUI's backup)",
         f"+{mib(native_rows['patched'])} "
         f"({copies(comfy_bytes, native_rows['clone_model'], native_rows['patched'])} UNets)",
         "—"],
    ]
    title = (f"Memory: parameter storage, {config.name} ({short(dtype)} weights; checkpoint "
             f"{file_bytes / MIB:,.0f} MiB)")
    return table(title, ["part", "native: core MODEL + Apply AID",
                         "old: core MODEL + library load_svd + attach_aid"], rows)


# --- 2. speed -------------------------------------------------------------------------------


class StepMarks:
    """Times and batch rows at the start of each UNet call (one call a step, the three
    branches batched): the intervals between calls are whole sampling steps."""

    def __init__(self, unet: torch.nn.Module):
        self.unet = unet
        self.marks: list[float] = []
        self.rows: list[int] = []

    def __enter__(self):
        def hook(module, args, kwargs):
            self.marks.append(time.perf_counter())
            sample = args[0] if args else next(iter(kwargs.values()))
            self.rows.append(sample.shape[0] * (sample.shape[1] if sample.ndim == 5 else 1))

        self.handle = self.unet.register_forward_pre_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()

    def step_seconds(self) -> float:
        return Stats([b - a for a, b in zip(self.marks[:-1], self.marks[1:], strict=True)]).median


def save_diffusers_folders(components, folder: Path) -> None:
    """The bench SVD as the demo model's folders (svd/unet, svd/vae, svd/image_encoder)."""
    from aid_model.demo.paths import SVD_DIR

    for name in ("unet", "vae", "image_encoder"):
        getattr(components, name).save_pretrained(folder / SVD_DIR / name)


def random_text_clip(width: int, seed: int):
    """ComfyUI's SD 2.x CLIP (OpenCLIP ViT-H/14's text tower as Load CLIP makes it) at the
    bench context width, 3 layers, random weights: AID Conditioning's text encoder (it runs
    once per clip, outside the timed steps)."""
    import comfy.sd
    import comfy.text_encoders.sd2_clip

    tower = {"hidden_size": width, "intermediate_size": 4 * width,
             "num_attention_heads": max(1, width // 64), "num_hidden_layers": 3}

    class Target:
        params = {}  # noqa: RUF012 (ComfyUI copies it)
        clip = comfy.text_encoders.sd2_clip.SD2ClipModel
        tokenizer = comfy.text_encoders.sd2_clip.SD2Tokenizer

    clip = comfy.sd.CLIP(Target, model_options={"dtype": torch.float32,
                                                "clip_h_model_config": tower})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in clip.cond_stage_model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return clip


def attention_override(attention: Callable) -> Callable:
    """A ComfyUI ``optimized_attention_override``: ``attention`` for every attention call."""

    def override(func, *args, **kwargs):
        return attention(*args, **kwargs)

    return override


def run_speed(config: BenchConfig, work: Path, repeats: int, seed: int,
              log: Callable[[str], None], comfy_nodes: ModuleType) -> str:
    """The speed table: dual-CFG sampling steps, library against ComfyUI, interleaved."""
    import comfy.ldm.modules.attention
    import folder_paths

    from aid_model.aid import save_aid_weights
    from lab.perf.sampling import FRAME_SCALE, TEXT_SCALE, SamplingSetup
    from lab.perf.setup import RunSettings

    log(f"building the {config.name} models")
    settings = RunSettings(config, torch.device("cpu"), torch.float32, repeats, "off", seed,
                           torch.get_num_threads())
    setup = SamplingSetup(settings)
    library_run = setup.workload("aid-dual")  # builds the AID copy and its conditions
    library_full_attention = setup.workload("aid-dual-attention")
    library_unet = setup.aid_pipeline.denoiser.unet.base
    _, aid_model = setup.aid_parts
    folder = work / "speed"
    save_diffusers_folders(setup.components, folder)
    (folder / "aid").mkdir(parents=True, exist_ok=True)
    aid_name = f"speed-{config.name}.safetensors"
    save_aid_weights(aid_model, folder / "aid" / aid_name)
    folder_paths.add_model_folder_path("aid", str(folder / "aid"))

    demo_model, nodes = extension_module("demo_model"), load_extension().NODE_CLASS_MAPPINGS
    core = comfy_nodes.NODE_CLASS_MAPPINGS
    model = demo_model.build_model(folder, torch.float32)
    clone = nodes["AIDApply"]().apply(model, aid_name, 1.0)[0]
    vae, clip_vision = demo_model.build_vae(folder), demo_model.build_clip_vision(folder)
    clip = random_text_clip(config.unet["cross_attention_dim"], seed)
    frames = setup.reference.movedim(1, -1)  # (1, H, W, 3)
    states = "\n".join(f"state {i}" for i in range(config.aid.num_states))
    full, frame_only, neither, latent = nodes["AIDConditioning"]().encode(
        clone, clip_vision, vae, clip, frames, INSTRUCTION, config.width, config.height,
        config.frames, MOTION_BUCKET_ID, FPS, AUGMENTATION, states)
    guider = core["DualCFGGuider"]().get_guider(clone, full, frame_only, neither, TEXT_SCALE,
                                                FRAME_SCALE, "regular")[0]
    sampler = core["KSamplerSelect"]().get_sampler("euler")[0]
    sigmas = core["KarrasScheduler"]().get_sigmas(config.steps, 700.0, 0.002, 7.0)[0]
    noise = core["RandomNoise"]().get_noise(seed)[0]
    advanced = core["SamplerCustomAdvanced"]()
    native_unet = clone.model.diffusion_model
    transformer_options = clone.model_options["transformer_options"]
    attention_name = comfy.ldm.modules.attention.optimized_attention.__name__
    sdpa = attention_override(comfy.ldm.modules.attention.attention_pytorch)
    rows: dict[str, list[int]] = {}

    def library(name: str, workload: Callable[[], dict[str, float]]):
        def run() -> dict[str, float]:
            with StepMarks(library_unet) as marks:
                values = workload()
            rows[name] = marks.rows
            return {"step_s": marks.step_seconds(), "clip_s": values["clip_s"]}

        return run

    def native(name: str, override: Callable | None) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            if override is not None:
                transformer_options["optimized_attention_override"] = override
            started = time.perf_counter()
            try:
                with StepMarks(native_unet) as marks:
                    advanced.sample(noise, guider, sampler, sigmas, latent)
            finally:
                transformer_options.pop("optimized_attention_override", None)
            rows[name] = marks.rows
            return {"step_s": marks.step_seconds(), "clip_s": time.perf_counter() - started}

        return run

    workloads = {"library": library("library", library_run),
                 "library-attention": library("library-attention", library_full_attention),
                 "native": native("native", None), "native-sdpa": native("native-sdpa", sdpa)}
    log(f"timing: 1 warm-up, {repeats} repeats, alternating")
    results = interleave(workloads, repeats, log=log)
    reference = results["library"]["step_s"].median
    labels = {
        "library": "library: AIDPipeline.sample_latents (DualCFG + VideoDenoiser)",
        "library-attention": "library, one-token shortcut off (SVD's image-token "
                             "cross-attention computed in full, as ComfyUI does)",
        "native": f"native: Apply AID + SamplerCustomAdvanced, ComfyUI's CPU attention "
                  f"({attention_name})",
        "native-sdpa": "native, attention_pytorch (`--use-pytorch-cross-attention`, ComfyUI's "
                       "default on a GPU)",
    }
    table_rows = []
    for name, label in labels.items():
        calls = rows[name]
        table_rows.append([label, seconds(results[name]["step_s"]),
                            f"{results[name]['step_s'].median / reference:.3f}×",
                            seconds(results[name]["clip_s"]),
                            f"{len(calls)} × {calls[0] if calls else 0}"])
    title = (f"Speed: dual-CFG sampling step, {config.describe()}, s_f = {FRAME_SCALE}, "
             f"s_t = {TEXT_SCALE}, euler; {repeats} repeats after 1 warm-up, alternating")
    return table(title, ["sampling", "s/step (median, min–max over runs)", "× library",
                         "s/clip", "UNet calls × rows"], table_rows)


# --- command ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab.perf.native",
        description="AID on ComfyUI's own SVD (Apply AID) against the library: parameter "
                    "storage and sampling-step time. Needs COMFYUI_PATH.")
    parser.add_argument("--tables", default="memory,speed",
                        help="memory, speed or both (default: memory,speed)")
    parser.add_argument("--memory-config", choices=sorted(CONFIGS), default="svd-shape",
                        help="bench config of the memory table (default: svd-shape)")
    parser.add_argument("--memory-dtype", choices=("float16", "bfloat16", "float32"),
                        default="float16", help="weights of both paths (default: float16)")
    parser.add_argument("--speed-config", choices=sorted(CONFIGS), default="small",
                        help="bench config of the speed table (default: small)")
    parser.add_argument("--steps", type=int, default=None,
                        help="sampling steps (default: the speed config's)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs of each side after 1 warm-up (default: 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    tables = {part.strip() for part in args.tables.split(",")}
    if not tables or tables - {"memory", "speed"}:
        raise SystemExit(f"--tables takes memory, speed or both; got {args.tables!r}")
    torch.set_num_threads(args.threads)
    comfy_nodes = import_comfyui()
    import comfy.utils

    comfy.utils.set_progress_bar_enabled(False)  # the sampler's bar, not wanted in the log
    load_extension()
    command = "python -m lab.perf.native " + shlex.join(
        sys.argv[1:] if argv is None else list(argv))
    started = time.perf_counter()

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    texts = []
    with tempfile.TemporaryDirectory(prefix="aid-native-bench-") as work:
        if "memory" in tables:
            dtype = getattr(torch, args.memory_dtype)
            texts.append(run_memory(CONFIGS[args.memory_config], Path(work), dtype, args.seed,
                                    log))
        if "speed" in tables:
            config = CONFIGS[args.speed_config].with_clip(steps=args.steps)
            texts.append(run_speed(config, Path(work), args.repeats, args.seed, log,
                                   comfy_nodes))
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"$ {command}\n{date}, {time.perf_counter() - started:.0f} s; "
          f"{machine_description(torch.device('cpu'))}; load average at the end {load}\n\n"
          + "\n\n".join(texts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
