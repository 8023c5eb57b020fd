"""The training configuration: one dataclass per section, read from YAML or JSON.

    config = load_train_config("configs/ssv2.yaml", ["optim.lr=5e-5", "loader.batch_size=2"])

Every key of a file and of an override is checked against the dataclasses below; an
unknown key or a value of the wrong type is a ``ConfigError`` naming the key. Two sections
are free-form: ``data`` (handed to ``aid_model.data.build_dataset``, which checks it) and
nothing else. ``aid`` holds ``AIDConfig`` fields and is checked against them.

Relative paths in a config (``model.svd``, ``text_encoder.source``, ``output_dir``, …) are
taken relative to the working directory of the command, as on a command line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aid_model.aid.config import AIDConfig

DTYPES = ("float32", "bfloat16", "float16")
MIXED_PRECISION = ("no", "bf16", "fp16")
LOSS_FRAMES = ("all", "predicted")
COND_AUG_DISTRIBUTIONS = ("fixed", "lognormal")
EXPORTS = ("ema", "raw")


class ConfigError(ValueError):
    """A training configuration that cannot be used; the message names the key."""


@dataclass
class ModelSection:
    """The frozen SVD base (``load_svd``).

    Attributes:
        svd: original single-file ``.safetensors`` or diffusers folder.
        unet_head_channels: channels per UNet attention head (SVD: 64).
        clip_num_heads: CLIP vision heads; None = OpenCLIP ViT-H's convention.
        dtype: dtype of the frozen weights (UNet, VAE, CLIP, text encoder). The trained
            parameters are always kept in float32 (they are AdamW's master weights).
        aid_weights: an AID weight file (a run's ``aid_final.safetensors``) to start the
            trained parameters from, to fine-tune a trained AID on other data; it must have
            been trained over the same base with the same ``aid`` section. None: AID's fresh
            initialisation. A resumed run takes its checkpoint's weights instead.
    """

    svd: str = ""
    unet_head_channels: int = 64
    clip_num_heads: int | None = None
    dtype: str = "float32"
    aid_weights: str | None = None


@dataclass
class TextEncoderSection:
    """The frozen text encoder (``load_text_encoder``); unused with ``aid.without_mcondition``.

    Attributes:
        source: OpenCLIP / SD 2.x ``.safetensors`` or a transformers folder.
        tokenizer_dir: folder with vocab.json + merges.txt; None = next to the source.
        num_heads: heads of an OpenCLIP file; None = width / 64.
    """

    source: str = ""
    tokenizer_dir: str | None = None
    num_heads: int | None = None


@dataclass
class LoaderSection:
    """Batches. ``batch_size`` is per process: the global batch is
    ``batch_size × world size × optim.grad_accumulation``."""

    batch_size: int = 1
    num_workers: int = 0


@dataclass
class CondAugSection:
    """SVD's conditioning noise augmentation (``cond_aug``), per sample.

    ``fixed``: always ``value`` (what prediction uses by default). ``lognormal``:
    exp(N(log_mean, log_std²)), centred on 0.02 by default; needs the frames at every
    step, so it cannot be combined with ``cache.latents``.
    """

    distribution: str = "fixed"
    value: float = 0.02
    log_mean: float = -3.912  # ln 0.02
    log_std: float = 0.5


@dataclass
class ConditioningSection:
    """Micro-conditioning besides the sample's own fps."""

    motion_bucket_id: float = 127.0
    cond_aug: CondAugSection = field(default_factory=CondAugSection)


@dataclass
class LossSection:
    """EDM loss (aid-method.md §1): σ ~ LogNormal(p_mean, p_std²), weight (σ²+1)/σ².

    ``frames``: ``all`` (default, see docs/training.md for why) or ``predicted`` (only the
    frames after the K given ones).
    """

    p_mean: float = 0.7
    p_std: float = 1.6
    frames: str = "all"


@dataclass
class DropoutSection:
    """InstructPix2Pix-style condition dropout: probabilities of dropping the text only,
    the frame only, and both (disjoint events, sum ≤ 1)."""

    text: float = 0.05
    frame: float = 0.05
    both: float = 0.05


@dataclass
class OptimSection:
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio × lr``.

    ``weight_decay`` applies to matrices and larger tensors only (not to biases, norms,
    gates). ``grad_clip`` ≤ 0 turns clipping off. ``max_steps`` counts optimizer steps.
    """

    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.01
    warmup_steps: int = 500
    max_steps: int = 20000
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    grad_accumulation: int = 1


@dataclass
class EMASection:
    """Exponential moving average of the trained weights.

    With ``warmup``, the decay of update n is min(decay, (1 + n) / (10 + n)), so early
    averages are not dominated by the untrained start.
    """

    enabled: bool = True
    decay: float = 0.9999
    warmup: bool = True


@dataclass
class RuntimeSection:
    """Where and how the computation runs.

    Attributes:
        device: ``auto`` (cuda:LOCAL_RANK when CUDA is available, else cpu), ``cpu``, ``cuda``.
        mixed_precision: ``no``, ``bf16`` or ``fp16`` autocast (fp16 adds a GradScaler;
            GPU only).
        gradient_checkpointing: diffusers' checkpointing on the base UNet.
        vae_batch: frames per VAE encoder call (memory bound of the online encoding).
        threads: CPU threads for torch; None = torch's default.
    """

    device: str = "auto"
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    vae_batch: int = 16
    threads: int | None = None


@dataclass
class CacheSection:
    """Pre-computed features (a pre-pass over the dataset, one safetensors file per sample).

    Attributes:
        latents: cache the VAE latents of the clip, the K reference latents (with a fixed
            cond_aug noise drawn once per sample) and the CLIP image features; training then
            never decodes a video.
        text: cache the instruction and state embeddings (and the null text).
        dir: cache folder; None = ``<output_dir>/cache``.
        dtype: stored dtype (float16 halves the size; float32 keeps training exact).
    """

    latents: bool = False
    text: bool = False
    dir: str | None = None
    dtype: str = "float32"


@dataclass
class LoggingSection:
    """Logs (rank 0). ``jsonl`` and ``loss_curve`` are relative to ``output_dir``; one
    JSONL record per optimizer step; a stdout line every ``every`` steps."""

    every: int = 10
    progress_bar: bool = True
    jsonl: str = "log.jsonl"
    loss_curve: str = "loss_curve.png"


@dataclass
class CheckpointSection:
    """Checkpoints in ``<output_dir>/checkpoints/step_NNNNNNNN/`` every ``every`` steps
    (0: only at the end), the last ``keep_last`` kept. ``export`` picks the weights of
    ``<output_dir>/aid_final.safetensors``: the ``ema`` weights (when EMA is on) or ``raw``."""

    every: int = 1000
    keep_last: int = 3
    export: str = "ema"


@dataclass
class TrainConfig:
    """A whole training run. ``data`` is free-form: it goes to ``build_dataset``."""

    output_dir: str = "runs/aid"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    text_encoder: TextEncoderSection = field(default_factory=TextEncoderSection)
    aid: AIDConfig = field(default_factory=AIDConfig)
    data: dict[str, Any] = field(default_factory=dict)
    loader: LoaderSection = field(default_factory=LoaderSection)
    conditioning: ConditioningSection = field(default_factory=ConditioningSection)
    loss: LossSection = field(default_factory=LossSection)
    dropout: DropoutSection = field(default_factory=DropoutSection)
    optim: OptimSection = field(default_factory=OptimSection)
    ema: EMASection = field(default_factory=EMASection)
    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    cache: CacheSection = field(default_factory=CacheSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (the form files and checkpoints store)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def validate(self) -> None:
        """Range and choice checks the types cannot express; raises ``ConfigError``."""
        _choice("model.dtype", self.model.dtype, DTYPES)
        _choice("runtime.mixed_precision", self.runtime.mixed_precision, MIXED_PRECISION)
        _choice("loss.frames", self.loss.frames, LOSS_FRAMES)
        _choice("conditioning.cond_aug.distribution", self.conditioning.cond_aug.distribution,
                COND_AUG_DISTRIBUTIONS)
        _choice("checkpoint.export", self.checkpoint.export, EXPORTS)
        _choice("cache.dtype", self.cache.dtype, DTYPES)
        if not self.model.svd:
            raise ConfigError("model.svd is empty: set it to an SVD checkpoint or diffusers folder")
        if self.aid.use_mcondition and not self.text_encoder.source:
            raise ConfigError(
                "text_encoder.source is empty: AID's MCondition needs the OpenCLIP text encoder "
                "(set text_encoder.source), or train with aid.without_mcondition=true"
            )
        for key, value in (("loader.batch_size", self.loader.batch_size),
                           ("optim.max_steps", self.optim.max_steps),
                           ("optim.grad_accumulation", self.optim.grad_accumulation),
                           ("logging.every", self.logging.every),
                           ("checkpoint.keep_last", self.checkpoint.keep_last),
                           ("runtime.vae_batch", self.runtime.vae_batch)):
            if value < 1:
                raise ConfigError(f"{key} must be at least 1, got {value}")
        for key, value in (("loader.num_workers", self.loader.num_workers),
                           ("optim.warmup_steps", self.optim.warmup_steps),
                           ("checkpoint.every", self.checkpoint.every),
                           ("optim.weight_decay", self.optim.weight_decay),
                           ("conditioning.cond_aug.value", self.conditioning.cond_aug.value),
                           ("conditioning.cond_aug.log_std", self.conditioning.cond_aug.log_std)):
            if value < 0:
                raise ConfigError(f"{key} must be >= 0, got {value}")
        for key, value in (("optim.lr", self.optim.lr), ("optim.eps", self.optim.eps),
                           ("loss.p_std", self.loss.p_std)):
            if not value > 0:
                raise ConfigError(f"{key} must be > 0, got {value}")
        if len(self.optim.betas) != 2 or not all(0 <= b < 1 for b in self.optim.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {self.optim.betas}")
        if not 0 <= self.optim.min_lr_ratio <= 1:
            raise ConfigError(
                f"optim.min_lr_ratio must be in [0, 1], got {self.optim.min_lr_ratio}")
        if not 0 < self.ema.decay < 1:
            raise ConfigError(f"ema.decay must be in (0, 1), got {self.ema.decay}")
        rates = {"dropout.text": self.dropout.text, "dropout.frame": self.dropout.frame,
                 "dropout.both": self.dropout.both}
        for key, value in rates.items():
            if not 0 <= value <= 1:
                raise ConfigError(f"{key} must be a probability in [0, 1], got {value}")
        if sum(rates.values()) > 1 + 1e-9:
            raise ConfigError(
                f"dropout.text + dropout.frame + dropout.both must be <= 1 (disjoint events), "
                f"got {sum(rates.values()):g}"
            )
        if self.cache.latents and self.conditioning.cond_aug.distribution != "fixed":
            raise ConfigError(
                "cache.latents stores the reference latents with one cond_aug noise per sample, "
                "so it needs conditioning.cond_aug.distribution=fixed (got "
                f"{self.conditioning.cond_aug.distribution!r}); turn one of them off"
            )
        if self.cache.text and self.aid.without_mcondition:
            raise ConfigError(
                "cache.text=true but aid.without_mcondition=true: a model without MCondition "
                "reads no text; set cache.text=false"
            )
        if self.runtime.threads is not None and self.runtime.threads < 1:
            raise ConfigError(f"runtime.threads must be at least 1, got {self.runtime.threads}")
        if not isinstance(self.data, dict) or not self.data:
            raise ConfigError(
                "data is empty: it is the dataset config handed to aid_model.data.build_dataset "
                "(at least data.name)"
            )


def _choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")


# --- reading, overriding, building ---------------------------------------------------------


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a ``.yaml``/``.yml`` or ``.json`` config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        yaml = _yaml()
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from None
    elif suffix == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON: {error}") from None
    else:
        raise ConfigError(f"{path}: config files must end in .yaml, .yml or .json")
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, found {type(values).__name__}")
    return values


def with_absolute_folders(values: Any) -> Any:
    """A copy of a JSON-like tree (settings, ``TrainConfig.to_dict()``) in which every
    string naming a file or folder that exists here is its absolute path.

    For comparing settings, not for storing them: one folder reached by two spellings
    (relative to the working directory, as config paths are, or absolute) is one setting.
    ``make demo-train`` names the miniature's folders absolutely and the stage-2 config
    relatively, so a feature cache or a run made by one was taken for other settings by
    the other. A string that names nothing here (a hub id, a moved folder, a choice such
    as ``"cpu"``) is kept as written.
    """
    if isinstance(values, dict):
        return {key: with_absolute_folders(value) for key, value in values.items()}
    if isinstance(values, list):
        return [with_absolute_folders(value) for value in values]
    if isinstance(values, str) and values and _names_a_path(values):
        return str(Path(values).resolve())
    return values


def _names_a_path(text: str) -> bool:
    # Path.exists raises for strings no file can have (too long a name): they name nothing.
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Reads a config file, applies ``key=value`` overrides, builds and validates it."""
    values = read_config_file(path)
    for override in overrides:
        apply_override(values, override)
    try:
        config = build_config(values)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return config


def build_config(values: dict[str, Any]) -> TrainConfig:
    """A checked ``TrainConfig`` from a nested mapping (missing keys take the defaults)."""
    config = _build_dataclass(TrainConfig, values, "")
    config.validate()
    return config


def with_current_defaults(values: dict[str, Any]) -> dict[str, Any] | None:
    """A stored run's config (a checkpoint's, a ``resolved_config.json``) read through
    today's schema: keys added since the run take their defaults, so an option added later
    (off by default, the run's behaviour) is no difference. None when this schema no longer
    reads it (a key removed, a value out of range)."""
    try:
        return build_config(values).to_dict()
    except ConfigError:
        return None


def apply_override(values: dict[str, Any], override: str) -> None:
    """Applies one ``a.b.c=value`` override to the raw mapping, type-checked against the
    schema: the key must exist (except inside ``data``), the value must fit its type."""
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    parts = key.split(".")
    hint: Any = TrainConfig
    target = values
    for depth, part in enumerate(parts):
        path = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if _is_free_form(hint):
            value = _parse_scalar(text) if last else None
            if last:
                target[part] = value
                return
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise ConfigError(f"{path} is {nested!r}, not a section; cannot set {key}")
            target = nested
            continue
        fields = _field_hints(hint)
        if part not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key {path!r} (known under this section: {known})")
        hint = fields[part]
        if last:
            # A string field takes the text as written ("0.10" stays "0.10", paths with
            # colons stay paths); everything else is parsed, then type-checked.
            raw = text.strip()
            if _accepts_str(hint):
                is_null = raw.lower() in ("null", "none", "~") and _accepts_none(hint)
                target[part] = None if is_null else raw
            else:
                target[part] = _coerce(_parse_scalar(text), hint, path)
            return
        if not (_is_dataclass_type(hint) or _is_free_form(hint)):
            raise ConfigError(f"{path} is a value, not a section; cannot set {key}")
        nested = target.setdefault(part, {})
        if not isinstance(nested, dict):
            raise ConfigError(f"{path} is {nested!r} in the file, not a section; cannot set {key}")
        target = nested


def _yaml():
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML ships with huggingface_hub
        raise ConfigError(
            "reading YAML configs needs PyYAML (pip install pyyaml); or write the config as JSON"
        ) from None
    return yaml


def _parse_scalar(text: str) -> Any:
    """An override's value: JSON (numbers, true/false/null, lists) if it parses, else YAML's
    reading, else the text itself. Types are enforced afterwards by ``_coerce``."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return _yaml().safe_load(text)
    except Exception:
        return text


def _accepts_str(hint: Any) -> bool:
    """str or an optional/union with str (not list[str], whose value is parsed)."""
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return hint is str or (is_union and str in typing.get_args(hint))


def _accepts_none(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _field_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _is_free_form(hint: Any) -> bool:
    return typing.get_origin(hint) is dict or hint is dict


def _build_dataclass(cls: type, values: Any, prefix: str) -> Any:
    where = prefix or "the config"
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping of keys, got {values!r}")
    hints = _field_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        first = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(
            f"unknown config key {first!r}"
            + (f" (and {len(unknown) - 1} more: {unknown[1:]})" if len(unknown) > 1 else "")
            + f"; known keys in {where}: {', '.join(sorted(hints))}"
        )
    kwargs = {}
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        return cls(**kwargs)
    except ValueError as error:  # AIDConfig's own checks
        raise ConfigError(f"{where}: {error}") from None


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` as type ``hint`` (int → float widening, nothing lossy), else ConfigError."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_null = value is None or (
            isinstance(value, str) and value.lower() in ("null", "none", "~"))
        if is_null and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits none of "
                          f"{[getattr(o, '__name__', str(o)) for o in options]}")
    if _is_dataclass_type(hint):
        return _build_dataclass(hint, value, key)
    if _is_free_form(hint):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        item = args[0] if args else Any
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "false", "no", "off"):
            return value.lower() in ("true", "yes", "on")
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{key} must be an integer, got {value!r}") from None
        if not number.is_integer():
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(number)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, bool):
            raise ConfigError(
                f"{key} must be a string, got {value!r}: YAML reads unquoted no/yes/on/off as "
                f"booleans; quote the value (\"no\")"
            )
        if value is None or isinstance(value, list | dict):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    if hint is Any:
        return value
    raise ConfigError(f"{key}: unsupported config type {hint!r}")  # a schema bug, not user's
