"""`load_text_encoder`: one entry point for OpenCLIP/SD 2.x files and transformers folders."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from aid_model.safetensors_io import PICKLE_SUFFIXES, check_safetensors_file

from .checkpoint import read_openclip_text_tower
from .convert import openclip_to_transformers, text_config_from_openclip
from .encoder import TextEncoder
from .tokenizer import OpenCLIPTokenizer, has_tokenizer_files, load_tokenizer

try:  # transformers ≥ 5: build the model without running random init we overwrite anyway
    from transformers.initialization import no_init_weights
except ImportError:  # pragma: no cover - older transformers
    from contextlib import nullcontext as no_init_weights

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# A diffusers pipeline folder; its text_encoder stores the tower as the pipeline uses it.
_DIFFUSERS_INDEX = "model_index.json"


def _warn_unused(source: Path, keys: list[str]) -> None:
    if keys:
        shown = ", ".join(keys[:10]) + (f" … ({len(keys)} in all)" if len(keys) > 10 else "")
        warnings.warn(
            f"{str(source)!r}: {len(keys)} keys are not part of the text tower and were "
            f"not loaded: {shown}",
            stacklevel=4,  # the caller of load_text_encoder
        )


def _tokenizer_for(
    source: Path, tokenizer_dir: str | Path | None, candidates: list[Path], use_ftfy: bool | None
) -> OpenCLIPTokenizer:
    if tokenizer_dir is not None:
        return load_tokenizer(tokenizer_dir, use_ftfy=use_ftfy)
    for folder in candidates:
        if folder.is_dir() and has_tokenizer_files(folder):
            return load_tokenizer(folder, use_ftfy=use_ftfy)
    looked = ", ".join(repr(str(folder)) for folder in candidates)
    raise FileNotFoundError(
        f"no tokenizer for {str(source)!r}: looked in {looked} for vocab.json + merges.txt "
        "(or tokenizer.json); pass tokenizer_dir= a local folder that has them (nothing is "
        "downloaded)"
    )


def _load_openclip_file(path: Path, num_heads: int | None) -> CLIPTextModelWithProjection:
    openclip_state = read_openclip_text_tower(path)
    config = text_config_from_openclip(openclip_state, num_heads=num_heads, source=str(path))
    state, unused = openclip_to_transformers(openclip_state, source=str(path))
    _warn_unused(path, unused)
    with no_init_weights():
        model = CLIPTextModelWithProjection(config)
    # strict: the conversion already named any missing key, so a mismatch here is a bug.
    model.load_state_dict(state, strict=True)
    return model


def _load_transformers_folder(
    folder: Path, dtype: torch.dtype, num_heads: int | None
) -> CLIPTextModel | CLIPTextModelWithProjection:
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{str(folder)!r} has no config.json: expected a transformers text-encoder folder "
            "(config.json + model.safetensors); for an OpenCLIP or SD 2.x checkpoint pass "
            "the .safetensors file itself"
        )
    if not any((folder / name).is_file() for name in _WEIGHTS):
        pickled = [name for name in _PICKLED_WEIGHTS if (folder / name).is_file()]
        if pickled:
            check_safetensors_file(folder / pickled[0])  # raises the refusal with the fix
        raise FileNotFoundError(f"{str(folder)!r} has a config.json but no model.safetensors")
    config = CLIPTextConfig.from_pretrained(str(folder), local_files_only=True)
    if num_heads is not None and num_heads != config.num_attention_heads:
        raise ValueError(
            f"num_heads={num_heads} contradicts {str(folder / 'config.json')!r} "
            f"(num_attention_heads {config.num_attention_heads}); leave num_heads=None"
        )
    with_projection = "CLIPTextModelWithProjection" in (config.architectures or [])
    model_class = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    model, info = model_class.from_pretrained(
        str(folder),
        config=config,
        local_files_only=True,
        use_safetensors=True,
        dtype=dtype,
        attn_implementation="sdpa",
        output_loading_info=True,
    )
    missing = list(info.get("missing_keys", [])) + list(info.get("mismatched_keys", []))
    if missing:
        raise ValueError(
            f"{str(folder)!r}: weights missing or of the wrong shape for {config.architectures}: "
            f"{missing[:10]}"
        )
    _warn_unused(folder, list(info.get("unexpected_keys", [])))
    return model


def load_text_encoder(
    source: str | Path,
    tokenizer_dir: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    num_heads: int | None = None,
    use_ftfy: bool | None = None,
) -> TextEncoder:
    """Load OpenCLIP ViT-H/14's text tower (or any OpenCLIP-layout text tower), frozen.

    Args:
        source: one of
            * an open_clip ``.safetensors`` (``open_clip_model.safetensors``; text keys used,
              ``visual.*`` and ``logit_scale`` skipped);
            * an SD 2.x single-file ``.safetensors`` (``cond_stage_model.model.*`` used,
              UNet/VAE keys skipped);
            * a transformers folder (config.json + model.safetensors), e.g. one written by
              `TextEncoder.save_pretrained`, or the ``text_encoder`` folder of an SD 2.x
              diffusers pipeline (stored without its last block; see `TextEncoder`).
        tokenizer_dir: folder with vocab.json + merges.txt (or tokenizer.json). None: the
            source folder, the file's folder, or a diffusers pipeline's ``tokenizer``.
        dtype: parameter dtype (float32 reproduces open_clip bit for bit on CPU).
        device: where the tower runs.
        num_heads: attention heads of an OpenCLIP file (weights cannot tell). None:
            width // 64, OpenCLIP's convention (ViT-H/14: 16). Folders read their config.
        use_ftfy: text cleaning with ftfy (None: when importable); see `cleaning`.

    Returns:
        A frozen `TextEncoder` in eval mode.

    Raises:
        FileNotFoundError: missing source or tokenizer.
        ValueError: pickled file, wrong layout, missing keys, heads not dividing width.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"text encoder source {str(source)!r} does not exist")
    if not source.is_dir() and source.suffix.lower() in PICKLE_SUFFIXES:
        check_safetensors_file(source)  # raises the refusal with the conversion command
    # The tokenizer first: a missing one is found before gigabytes of weights are read.
    candidates = [source, source.parent / "tokenizer"] if source.is_dir() else [source.parent]
    tokenizer = _tokenizer_for(source, tokenizer_dir, candidates, use_ftfy)
    if source.is_dir():
        model = _load_transformers_folder(source, dtype, num_heads)
        ends_at_penultimate = (source.parent / _DIFFUSERS_INDEX).is_file()
    else:
        model = _load_openclip_file(source, num_heads)
        ends_at_penultimate = False
    model = model.to(device=device, dtype=dtype)
    return TextEncoder(model, tokenizer, ends_at_penultimate=ends_at_penultimate)
