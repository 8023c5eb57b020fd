"""AID as a patch on ComfyUI's own SVD MODEL (docs/comfyui.md, "How AID patches ComfyUI's SVD").

``apply_aid(model, aid_file, strength)`` returns ``model.clone()`` with

- the spatial cross-attention weights AID trained as **weight patches** (``add_patches``,
  a difference to the base, scaled by ``strength``): ComfyUI applies and removes them
  with the clone, low-VRAM and fp8 included, and they compose with LoRAs;
- SA, STA + LTA and the MCondition branch as **forward hooks** that a ``PatcherInjection``
  registers when ComfyUI patches the clone onto its model and removes when it unpatches
  it: on ``transformer_blocks[i].attn1`` (SA on its output), ``time_stack[i].attn1``
  (STA, then LTA; the frame size from ``transformer_options["activations_shape"]``) and
  ``transformer_blocks[i].attn2`` (the MCondition branch on the query that attn2's own,
  patched, ``to_q`` made, kept by a hook on that ``to_q``);
- the AID modules (``AIDParts``) under their own ``ModelPatcher``, registered with
  ``set_additional_models``, so sampling loads, offloads and casts them with the UNet;
- a ``DIFFUSION_MODEL`` wrapper that moves the MCondition the conditioning carries
  (``model_conds["aid_mcondition"]``, batched by ComfyUI with the other branches and
  cast to the UNet's dtype and device) into ``transformer_options`` for the hooks;
- an attachment (``AIDAttachment``) that AID Conditioning reads the DQFormer from.

The input MODEL is never modified: everything lives on the clone and takes effect only
while ComfyUI has the clone patched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

KEY = "aid"  # attachment, additional models, injections and wrapper key
MCONDITION = "aid_mcondition"  # model_conds / transformer_options key
UNET_PREFIX = "diffusion_model."  # the UNet's keys in the BaseModel's state dict


@dataclass(frozen=True)
class AIDAttachment:
    """What an Apply-AID'd MODEL carries for AID Conditioning.

    Attributes:
        parts: the AID modules (the DQFormer among them), managed by ``patcher``.
        patcher: their ``ModelPatcher`` as Apply AID registered it.
        strength: the strength the clone was patched with.
        name: the AID weight file's name, for messages.
    """

    parts: nn.Module
    patcher: object
    strength: float
    name: str

    @property
    def config(self):
        return self.parts.config


def _comfy():
    import comfy.model_base
    import comfy.model_patcher
    import comfy.patcher_extension

    return comfy


def check_svd_model(model) -> None:
    """Raises ValueError unless ``model`` is a ComfyUI SVD image-to-video MODEL."""
    comfy = _comfy()
    base = getattr(model, "model", None)
    if not isinstance(model, comfy.model_patcher.ModelPatcher) or not isinstance(
            base, comfy.model_base.SVD_img2vid):
        found = type(base).__name__ if base is not None else type(model).__name__
        raise ValueError(
            f"model: AID attaches to Stable Video Diffusion image-to-video, but this MODEL is "
            f"a {found}; connect an SVD MODEL (e.g. Image Only Checkpoint Loader with "
            "svd_xt.safetensors)"
        )
    if model.get_attachment(KEY) is not None:
        raise ValueError(
            f"model: AID ({model.get_attachment(KEY).name}) is already applied to this MODEL; "
            "connect the MODEL from before that Apply AID (one AID per model)"
        )


def unet_names(model) -> dict[str, str]:
    """{diffusers name: ComfyUI name} of the MODEL's UNet tensors, from the library's own
    key table (``aid_model.svd.convert``) read backwards."""
    from aid_model.svd.convert import unet_original_names
    from aid_model.svd.layout import infer_unet_layout

    shapes = {k: tuple(v.shape) for k, v in model.model.diffusion_model.state_dict().items()}
    # Head widths change no name or shape; 1 divides every width.
    return unet_original_names(shapes, infer_unet_layout(shapes, head_channels=1))


def unet_shapes(model, names: dict[str, str]) -> dict[str, list[int]]:
    """{diffusers name: shape} of the MODEL's UNet, as AID files record their base."""
    state = model.model.diffusion_model.state_dict()
    return dict(sorted((name, list(state[original].shape)) for name, original in names.items()))


def compute_dtype(model) -> torch.dtype:
    """The dtype the UNet computes in (its weights', or the cast one for fp8 weights)."""
    base = model.model
    return base.manual_cast_dtype or base.get_dtype()


def apply_aid(model, aid_file, strength: float, name: str):
    """A clone of the SVD ``model`` with the AID of ``aid_file`` (``AIDFile``) attached.

    Raises:
        ValueError: a non-SVD MODEL, a MODEL with AID already applied.
        AIDWeightsError: AID weights trained on another base, or incomplete.
    """
    from aid_model.aid.parts import AIDParts
    from aid_model.aid.weight_file import check_base

    comfy = _comfy()
    check_svd_model(model)
    names = unet_names(model)
    check_base(aid_file.base_shapes, unet_shapes(model, names), Path(name))
    parts = AIDParts(aid_file).to(dtype=compute_dtype(model))

    clone = model.clone()
    patcher = comfy.model_patcher.ModelPatcher(parts, load_device=model.load_device,
                                               offload_device=model.offload_device)
    clone.set_additional_models(KEY, [patcher])
    clone.set_attachments(KEY, AIDAttachment(parts, patcher, strength, name))
    if strength == 0:  # plain SVD; the DQFormer stays reachable for AID Conditioning
        return clone
    clone.add_patches(_weight_differences(model, aid_file.base_tensors(), names),
                      strength_patch=strength)
    injection = AIDInjection(_hooks(parts, names, strength))
    clone.set_injections(KEY, [comfy.patcher_extension.PatcherInjection(
        inject=injection.inject, eject=injection.eject)])
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY,
                               move_mcondition)
    return clone


def _weight_differences(model, trained: dict[str, Tensor],
                        names: dict[str, str]) -> dict[str, tuple[Tensor]]:
    """ComfyUI "diff" patches {key: (trained − base,)} for the trained base tensors."""
    base = model.get_key_patches(UNET_PREFIX)  # the unpatched weights, whatever is loaded
    patches = {}
    for name, tensor in trained.items():
        key = UNET_PREFIX + names[name]  # check_base made sure every name exists
        weight = base[key][0][0]
        patches[key] = ((tensor.float() - weight.float().cpu()),)
    return patches


Hook = Callable[[nn.Module, tuple, dict, Tensor], Tensor]


def _hooks(parts, names: dict[str, str], strength: float) -> dict[str, Hook]:
    """{ComfyUI module path under the UNet: forward hook} for every AID module."""
    paths = {d.removesuffix(".to_q.weight"): o.removesuffix(".to_q.weight")
             for d, o in names.items() if d.endswith(".to_q.weight")}
    hooks: dict[str, Hook] = {}
    for attention, adapter in parts.spatial_adapters().items():
        hooks[paths[attention]] = _spatial_adapter_hook(adapter, strength)
    short, long = parts.short_term_adapters(), parts.long_term_adapters()
    for attention in sorted(set(short) | set(long)):
        hooks[paths[attention]] = _temporal_adapters_hook(
            short.get(attention), long.get(attention), strength)
    for attention, branch in parts.mcondition_branches().items():
        keep_query, hook = _mcondition_hooks(branch, strength)
        hooks[paths[attention] + ".to_q"] = keep_query
        hooks[paths[attention]] = hook
    return hooks


def _spatial_adapter_hook(adapter, strength: float) -> Hook:
    def hook(module, args, kwargs, output):
        return output + strength * adapter.residual(output)  # (B·T, h·w, c)

    return hook


def _temporal_adapters_hook(short_term, long_term, strength: float) -> Hook:
    def hook(module, args, kwargs, output):  # output (B·h·w, T, c)
        if short_term is not None:
            # SpatialVideoTransformer records its input (B·T, c, h, w) before its blocks.
            height, width = kwargs["transformer_options"]["activations_shape"][-2:]
            output = output + strength * short_term.residual(output, (height, width))
        if long_term is not None:
            output = output + strength * long_term.residual(output)
        return output

    return hook


def _mcondition_hooks(branch, strength: float) -> tuple[Hook, Hook]:
    """(hook on attn2.to_q, hook on attn2): the branch reads the query attn2 itself made
    (its first step, ``to_q`` of its input, patched weights included) instead of making it
    a second time."""
    query: list[Tensor] = []

    def keep_query(module, args, kwargs, output):
        query[:] = [output]  # (B·T, h·w, c)

    def hook(module, args, kwargs, output):
        made = query.pop()  # not kept past the call: at svd_xt's size it is tens of MB
        mcondition = kwargs.get("transformer_options", {}).get(MCONDITION)
        if mcondition is None:  # a conditioning without MCondition: SVD's attention only
            return output
        tokens = args[0]  # (B·T, h·w, c), what attn2 attended from
        if mcondition.shape[0] != tokens.shape[0]:
            raise ValueError(
                f"the MCondition has {mcondition.shape[0]} frame rows but the UNet runs "
                f"{tokens.shape[0]}: give the sampler the latent of the same AID Conditioning "
                "(its video_frames)"
            )
        return output + strength * branch(made, mcondition, module.heads)

    return keep_query, hook


class AIDInjection:
    """Registers the hooks on the UNet of the patcher ComfyUI patches, removes them when
    it unpatches it (``PatcherInjection``'s inject/eject)."""

    def __init__(self, hooks: dict[str, Hook]):
        self.hooks = hooks
        self.handles: dict[int, list] = {}  # id(patcher) → its hook handles

    def inject(self, patcher) -> None:
        unet = patcher.model.diffusion_model
        self.eject(patcher)
        self.handles[id(patcher)] = [
            unet.get_submodule(path).register_forward_hook(hook, with_kwargs=True)
            for path, hook in self.hooks.items()
        ]

    def eject(self, patcher) -> None:
        for handle in self.handles.pop(id(patcher), []):
            handle.remove()


def move_mcondition(executor, x, timesteps, context, y, control, transformer_options,
                    **kwargs):
    """DIFFUSION_MODEL wrapper: the MCondition ComfyUI passes as a keyword (from the
    conditioning's ``model_conds``) goes into this call's ``transformer_options``, where
    the attn2 hooks find it. None when the conditioning has none."""
    options = {**transformer_options, MCONDITION: kwargs.pop(MCONDITION, None)}
    return executor(x, timesteps, context, y, control, options, **kwargs)


# --- what AID Conditioning needs of ComfyUI ---------------------------------------------


def aid_attachment(model) -> AIDAttachment:
    """The AID an Apply-AID'd MODEL carries; ValueError naming the fix otherwise."""
    attachment = model.get_attachment(KEY) if hasattr(model, "get_attachment") else None
    if attachment is None:
        raise ValueError(
            "model: this MODEL has no AID applied, so there is no DQFormer to build the "
            "MCondition with; connect the MODEL output of Apply AID"
        )
    return attachment


def load_aid_modules(model, attachment: AIDAttachment) -> tuple[torch.device, torch.dtype]:
    """Loads the AID modules where ComfyUI runs the model; returns their device and dtype."""
    import comfy.model_management

    patchers = model.get_additional_models_with_key(KEY) or [attachment.patcher]
    comfy.model_management.load_models_gpu(patchers)
    parameter = next(attachment.parts.parameters())
    return parameter.device, parameter.dtype


def clip_image_outputs(clip_vision, clip_pixels: Tensor) -> tuple[Tensor, Tensor]:
    """(image_embeds (N, d_v), visual tokens (N, M, d_v)) of CLIP-preprocessed pixels.

    The tokens are CLIP's ``post_layernorm`` and ``visual_projection`` over every token of
    the last layer, as the library's e_v (``aid_model.aid.image_context``); ComfyUI's
    ``encode_image`` returns the last layer without them.
    """
    import comfy.model_management

    comfy.model_management.load_model_gpu(clip_vision.patcher)
    tower = clip_vision.model
    pixels = clip_pixels.to(clip_vision.load_device, torch.float32)
    last, _, image_embeds, _ = tower(pixel_values=pixels, intermediate_output=-2)
    tokens = tower.visual_projection(tower.vision_model.post_layernorm(last))
    device = comfy.model_management.intermediate_device()
    return image_embeds.float().to(device), tokens.float().to(device)


def encode_texts(clip, texts: list[str]) -> Tensor:
    """(N, 77, d) encodings of ``texts`` by ComfyUI's CLIP, in one batch, from open_clip's
    token ids.

    ComfyUI's own tokenizer cleans text differently from open_clip (curly quotes, HTML
    entities, ligatures and full-width forms, mojibake, literal special tokens: 8 of the
    22 probes of tests/fixtures/clip-text/tokenizer_check.json) and reads "(word:1.2)" as a
    prompt weight. AID was trained on open_clip's ids, so the library's tokenizer
    (open_clip's rules over the BPE files of the CLIP's own tokenizer: ComfyUI's
    ``comfy/sd1_tokenizer`` for OpenCLIP ViT-H, the world's files for the demo) makes the
    ids, and ComfyUI's tower encodes them (SD 2.x: penultimate layer, final LayerNorm).
    """
    ids = _open_clip_tokenizer(clip_tokenizer_dir(clip))(list(texts))  # (N, 77), pad 0
    rows = [[(token, 1.0) for token in row] for row in ids.tolist()]
    tokens = {key: rows for key in clip.tokenize("")}  # each of the CLIP's towers
    encoded = clip.encode_from_tokens(tokens)  # (1, N·77, d)
    return encoded.reshape(len(texts), -1, encoded.shape[-1]).float()


def clip_tokenizer_dir(clip) -> Path:
    """The folder of the BPE files (vocab.json, merges.txt) of ``clip``'s own tokenizer."""
    for tokenizer in vars(clip.tokenizer).values():
        folder = getattr(getattr(tokenizer, "tokenizer", None), "name_or_path", None)
        if folder and (Path(folder) / "vocab.json").is_file() \
                and (Path(folder) / "merges.txt").is_file():
            return Path(folder)
    raise ValueError(
        "clip: its tokenizer's BPE files (vocab.json, merges.txt) were not found, so its "
        "token ids cannot be made as AID was trained; connect the CLIP of Load CLIP (type "
        "stable_diffusion, OpenCLIP ViT-H/14 text weights) or of Load AID Demo Model"
    )


@functools.cache
def _open_clip_tokenizer(folder: Path):
    from aid_model.text_encoder.tokenizer import load_tokenizer

    return load_tokenizer(folder)


def mcondition_cond(mcondition: Tensor) -> dict:
    """``model_conds`` entry of a conditioning: the (T, L, d) MCondition, batched by
    ComfyUI with the other branches' and handed to ``move_mcondition`` as a keyword."""
    import comfy.conds

    return {MCONDITION: comfy.conds.CONDRegular(mcondition)}


def unet_size_factor(model) -> int:
    """The UNet's downsampling (2 per level after the first)."""
    levels = len(model.model.model_config.unet_config["channel_mult"])
    return 2 ** (levels - 1)
