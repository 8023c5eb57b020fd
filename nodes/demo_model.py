"""Load AID Demo Model: the bundled miniature as ComfyUI's own MODEL, CLIP_VISION, VAE and CLIP.

The miniature (demo_model/) is stored as diffusers and transformers folders and is far
smaller than anything ComfyUI's checkpoint detection knows, so each part is built here
explicitly with ComfyUI's classes and filled from the bundled weights:

- MODEL: ``comfy.model_base.SVD_img2vid`` (through ``supported_models.SVD_img2vid``) with a
  unet_config read from unet/config.json; the diffusers names become the original ones
  through the library's one conversion table (``aid_model.svd.convert``), whichever levels
  have attention. Latents have the VAE's channels and its scaling factor (vae/config.json).
- VAE: ComfyUI's SVD autoencoder (its Encoder and temporal VideoDecoder) at the miniature's
  widths and number of levels (its downsampling), inside a ``comfy.sd.VAE``.
- CLIP_VISION: ``comfy.clip_vision.ClipVisionModel`` from image_encoder/config.json.
- CLIP: ``comfy.sd.CLIP`` with an ``SDClipModel`` from text_encoder/config.json and an
  ``SDTokenizer`` on the world's tokenizer files, as SD 2.x reads OpenCLIP: the penultimate
  layer after the final LayerNorm, padded with token 0.

The AID weights (demo_model/aid.safetensors) are listed by Apply AID as "aid.safetensors"
(``comfy_services.register_model_folders`` adds demo_model/ to the ``aid`` folders).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

from aid_model.demo.paths import DEMO_DIR, SVD_DIR, TEXT_ENCODER_DIR

# Read when called, so a test can point it at a missing folder.
DEMO_FOLDER = DEMO_DIR
CATEGORY = "AID/demo"
WEIGHT_DTYPES = {"fp32": torch.float32, "auto": None, "fp16": torch.float16,
                 "bf16": torch.bfloat16}
UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
VAE_WEIGHTS = "diffusion_pytorch_model.safetensors"
TRANSFORMERS_WEIGHTS = "model.safetensors"
# ComfyUI's SVD_img2vid embeds each micro-conditioning id (fps, motion, augmentation) in 256
# channels, as SVD does; a UNet built for another width cannot take its ``y``.
COMFY_SVD_TIME_EMBED = 256


def demo_problem(folder: Path | None = None) -> str | None:
    """None when the bundled miniature is complete, else what is missing and what to do."""
    from aid_model.demo.load import demo_files

    try:
        demo_files(folder or DEMO_FOLDER)
    except FileNotFoundError as missing:
        return str(missing)
    return None


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _weights(path: Path) -> dict[str, torch.Tensor]:
    import comfy.utils

    return comfy.utils.load_torch_file(str(path), safe_load=True)


# --- UNet ----------------------------------------------------------------------------------


def unet_layout(config: dict):
    """The library's ``UNetLayout`` of a diffusers SVD UNet config (unet/config.json)."""
    from aid_model.svd.layout import UNetLayout

    levels = len(config["block_out_channels"])

    def per_level(value) -> list[int]:
        return list(value) if isinstance(value, (list, tuple)) else [value] * levels

    return UNetLayout(
        in_channels=config["in_channels"],
        out_channels=config["out_channels"],
        block_out_channels=list(config["block_out_channels"]),
        layers_per_block=per_level(config["layers_per_block"]),
        attention_on_level=["CrossAttn" in name for name in config["down_block_types"]],
        transformer_layers_per_block=per_level(config["transformer_layers_per_block"]),
        cross_attention_dim=config["cross_attention_dim"],
        addition_time_embed_dim=config["addition_time_embed_dim"],
        projection_class_embeddings_input_dim=config["projection_class_embeddings_input_dim"],
        num_attention_heads=per_level(config["num_attention_heads"]),
    )


def comfy_unet_config(layout) -> dict:
    """ComfyUI's ``UNetModel`` arguments for an SVD UNet of ``layout``: what
    ``model_detection.detect_unet_config`` reads from an original SVD checkpoint, with
    SVD_img2vid's extras and the layout's head width (SVD's is 64, the miniature's 16)."""
    widths = layout.block_out_channels
    # Levels of res blocks only have no heads; the middle block attends at the last width.
    attending = [*layout.attention_on_level[:-1], True]
    head_channels = {width // heads for width, heads, attention in
                     zip(widths, layout.num_attention_heads, attending, strict=True) if attention}
    if len(head_channels) != 1:
        raise ValueError(f"ComfyUI's UNet has one head width for every level; this one has "
                         f"{sorted(head_channels)} channels a head ({widths} wide, "
                         f"{layout.num_attention_heads} heads)")
    if layout.addition_time_embed_dim != COMFY_SVD_TIME_EMBED:
        raise ValueError(f"ComfyUI's SVD embeds the micro-conditioning in "
                         f"{COMFY_SVD_TIME_EMBED} channels an id; this UNet takes "
                         f"{layout.addition_time_embed_dim}")
    base = widths[0]
    layers = layout.layers_per_block
    depth = [d if attention else 0 for d, attention in
             zip(layout.transformer_layers_per_block, layout.attention_on_level, strict=True)]
    return {
        "use_checkpoint": False,
        "image_size": 32,
        "use_spatial_transformer": True,
        "legacy": False,
        "num_classes": "sequential",
        "adm_in_channels": layout.projection_class_embeddings_input_dim,
        "in_channels": layout.in_channels,
        "out_channels": layout.out_channels,
        "model_channels": base,
        "num_res_blocks": list(layers),
        "channel_mult": [width // base for width in widths],
        # One entry per resblock of the input blocks, and per output block (one more a level).
        "transformer_depth": [d for d, n in zip(depth, layers, strict=True) for _ in range(n)],
        "transformer_depth_output": [d for d, n in zip(depth, layers, strict=True)
                                     for _ in range(n + 1)],
        "transformer_depth_middle": layout.transformer_layers_per_block[-1],
        "use_linear_in_transformer": True,
        "context_dim": layout.cross_attention_dim,
        "extra_ff_mix_layer": True,
        "use_spatial_context": True,
        "merge_strategy": "learned_with_images",
        "merge_factor": 0.0,
        "video_kernel_size": [3, 1, 1],
        "use_temporal_resblock": True,
        "use_temporal_attention": True,
        "disable_temporal_crossattention": False,
        "num_heads": -1,
        "num_head_channels": head_channels.pop(),
        "attn_precision": torch.float32,
    }


def _original_state(target: dict[str, torch.Tensor], library: dict[str, torch.Tensor],
                    convert, component: str, identity: tuple[str, ...] = (),
                    unused: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """``target``'s keys (a model in the original layout) filled from ``library`` weights,
    named by the library's converter. Keys starting with ``identity`` are zeros (parts the
    library's model does not have, which zero weights make exact identities); library keys
    starting with ``unused`` are ones its model holds but never runs. Anything else missing
    or left over is an error naming it."""
    from aid_model.svd.convert import library_names

    names, _ = library_names(target, convert)  # keys it does not know end up in missing
    state, missing = {}, []
    for key, tensor in target.items():
        if key.startswith(identity):
            state[key] = torch.zeros_like(tensor, device="cpu")
        elif key in names and names[key] in library:
            # The original's 1×1 attention convs are Linear layers in diffusers.
            state[key] = library[names[key]].reshape(tensor.shape)
        else:
            missing.append(key)
    used = {names[key] for key in state if key in names}
    left = sorted(key for key in library if key not in used and not key.startswith(unused))
    if missing or left:
        raise ValueError(f"the demo {component} does not fit ComfyUI's: {len(missing)} tensors "
                         f"have no weights ({missing[:6]}), {len(left)} weights have no place "
                         f"({left[:6]}); rebuild demo_model/ with `make demo-train`")
    return state


def build_model(folder: Path, weight_dtype: torch.dtype | None = torch.float32):
    """The miniature SVD UNet as a MODEL: ComfyUI's ``SVD_img2vid`` in a ``ModelPatcher``.

    ``weight_dtype`` None: ComfyUI's choice for its device (as core loaders make it).
    """
    import comfy.latent_formats
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models
    import comfy.utils

    from aid_model.svd.convert import convert_unet

    svd = folder / SVD_DIR
    layout = unet_layout(_config(svd / "unet"))
    unet_config = comfy_unet_config(layout)
    model_config = comfy.supported_models.SVD_img2vid(unet_config)
    # SVD_img2vid adds the real SVD's extras (64-channel heads) to the config; ours win.
    model_config.unet_config.update(unet_config)
    vae_config = _config(svd / "vae")
    latent_format = comfy.latent_formats.LatentFormat()
    latent_format.latent_channels = vae_config["latent_channels"]
    latent_format.scale_factor = vae_config["scaling_factor"]
    model_config.latent_format = latent_format

    library = _weights(svd / "unet" / UNET_WEIGHTS)
    load_device = mm.get_torch_device()
    if weight_dtype is None:
        weight_dtype = mm.unet_dtype(model_params=comfy.utils.calculate_parameters(library),
                                     supported_dtypes=model_config.supported_inference_dtypes)
    manual_cast = mm.unet_manual_cast(weight_dtype, load_device,
                                      model_config.supported_inference_dtypes)
    model_config.set_inference_dtype(weight_dtype, manual_cast)
    model = model_config.get_model({}, device=mm.unet_offload_device())
    target = model.diffusion_model.state_dict()
    state = _original_state(target, library, lambda part: convert_unet(part, layout), "UNet")
    model.load_model_weights(state)
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device,
                                            offload_device=mm.unet_offload_device())


# --- VAE -----------------------------------------------------------------------------------


def _fold_quant_conv(state: dict[str, torch.Tensor], library: dict[str, torch.Tensor]) -> None:
    """diffusers' VAE applies a 1×1 ``quant_conv`` to the encoder's output; the original
    (ComfyUI's AutoencodingEngine) has none, so it is folded into the encoder's last conv:
    Q(W∗x + b) + q = (QW)∗x + (Qb + q). Computed in float64 and kept in float32: the
    bundled weights are float16, which the folded ones are not (rounded to it, the latents
    moved by 6e-4)."""
    quant = library["quant_conv.weight"][:, :, 0, 0].double()
    weight, bias = state["encoder.conv_out.weight"], state["encoder.conv_out.bias"]
    folded = torch.einsum("om,mikl->oikl", quant, weight.double())
    state["encoder.conv_out.weight"] = folded.float()
    state["encoder.conv_out.bias"] = (quant @ bias.double()
                                      + library["quant_conv.bias"].double()).float()


def build_vae(folder: Path):
    """The miniature temporal VAE as ComfyUI's ``VAE``.

    ComfyUI picks a VAE's network from its weights' names and sizes, and SVD's is fixed
    (128 wide, 4 channels); the miniature's is built here with the same classes and handed
    to a ``comfy.sd.VAE`` whose other fields are ComfyUI's defaults.
    """
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencodingEngine

    from aid_model.svd.convert import convert_vae
    from aid_model.svd.layout import VAELayout

    config = _config(folder / SVD_DIR / "vae")
    library = _weights(folder / SVD_DIR / "vae" / VAE_WEIGHTS)
    widths = list(config["block_out_channels"])
    latent_channels = config["latent_channels"]
    ddconfig = {"double_z": True, "z_channels": latent_channels, "resolution": 256,
                "in_channels": config["in_channels"], "out_ch": config["out_channels"],
                "ch": widths[0], "ch_mult": [width // widths[0] for width in widths],
                "num_res_blocks": config["layers_per_block"], "attn_resolutions": [],
                "dropout": 0.0}
    # As comfy.sd.VAE builds SVD's (its "decoder.mid.block_1.mix_factor" branch).
    engine = AutoencodingEngine(
        regularizer_config={"target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
        encoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Encoder",
                        "params": ddconfig},
        decoder_config={"target": "comfy.ldm.modules.temporal_ae.VideoDecoder",
                        "params": {**ddconfig, "video_kernel_size": [3, 1, 1], "alpha": 0.0}},
    )
    mid_resnets = len({key.split(".")[3] for key in library
                       if key.startswith("decoder.mid_block.resnets.")})
    layout = VAELayout(config["in_channels"], config["out_channels"], widths,
                       config["layers_per_block"], latent_channels, mid_resnets)
    identity: tuple[str, ...] = ()
    unused: tuple[str, ...] = ("quant_conv.",)
    if mid_resnets == 1:
        # diffusers gives the decoder's mid block layers_per_block resnets and runs its
        # attention only between two of them: with one resnet it is that resnet alone. The
        # original always has block_1, attn_1, block_2; zero weights make the last two exact
        # identities (x + 0, and a temporal mix of two equal halves).
        identity = ("decoder.mid.attn_1.", "decoder.mid.block_2.")
        unused += ("decoder.mid_block.attentions.0.",)
    state = _original_state(engine.state_dict(), library,
                            lambda part: convert_vae(part, layout), "VAE", identity, unused)
    _fold_quant_conv(state, library)
    engine.load_state_dict(state, strict=True)

    # ComfyUI's defaults for every field of a VAE (devices, dtype, pixel range), from its
    # smallest network; then the miniature's network and sizes, as the SVD branch sets them.
    vae = comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})
    downscale = 2 ** (len(widths) - 1)
    vae.first_stage_model = engine.eval().to(vae.vae_dtype)
    vae.latent_channels = latent_channels
    vae.downscale_ratio = vae.upscale_ratio = downscale
    # SD's VAE estimates (the same network at 4× the width): an upper bound here.
    vae.memory_used_encode = lambda shape, dtype: (
        1767 * shape[2] * shape[3]) * mm.dtype_size(dtype)
    vae.memory_used_decode = lambda shape, dtype: (
        2178 * shape[2] * shape[3] * 64) * mm.dtype_size(dtype)
    vae.patcher = comfy.model_patcher.ModelPatcher(
        vae.first_stage_model, load_device=vae.device, offload_device=mm.vae_offload_device())
    return vae


# --- CLIP vision and text ------------------------------------------------------------------


def _check_loaded(component: str, missing: list[str], unexpected: list[str]) -> None:
    if missing or unexpected:
        raise ValueError(f"the demo {component} does not fit ComfyUI's: missing {missing[:6]}, "
                         f"unexpected {unexpected[:6]}; rebuild demo_model/ with "
                         "`make demo-train`")


def build_clip_vision(folder: Path):
    """The miniature's CLIP image tower as ComfyUI's ``ClipVisionModel`` (its config is the
    transformers config.json beside the weights: same names, same sizes)."""
    import comfy.clip_vision

    tower = folder / SVD_DIR / "image_encoder"
    clip_vision = comfy.clip_vision.ClipVisionModel(str(tower / "config.json"))
    missing, unexpected = clip_vision.load_sd(_weights(tower / TRANSFORMERS_WEIGHTS))
    _check_loaded("CLIP image encoder", missing, unexpected)
    return clip_vision


def build_clip(folder: Path, weight_dtype: torch.dtype | None = torch.float32):
    """The miniature's text tower and tokenizer as ComfyUI's ``CLIP``, read as SD 2.x reads
    OpenCLIP ViT-H (``SD2ClipHModel``): penultimate layer with the final LayerNorm, no
    attention mask, padded with token 0.

    ``weight_dtype`` None: ComfyUI's choice, float16 weights for every text encoder even on
    a CPU; the miniature's are stored in float32, and float16 moves its states by 2e-3.
    """
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models_base
    import comfy.utils

    tower = folder / TEXT_ENCODER_DIR
    config = _config(tower)
    tokenizer = functools.partial(
        comfy.sd1_clip.SD1Tokenizer, clip_name="h",
        tokenizer=functools.partial(
            comfy.sd1_clip.SDTokenizer, tokenizer_path=str(tower), pad_with_end=False,
            max_length=config["max_position_embeddings"], embedding_size=config["hidden_size"],
            embedding_key="clip_h"),
    )
    target = comfy.supported_models_base.ClipTarget(tokenizer, comfy.sd1_clip.SD1ClipModel)
    target.params = {
        "clip_name": "h", "clip_model": comfy.sd1_clip.SDClipModel,
        "textmodel_json_config": dict(config), "layer": "hidden", "layer_idx": -2,
        "special_tokens": {"start": config["bos_token_id"], "end": config["eos_token_id"],
                           "pad": 0},
    }
    state = _weights(tower / TRANSFORMERS_WEIGHTS)
    clip = comfy.sd.CLIP(target, parameters=comfy.utils.calculate_parameters(state),
                         model_options={} if weight_dtype is None else {"dtype": weight_dtype})
    # ComfyUI's CLIP text tower has CLIP's 49,408-row token table whatever the config says;
    # the miniature's rows fill its start, and its ids never reach the zero rows after them.
    embeddings = clip.cond_stage_model.clip_h.transformer.get_input_embeddings()
    key = "text_model.embeddings.token_embedding.weight"
    table = torch.zeros(embeddings.weight.shape, dtype=state[key].dtype)
    table[: state[key].shape[0]] = state[key]
    state[key] = table
    missing, unexpected = clip.load_sd(state)
    _check_loaded("text encoder", missing, unexpected)
    return clip


def load_demo(folder: Path | None = None, weight_dtype: torch.dtype | None = torch.float32):
    """(MODEL, CLIP_VISION, VAE, CLIP) of the bundled miniature; FileNotFoundError naming the
    folder and what to do when it is incomplete."""
    folder = Path(folder or DEMO_FOLDER)
    problem = demo_problem(folder)
    if problem is not None:
        raise FileNotFoundError(problem)
    return (build_model(folder, weight_dtype), build_clip_vision(folder), build_vae(folder),
            build_clip(folder, weight_dtype))


class AIDDemoModel:
    """Load AID Demo Model: the miniature bundled in demo_model/ as core MODEL, CLIP_VISION,
    VAE and CLIP, for Apply AID, AID Conditioning and ComfyUI's own nodes."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "weight_dtype": (list(WEIGHT_DTYPES), {"default": "fp32", "tooltip": (
                    "Precision of the UNet's and the text encoder's weights. fp32: as the "
                    "miniature was trained and as `python -m aid_model demo` runs it; it is "
                    "small enough that fp32 costs nothing. auto: ComfyUI's choice for this "
                    "device (fp16 for text encoders). The VAE and CLIP vision follow "
                    "ComfyUI's own choice, as core loaders do.")}),
            },
        }

    RETURN_TYPES = ("MODEL", "CLIP_VISION", "VAE", "CLIP")
    RETURN_NAMES = ("model", "clip_vision", "vae", "clip")
    OUTPUT_TOOLTIPS = (
        "The miniature SVD (ComfyUI's SVD image-to-video model): 64×64 frames, 8 frames. Add "
        "AID with Apply AID (AID weights: aid.safetensors, listed from demo_model/), or "
        "sample it as plain SVD (Apply AID at strength 0). AID Conditioning sizes the latent "
        "from the VAE; core SVD_img2vid_Conditioning's empty latent assumes SVD's ×8 VAE.",
        "The miniature's CLIP image encoder (64×64 input), for SVD / AID conditioning.",
        "The miniature's temporal VAE (its latent channels and downsampling as demo_model/ "
        "was built), for conditioning and VAE Decode.",
        "The miniature's text encoder with its own small vocabulary (SD 2.x style, penultimate "
        "layer). It fits only the demo model.",
    )
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Loads the miniature AID bundled with the extension (demo_model/) as ComfyUI's own "
        "model types: the same classes as SVD and OpenCLIP, scaled down and trained on a "
        "synthetic world of coloured circles, squares and triangles. It runs on a CPU in "
        "seconds and needs no downloads. Use 64×64 frames of that world (AID Demo Scene) and "
        "instructions such as 'move the green circle left'."
    )

    @classmethod
    def VALIDATE_INPUTS(cls, weight_dtype=None):
        # Named so that ComfyUI calls it when the prompt is queued (it skips one without
        # parameters) and lists the message under that input.
        problems = []
        if weight_dtype is not None and weight_dtype not in WEIGHT_DTYPES:
            problems.append(f"weight_dtype: {weight_dtype!r} is not one of "
                            f"{', '.join(WEIGHT_DTYPES)}")
        problem = demo_problem()
        return "; ".join(problems + ([problem] if problem else [])) or True

    def load(self, weight_dtype: str):
        return load_demo(weight_dtype=WEIGHT_DTYPES[weight_dtype])


__all__ = ["AIDDemoModel", "load_demo"]
