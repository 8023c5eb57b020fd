"""Loader nodes: the SVD base with AID weights, the OpenCLIP text encoder, the state VLM."""

from __future__ import annotations

from pathlib import Path

import torch

from . import comfy_services as services
from .errors import InputError, about_input
from .handles import (
    AID_MODEL,
    AID_TEXT_ENCODER,
    AID_VLM,
    AIDModelHandle,
    StatePrompterHandle,
    TextEncoderHandle,
)

CATEGORY = "AID"
DTYPES = ["auto", "fp32", "fp16", "bf16"]
DTYPE_TOOLTIP = (
    "Weights' precision. auto: ComfyUI's choice for this device (bf16 where supported, else "
    "fp16 on a GPU; fp32 on a CPU). fp16 can overflow in SVD (the sampler then stops with an "
    "error): use bf16 or fp32."
)
KEEP_LOADED_TOOLTIP = (
    "On: the model stays on the GPU after a run and ComfyUI moves it out only when another "
    "model needs the room (fast reruns). Off: it goes back to the offload device (CPU) after "
    "every node that uses it (less VRAM held, slower)."
)
NONE = "none"

SVD_FOLDERS = ("checkpoints", "diffusers")
AID_FOLDERS = ("aid",)
TEXT_ENCODER_FOLDERS = ("text_encoders",)
VLM_FOLDERS = ("LLM", "llava")


def _is_diffusers_svd(folder: Path) -> bool:
    return all((folder / part).is_dir() for part in ("unet", "vae", "image_encoder"))


def _is_transformers_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def _outside(files: list[str], folders: list[str]) -> list[str]:
    """Files not inside a listed model folder (ComfyUI lists files recursively, so the
    weights of a diffusers folder kept in checkpoints/ would show up one by one)."""
    return [name for name in files if not any(name.startswith(folder) for folder in folders)]


def svd_choices() -> list[str]:
    """Single-file checkpoints, then diffusers folders (ending in "/")."""
    folders = sorted({name for folder in SVD_FOLDERS
                      for name in services.list_model_dirs(folder, _is_diffusers_svd)})
    return _outside(services.list_weight_files("checkpoints"), folders) + folders


def aid_choices() -> list[str]:
    return [NONE, *services.list_weight_files("aid")]


def text_encoder_choices() -> list[str]:
    folders = services.list_model_dirs("text_encoders", _is_transformers_folder)
    return _outside(services.list_weight_files("text_encoders"), folders) + folders


def vlm_choices() -> list[str]:
    return sorted({name for folder in VLM_FOLDERS
                   for name in services.list_model_dirs(folder, _is_transformers_folder)})


def _missing(folders: tuple[str, ...], name: str, what: str) -> str | None:
    """None when ``name`` is found in ``folders``, else what to do about it."""
    if services.resolve_model_path(folders, name) is not None:
        return None
    existing = [path for folder in folders for path in services.folder_dirs(folder)
                if path.is_dir()]
    if not existing:
        return (f"'{name}' not found: no folder for {what} exists yet; create "
                f"{services.describe_folders(folders)}, put it there and press R in ComfyUI "
                "to refresh the lists")
    return (f"'{name}' is not in {services.describe_folders(folders)}; put {what} there (or "
            "pick one from the list) and press R in ComfyUI to refresh the lists")


def _path(folders: tuple[str, ...], name: str, input_name: str, what: str) -> Path:
    problem = _missing(folders, name, what)
    if problem is not None:
        raise InputError(input_name, name, problem)
    return services.resolve_model_path(folders, name)


def _dtype(name: str, device: torch.device) -> torch.dtype:
    from aid_model.pipeline import parse_dtype

    if name == "auto":
        return services.auto_dtype(device)
    with about_input("dtype", name):
        return parse_dtype(name)


def _model_handle(components, aid, label: str, keep_loaded: bool) -> AIDModelHandle:
    """AID_MODEL over loaded SVD components and the attached AID (None: plain SVD)."""
    modules = {"unet": components.unet, "vae": components.vae,
               "image_encoder": components.image_encoder}
    if aid is not None and aid.dqformer is not None:
        modules["dqformer"] = aid.dqformer
    return AIDModelHandle(components, aid, services.ManagedModel(label, modules, keep_loaded),
                          label)


class LoadAIDModel:
    """Load AID Model: SVD (single file or diffusers folder) + AID weights → AID_MODEL."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "svd_model": (svd_choices(), {"tooltip": (
                    "Stable Video Diffusion: an original single-file checkpoint from "
                    "models/checkpoints (svd.safetensors, svd_xt.safetensors, "
                    "svd_xt_1_1.safetensors) or a diffusers folder (unet/, vae/, image_encoder/) "
                    "from models/diffusers, listed with a trailing '/'.")}),
                "aid_weights": (aid_choices(), {"tooltip": (
                    "AID weights (.safetensors) from models/aid, trained on this SVD variant. "
                    "'none' gives plain SVD image-to-video: the instruction is then ignored.")}),
                "dtype": (DTYPES, {"default": "auto", "tooltip": DTYPE_TOOLTIP}),
                "keep_loaded": ("BOOLEAN", {"default": True, "tooltip": KEEP_LOADED_TOOLTIP}),
            },
            "optional": {
                "unet_head_channels": ("INT", {"default": 64, "min": 1, "max": 1024, "tooltip": (
                    "Channels per UNet attention head; weights do not record it. 64 for every "
                    "released SVD; change only for a custom-sized base.")}),
                "clip_num_heads": ("INT", {"default": 0, "min": 0, "max": 256, "tooltip": (
                    "Attention heads of the CLIP image encoder in a single-file checkpoint. "
                    "0: OpenCLIP ViT-H's convention (80 channels a head, 16 heads). Diffusers "
                    "folders carry their own config.")}),
            },
        }

    RETURN_TYPES = (AID_MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("SVD with AID attached (or plain SVD), for Build MCondition, the "
                       "sampler, AID Decode and AID Long Video.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Loads Stable Video Diffusion (UNet, temporal VAE, CLIP image encoder) and attaches the "
        "AID adapters, MCondition attention and DQFormer from an AID weight file. The weight "
        "file is checked against the SVD variant it was trained on."
    )

    @classmethod
    def VALIDATE_INPUTS(cls, svd_model=None, aid_weights=None):
        # Checked when the prompt is queued (instead of ComfyUI's "value not in list"), so a
        # user or a batch run learns at once which folder to create or fill. ComfyUI lists
        # the message under each input named here, hence the input names inside it.
        problems = []
        if svd_model is not None:
            problem = _missing(SVD_FOLDERS, svd_model, "the SVD checkpoint")
            problems += [f"svd_model: {problem}"] if problem else []
        if aid_weights not in (None, NONE):
            problem = _missing(AID_FOLDERS, aid_weights, "the AID weights")
            problems += [f"aid_weights: {problem}"] if problem else []
        return "; ".join(problems) or True

    def load(self, svd_model: str, aid_weights: str, dtype: str, keep_loaded: bool,
             unet_head_channels: int = 64, clip_num_heads: int = 0):
        from aid_model.aid import attach_aid_from_file
        from aid_model.svd import load_svd

        svd_path = _path(SVD_FOLDERS, svd_model, "svd_model", "the SVD checkpoint")
        aid_path = None
        if aid_weights != NONE:
            aid_path = _path(AID_FOLDERS, aid_weights, "aid_weights", "the AID weights")
        torch_dtype = _dtype(dtype, services.load_device())
        with about_input("svd_model", svd_model):
            components = load_svd(
                svd_path, dtype=torch_dtype, device=services.offload_device(),
                unet_head_channels=unet_head_channels, clip_num_heads=clip_num_heads or None,
            )
        aid = None
        if aid_path is not None:
            with about_input("aid_weights", aid_weights):
                aid = attach_aid_from_file(components, aid_path)
        label = svd_model if aid is None else f"{svd_model} + {aid_weights}"
        return (_model_handle(components, aid, label, keep_loaded),)


class LoadAIDTextEncoder:
    """Load AID Text Encoder: OpenCLIP ViT-H/14 text tower → AID_TEXT_ENCODER."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoder": (text_encoder_choices(), {"tooltip": (
                    "OpenCLIP ViT-H/14's text tower from models/text_encoders (or the legacy "
                    "models/clip): the open_clip .safetensors (open_clip_model.safetensors), an "
                    "SD 2.x single file, or a transformers folder (listed with a trailing '/'). "
                    "Without tokenizer files beside it, ComfyUI's own CLIP tokenizer is used.")}),
                "dtype": (DTYPES, {"default": "auto", "tooltip": DTYPE_TOOLTIP}),
                "keep_loaded": ("BOOLEAN", {"default": True, "tooltip": KEEP_LOADED_TOOLTIP}),
            },
            "optional": {
                "num_heads": ("INT", {"default": 0, "min": 0, "max": 256, "tooltip": (
                    "Attention heads of an open_clip file (weights do not record them). 0: "
                    "OpenCLIP's 64 channels a head (ViT-H: 16). Folders carry their config.")}),
            },
        }

    RETURN_TYPES = (AID_TEXT_ENCODER,)
    RETURN_NAMES = ("text_encoder",)
    OUTPUT_TOOLTIPS = ("The frozen text encoder that turns the instruction and the states "
                       "into the DQFormer's e_t and e_s.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Loads the OpenCLIP ViT-H/14 text encoder AID reads instructions and future states with "
        "(SD 2.x penultimate-layer convention, padding with token 0 as open_clip does)."
    )

    @classmethod
    def VALIDATE_INPUTS(cls, text_encoder=None):
        return True if text_encoder is None else (
            _missing(TEXT_ENCODER_FOLDERS, text_encoder, "the text encoder") or True)

    def load(self, text_encoder: str, dtype: str, keep_loaded: bool, num_heads: int = 0):
        from aid_model.text_encoder import load_text_encoder

        path = _path(TEXT_ENCODER_FOLDERS, text_encoder, "text_encoder", "the text encoder")
        devices = services.text_encoder_devices()
        kwargs = dict(dtype=_dtype(dtype, devices[0]), device=devices[1],
                      num_heads=num_heads or None)
        with about_input("text_encoder", text_encoder):
            try:
                encoder = load_text_encoder(path, **kwargs)
            except FileNotFoundError as missing:
                # The tokenizer is looked for before any weights are read, so retrying with
                # ComfyUI's copy of the same BPE files costs nothing; any other missing file
                # fails again with its own message.
                tokenizer = services.comfy_clip_tokenizer_dir()
                if tokenizer is None:
                    raise FileNotFoundError(
                        f"{missing}. Outside ComfyUI, set ${services.ENV_TOKENIZER_DIR} to a "
                        "folder with vocab.json + merges.txt"
                    ) from missing
                encoder = load_text_encoder(path, tokenizer_dir=tokenizer, **kwargs)
        managed = services.ManagedModel(text_encoder, {"text_encoder": encoder}, keep_loaded,
                                        devices)
        return (TextEncoderHandle(encoder, managed, text_encoder),)


class LoadStatePrompter:
    """Load State Prompter: a local vision-language model folder → AID_VLM."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vlm": (vlm_choices(), {"tooltip": (
                    "A transformers vision-language model folder (config.json, weights, "
                    "processor, chat template) from models/LLM or models/llava, e.g. "
                    "llava-onevision-qwen2-7b-ov-hf (the paper's choice), LLaVA-1.5, Qwen2-VL. "
                    "Nothing is downloaded.")}),
                "dtype": (DTYPES, {"default": "auto", "tooltip": DTYPE_TOOLTIP}),
                "keep_loaded": ("BOOLEAN", {"default": False, "tooltip": KEEP_LOADED_TOOLTIP}),
                "trust_remote_code": ("BOOLEAN", {"default": False, "tooltip": (
                    "Run Python files shipped in the model folder. Only for models transformers "
                    "has no built-in class for; leave off unless you trust the folder.")}),
            },
            "optional": {
                "max_new_tokens": ("INT", {"default": 0, "min": 0, "max": 4096, "tooltip": (
                    "Bound on each answer's length. 0: 48 + 40 per state.")}),
            },
        }

    RETURN_TYPES = (AID_VLM,)
    RETURN_NAMES = ("vlm",)
    OUTPUT_TOOLTIPS = ("The state prompter, for Predict Future States.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Loads a vision-language model (LLaVA in the paper) that writes the future states of "
        "the video from its first frame and the instruction. Greedy decoding: the same frame "
        "and instruction always give the same states."
    )

    @classmethod
    def VALIDATE_INPUTS(cls, vlm=None):
        return True if vlm is None else (
            _missing(VLM_FOLDERS, vlm, "the vision-language model folder") or True)

    def load(self, vlm: str, dtype: str, keep_loaded: bool, trust_remote_code: bool,
             max_new_tokens: int = 0):
        from aid_model.states import StatePrompter

        path = _path(VLM_FOLDERS, vlm, "vlm", "the vision-language model folder")
        with about_input("vlm", vlm):
            prompter = StatePrompter.from_pretrained(
                path,
                dtype=_dtype(dtype, services.load_device()),
                device=services.offload_device(),
                trust_remote_code=trust_remote_code,
                max_new_tokens=max_new_tokens or None,
            )
        managed = services.ManagedModel(vlm, {"vlm": prompter.model}, keep_loaded)
        return (StatePrompterHandle(prompter, managed, vlm),)


DEMO_LABEL = "AID demo model"
DEMO_DTYPE_TOOLTIP = (
    "Weights' precision. fp32 (default): as the miniature was trained and evaluated, and "
    "what `python -m aid_model demo` uses; it is small enough that fp32 costs nothing. auto: "
    "ComfyUI's choice for this device (bf16 or fp16 on a GPU, fp32 on a CPU)."
)


def _demo_problem() -> str | None:
    """None when the bundled miniature is complete, else the library's message."""
    from aid_model.demo.load import demo_files

    try:
        demo_files()
    except FileNotFoundError as missing:
        return str(missing)
    return None


class LoadAIDDemoModel:
    """Load AID Demo Model: the miniature AID shipped in demo_model/ → AID_MODEL +
    AID_TEXT_ENCODER, so every workflow can be tried without downloading anything."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "dtype": (DTYPES, {"default": "fp32", "tooltip": DEMO_DTYPE_TOOLTIP}),
                "keep_loaded": ("BOOLEAN", {"default": True, "tooltip": KEEP_LOADED_TOOLTIP}),
            },
        }

    RETURN_TYPES = (AID_MODEL, AID_TEXT_ENCODER)
    RETURN_NAMES = ("model", "text_encoder")
    OUTPUT_TOOLTIPS = (
        "The miniature SVD with its AID weights, for Build MCondition, the sampler, AID Decode "
        "and AID Long Video: 64×64 pixels (width and height multiples of 16), T = 8 frames.",
        "The miniature's text encoder (its own small vocabulary), for Build MCondition and AID "
        "Long Video. It fits only the demo model.",
    )
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Loads the miniature AID bundled with the extension (demo_model/): the same model "
        "classes as SVD + AID + OpenCLIP, scaled down and trained on a synthetic world of "
        "coloured circles, squares and triangles on a light-grey background. It runs on a CPU "
        "in seconds and needs no downloads. Instructions name an object and a direction, e.g. "
        "'move the green circle left'; use 64×64 frames of that world (workflows/"
        "demo_scene.png) and the demo workflow's settings."
    )

    @classmethod
    def VALIDATE_INPUTS(cls, dtype=None):
        # Named so that ComfyUI calls this when the prompt is queued (it skips a
        # VALIDATE_INPUTS without parameters); ComfyUI then leaves 'dtype' to us.
        problems = []
        if dtype is not None and dtype not in DTYPES:
            problems.append(f"dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
        problem = _demo_problem()
        return "; ".join(problems + ([problem] if problem else [])) or True

    def load(self, dtype: str, keep_loaded: bool):
        from aid_model.demo.load import load_demo_pipeline

        problem = _demo_problem()
        if problem is not None:
            raise FileNotFoundError(problem)
        torch_dtype = _dtype(dtype, services.load_device())
        pipeline = load_demo_pipeline(device=services.offload_device(), dtype=torch_dtype)
        model = _model_handle(pipeline.components, pipeline.aid, DEMO_LABEL, keep_loaded)
        devices = services.text_encoder_devices()
        encoder = pipeline.text_encoder.to(devices[1])
        label = f"{DEMO_LABEL} text encoder"
        managed = services.ManagedModel(label, {"text_encoder": encoder}, keep_loaded, devices)
        return model, TextEncoderHandle(encoder, managed, label)
