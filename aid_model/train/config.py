"""The training configuration: one dataclass per section, read from YAML or JSON.

    config = load_train_config("configs/ssv2.yaml", ["optim.lr=5e-5", "loader.batch_size=2"])

The dataclasses below are the schema and hold every default. ``from_dict`` builds them from
a nested mapping and refuses, in one line naming the dotted key, a key they lack and a value
of another type; ``TrainConfig.validate`` then checks ranges and combinations. ``data`` is
free-form (handed to ``aid_model.data.build_dataset``, which checks it); ``aid`` holds
``AIDConfig`` fields and is checked by ``AIDConfig`` itself.

Relative paths in a config (``model.svd``, ``text_encoder.source``, ``output_dir``, …) are
taken relative to the working directory of the command, as on a command line.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from aid_model.aid.config import EXPERIMENTS_COMMIT, AIDConfig

Dtype = Literal["float32", "bfloat16", "float16"]

class ConfigError(ValueError):
    """A training configuration that cannot be used; the message names the key."""


class _YAMLLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a number without a dot (``5e-5``, ``1e4``) is a float, as
    in YAML 1.2 and JSON: PyYAML follows YAML 1.1, which reads it as text, and a config
    (or a JSON dump saved as .yaml) would then fail the number check."""


_YAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."))


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
    dtype: Dtype = "float32"
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

    distribution: Literal["fixed", "lognormal"] = "fixed"
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
    frames: Literal["all", "predicted"] = "all"


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
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
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
    dtype: Dtype = "float32"


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
    export: Literal["ema", "raw"] = "ema"


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
        """Range and combination checks the types cannot express; raises ``ConfigError``."""
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
        if not self.data:
            raise ConfigError(
                "data is empty: it is the dataset config handed to aid_model.data.build_dataset "
                "(at least data.name)"
            )


# --- reading, overriding, building ---------------------------------------------------------


def from_dict(cls: type, values: Any, key: str = "") -> Any:
    """The dataclass ``cls`` from a nested mapping, strictly: a missing key takes its field's
    default, a key the class lacks or a value
    of another type is a ``ConfigError`` naming the dotted key, the value and the fix.

    Values are not converted, only widened: an int is a float, an integral float an int
    (``--set optim.warmup_steps=1e2`` reads a float); a tuple is a list. ``key`` is the
    dotted prefix of ``values`` in the whole config ("" at the top).
    """
    where = key or "the config"
    if values is None:  # a YAML section with nothing under it
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for name, value in values.items():
        path = f"{key}.{name}" if key else name
        if name in known:
            kwargs[name] = _typed(value, hints[name], path)
        else:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            fix = f"did you mean '{key + '.' if key else ''}{close[0]}'? " if close else ""
            raise ConfigError(f"unknown config key {path!r} (= {value!r}); {fix}"
                              f"known keys in {where}: {', '.join(known)} (a run of another "
                              f"version: experiments since removed run at commit "
                              f"{EXPERIMENTS_COMMIT})")
    try:
        return cls(**kwargs)
    except ValueError as error:  # AIDConfig's own checks
        raise ConfigError(f"{where}: {error}") from None


def _typed(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the field type ``hint`` (``from_dict``'s rules)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
    if origin in (typing.Union, types.UnionType):  # ``X | None``, the only union used
        if value is None:
            return None
        return _typed(value, next(a for a in args if a is not type(None)), key)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if origin is dict:
        if value is None or isinstance(value, dict):
            return dict(value or {})
        expected = "a mapping"
    elif origin is list:
        if isinstance(value, list | tuple):
            return [_typed(item, args[0], f"{key}[{i}]") for i, item in enumerate(value)]
        expected = "a list"
    elif hint is bool:
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif hint is int:
        if number and (isinstance(value, int) or value.is_integer()):
            return int(value)
        expected = "an integer"
    elif hint is float:
        if number and math.isfinite(value):
            return float(value)
        expected = "a number"
    elif origin is Literal or hint is str:
        if isinstance(value, str) and (hint is str or value in args):
            return value
        expected = f"one of {list(args)}" if args else "a string"
    else:
        raise TypeError(f"{key}: the config schema uses {hint!r}, which from_dict does not read")
    fix = ""
    if isinstance(value, bool) and (hint is str or origin is Literal):
        fix = ': YAML reads unquoted no/yes/on/off as booleans; quote the value ("no")'
    elif number and (hint is str or origin is Literal):
        fix = f': quote the value ("{value}") for the text'
    raise ConfigError(f"{key} must be {expected}, got {value!r}{fix}")


def build_config(values: dict[str, Any]) -> TrainConfig:
    """A checked ``TrainConfig`` from a nested mapping (missing keys take the defaults)."""
    config = from_dict(TrainConfig, values)
    config.validate()
    return config


def with_current_defaults(values: dict[str, Any]) -> dict[str, Any] | None:
    """A stored run's config (a checkpoint's, a ``resolved_config.json``) read through
    today's schema: keys added since the run take their defaults and removed experiments
    that were off are dropped, so neither is a difference. None when this schema no longer
    reads it (a removed experiment on, a value out of range)."""
    try:
        return build_config(values).to_dict()
    except ConfigError:
        return None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a ``.yaml``/``.yml`` or ``.json`` config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text (byte {error.start}: {error.reason}); "
                          "expected a YAML or JSON config file") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            values = yaml.load(text, _YAMLLoader)
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


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Reads a config file, applies ``key=value`` overrides, builds and validates it."""
    values = read_config_file(path)
    for override in overrides:
        apply_override(values, override)
    try:
        return build_config(values)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def apply_override(values: dict[str, Any], override: str) -> None:
    """Sets one ``a.b.c=value`` override in the raw mapping; ``from_dict`` checks it after.

    A field that takes text (a path, a choice) takes the text as written ("0.10" stays
    "0.10", a path with colons stays a path; ``null`` is None where None is allowed); any
    other value is read as in a YAML file (``5e-5``, ``yes``, ``[0.9, 0.99]``), or is the
    text itself where it is no YAML.
    """
    key, sep, text = override.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not all(parts):
        raise ConfigError(f"override {override!r} must look like section.key=value")
    hint: Any = TrainConfig
    target = values
    for depth, part in enumerate(parts):
        hint = typing.get_type_hints(hint).get(part) if dataclasses.is_dataclass(hint) else None
        if depth == len(parts) - 1:
            target[part] = _override_value(text.strip(), hint)
            return
        path = ".".join(parts[: depth + 1])
        if hint is not None and not (dataclasses.is_dataclass(hint)
                                     or typing.get_origin(hint) is dict):
            raise ConfigError(f"{path} is a value, not a section; cannot set {key}")
        if target.get(part) is None:
            target[part] = {}
        if not isinstance(target[part], dict):
            raise ConfigError(f"{path} is {target[part]!r} in the file, not a section; "
                              f"cannot set {key}")
        target = target[part]


def _override_value(text: str, hint: Any) -> Any:
    args = typing.get_args(hint)
    if hint is str or str in args or typing.get_origin(hint) is Literal:
        return None if type(None) in args and text.lower() in ("null", "none", "~") else text
    try:
        return yaml.load(text, _YAMLLoader)
    except yaml.YAMLError:
        return text


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
