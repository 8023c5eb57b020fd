"""The miniature's benchmark: does it do what it is told, and which parts matter?

On held-out scenes of the synthetic world, each variant predicts T frames from the first
frame, the instruction and the states the world's stand-in VLM writes from that frame:

- direction accuracy: the named object's centroid moves the instructed way by ≥ 4 px
  between first and last frame, and every other object moves < 3 px;
- why the others failed, as shares of all clips: objects lost (an object of the first
  frame is not found in the last: dropped or recoloured), a short or wrong-way move of the
  named object, another object moved (``aid_model.synthetic.accuracy.FAILURES``);
- objects kept: the share of the first frames' objects found in the last frames (per
  object, where ``objects lost`` counts clips);
- background drift: how far the predicted frames 1…T−1 stray from predicted frame 0 away
  from every object (``lab.benchmark.drift``);
- mean pixel error against the ground-truth clip (frames after the given one);
- an FVD-style distance: the Fréchet distance of clip features from a fixed, seeded,
  random 3-D convolutional network (no I3D weights exist here), real vs predicted;
- the accuracy on the look-alike scenes (another object has the named object's colour, so
  only the shape word tells them apart) and on the others (``kind_rows``).

Variants: the base alone (no text: direction ≈ chance), full AID, and the paper's
ablations, each trained by the same trainer with the same budget
(``python -m lab.benchmark.benchmark``); and the ground truth through the miniature's VAE,
the ceiling no generator in its latent space can pass. ``--weights NAME=FILE`` scores
another AID weight file and ``--sampling NAME=KEY=VALUE,…`` the bundled model with other
sampling settings, each as a row compared with the bundled one scene by scene. ``--seed N``
scores another set of held-out scenes (kept in its own ``--out``), and ``--palette varied``
the same scenes each drawn in its own colours (``aid_model.synthetic.palette``; its own
``--out`` too). ``--trained-in DIR``
scores the variants DIR trained, e.g. on ``--scenes 1000`` into another ``--out``, without
training them again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from aid_model.demo.load import DEMO_OPTIONS, demo_files
from aid_model.demo.paths import AID_FILE, DEMO_DIR, MANIFEST, SVD_DIR, TEXT_ENCODER_DIR
from aid_model.pipeline.options import PredictionOptions
from aid_model.synthetic import SyntheticClip, SyntheticClipDataset
from aid_model.synthetic.accuracy import check_direction
from aid_model.synthetic.prompter import SyntheticStatePrompter
from aid_model.synthetic.world import PALETTES, WorldConfig
from lab.benchmark.drift import background_drift, far_from_objects
from lab.benchmark.sampling_rows import parse_sampling_rows
from lab.miniature.train_all import REPO, repo_relative

# Ablation switches per variant, as in the paper's tables (AIDConfig field names).
VARIANTS: dict[str, dict[str, bool]] = {
    "full AID": {},
    "w/o DE": {"without_de": True},
    "w/o ME": {"without_me": True},
    "w/o states": {"without_states": True},
    "w/o adapters": {"without_adapters": True},
    "w/o SA": {"without_sa": True},
    "w/o temporal adapters": {"without_sta": True, "without_lta": True},
}


class RandomClipFeatures(nn.Module):
    """A fixed random 3-D conv net: (N, T, 3, H, W) in [0, 1] → (N, 64) features.

    Seeded, never trained: a stand-in feature space for an FVD-style comparison when no
    I3D weights are available. Distances are comparable between variants, not with FVD.
    """

    def __init__(self, seed: int = 1234):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        widths = (3, 16, 32, 64)
        self.convs = nn.ModuleList(
            nn.Conv3d(a, b, kernel_size=3, stride=(1, 2, 2), padding=1)
            for a, b in itertools.pairwise(widths)
        )
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator)
                                  / (conv.weight[0].numel() ** 0.5))
                conv.bias.zero_()

    @torch.no_grad()
    def forward(self, clips: Tensor) -> Tensor:
        x = clips.permute(0, 2, 1, 3, 4) * 2.0 - 1.0  # (N, 3, T, H, W) in [-1, 1]
        for conv in self.convs:
            x = torch.relu(conv(x))
        return x.mean(dim=(2, 3, 4))


@dataclass
class VariantScores:
    """One row of the table. ``objects_lost``: the share of clips in which an object of the
    first frame is not found in the last (dropped or recoloured), the failure that caps
    direction accuracy whatever the instruction does. ``passed_scenes``: the direction check
    per scene in scene order, "1" passed and "0" failed (None: kept by a benchmark that did
    not record it), so that two rows can be compared scene by scene (``paired_rows``).
    ``short_moves`` and ``others_moved``: the shares of clips that kept every object but
    moved the named one less than 4 px the instructed way, or moved another one (None: kept
    by a benchmark that did not count them); with ``objects_lost`` and the accuracy they sum
    to 1. ``inputs``: the fingerprint of what the row was scored from (``row_inputs``; None:
    kept by a benchmark that did not record it). ``objects_kept``: the share of the first
    frames' objects found in the last frames, per object; ``background_drift``: the mean
    change of the predicted frames from the given one away from every object, in [0, 1]
    units (``lab.benchmark.drift``); both None when kept by a benchmark that did not
    measure them."""

    name: str
    direction_accuracy: float
    objects_lost: float
    pixel_error: float
    random_feature_distance: float
    scenes: int
    seconds: float
    passed_scenes: str | None = None
    short_moves: float | None = None
    others_moved: float | None = None
    inputs: str | None = None
    objects_kept: float | None = None
    background_drift: float | None = None

    def row(self) -> str:
        drift = "—" if self.background_drift is None else f"{self.background_drift:.4f}"
        return (f"| {self.name} | {100 * self.direction_accuracy:.1f} % | "
                f"{100 * self.objects_lost:.1f} % | {_percent(self.short_moves)} | "
                f"{_percent(self.others_moved)} | {_percent(self.objects_kept)} | {drift} | "
                f"{self.pixel_error:.4f} | {1e3 * self.random_feature_distance:.3f} | "
                f"{self.scenes} | {self.seconds:.0f} |")


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.1f} %"


# Columns a benchmark before them did not keep: such rows are shown, and scored again
# when a benchmark run needs them (``kept_scores``).
LATER_COLUMNS = frozenset({"passed_scenes", "short_moves", "others_moved", "inputs",
                           "objects_kept", "background_drift"})

# The random features are means over space and time, so distances are small: shown × 10³.
TABLE_HEADER = ("| variant | direction accuracy | objects lost | short or wrong-way move "
                "| another object moved | objects kept | background drift | mean pixel error "
                "| random-feature FD ×10³ | scenes | eval s |"
                "\n|---|---|---|---|---|---|---|---|---|---|---|")

# What a scorer predicts for a batch: the scenes' clips and their frames (T, H, W, 3) in
# [0, 1] → one video (T, H, W, 3) in [0, 1] per clip, frame 0 the given one.
Predictor = Callable[[list[SyntheticClip], list[Tensor], int], list[Tensor]]


def score_predictions(predict: Predictor, name: str, num_scenes: int = 200,
                      batch_size: int = 8, seed: int = 0,
                      palette: str = "exact") -> tuple[VariantScores, list[Tensor]]:
    """Scores ``predict`` on ``num_scenes`` held-out scenes drawn in ``palette`` ("exact"
    or "varied"; the direction check reads each clip's colours from its given frame there);
    also returns the first few predictions (T, H, W, 3) for a figure. ``predict`` gets each
    batch's first seed."""
    from aid_model.metrics import frechet_distance_from_features

    start = time.perf_counter()
    world = WorldConfig(palette=palette)
    scenes = SyntheticClipDataset(num_scenes, split="heldout", seed=seed, config=world)
    extractor = RandomClipFeatures()
    passed, errors, real_features, fake_features, examples = [], [], [], [], []
    failures, objects, drifts = Counter(), Counter(), []
    for first in range(0, num_scenes, batch_size):
        clips = [scenes.clip(i) for i in range(first, min(first + batch_size, num_scenes))]
        frames = [torch.from_numpy(c.frames).float() / 255.0 for c in clips]  # (T, H, W, 3)
        videos = predict(clips, frames, seed + first)
        for clip, truth, video in zip(clips, frames, videos, strict=True):
            check = check_direction(video[0].numpy(), video[-1].numpy(), clip.instruction,
                                    config=world)
            passed.append("1" if check.passed else "0")
            failures[check.failure] += 1
            objects.update(first=check.first_objects, kept=check.kept_objects)
            drift = background_drift(video, far_from_objects(clip.frames,
                                                             clip.palette.background))
            if drift is not None:
                drifts.append(drift)
            errors.append((video[1:] - truth[1:]).abs().mean().item())
        real_features.append(extractor(torch.stack(frames).permute(0, 1, 4, 2, 3)))
        fake_features.append(extractor(torch.stack(videos).permute(0, 1, 4, 2, 3)))
        if len(examples) < 4:
            examples.extend(videos[: 4 - len(examples)])
    distance = frechet_distance_from_features(torch.cat(real_features), torch.cat(fake_features))
    scores = VariantScores(name, passed.count("1") / num_scenes, failures["lost"] / num_scenes,
                           sum(errors) / len(errors), float(distance), num_scenes,
                           time.perf_counter() - start, "".join(passed),
                           failures["short move"] / num_scenes,
                           failures["other moved"] / num_scenes,
                           objects_kept=objects["kept"] / max(objects["first"], 1),
                           background_drift=sum(drifts) / len(drifts) if drifts else None)
    return scores, examples


def predict_with_stand_in_states(pipeline, prompter: SyntheticStatePrompter,
                                 starts: list[Tensor], instructions: list[str],
                                 seeds: list[int], options=DEMO_OPTIONS) -> list[Tensor]:
    """``pipeline``'s videos (T, H, W, 3) in [0, 1] from first frames (3, H, W) in [0, 1],
    each with its instruction, noise seed and the states ``prompter`` (the world's stand-in
    VLM) writes from that frame and instruction."""
    from aid_model.pipeline import PredictionRequest

    states = prompter.predict_states([s.permute(1, 2, 0).numpy() for s in starts],
                                     instructions, pipeline.num_states)
    requests = [PredictionRequest([s], text, st, seed=n)
                for s, text, st, n in zip(starts, instructions, states, seeds, strict=True)]
    return pipeline.predict_batch(requests, options)


def evaluate_pipeline(pipeline, name: str, num_scenes: int = 200, batch_size: int = 8,
                      seed: int = 0, options=DEMO_OPTIONS,
                      palette: str = "exact") -> tuple[VariantScores, list[Tensor]]:
    """Scores one pipeline: each scene's first frame, instruction and the states the
    world's stand-in VLM writes from that frame → ``options.num_frames`` frames. The
    scenes and the stand-in VLM are of ``palette``'s world."""
    prompter = SyntheticStatePrompter(WorldConfig(palette=palette))

    def predict(clips: list[SyntheticClip], frames: list[Tensor], first_seed: int) -> list[Tensor]:
        starts = [f[0].permute(2, 0, 1) for f in frames]  # (3, H, W)
        return predict_with_stand_in_states(
            pipeline, prompter, starts, [c.instruction for c in clips],
            [first_seed + i for i in range(len(clips))], options)

    return score_predictions(predict, name, num_scenes, batch_size, seed, palette)


def evaluate_autoencoder_ceiling(vae, name: str, num_scenes: int = 200, batch_size: int = 8,
                                 seed: int = 0, palette: str = "exact"
                                 ) -> tuple[VariantScores, list[Tensor]]:
    """Scores the ground-truth clips after a round trip through ``vae`` (frame 0 kept, as
    the pipeline keeps the given frame): what a perfect generator in this latent space
    would reach, the ceiling of every other row."""
    from aid_model.video_decode import decode_to_frames

    def predict(clips: list[SyntheticClip], frames: list[Tensor], first_seed: int) -> list[Tensor]:
        videos = []
        with torch.no_grad():
            for truth in frames:
                pixels = truth.permute(0, 3, 1, 2) * 2.0 - 1.0  # (T, 3, H, W) in [-1, 1]
                latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
                video = decode_to_frames(vae, latents.unsqueeze(0))[0]  # (T, H, W, 3)
                video[0] = truth[0]
                videos.append(video)
        return videos

    return score_predictions(predict, name, num_scenes, batch_size, seed, palette)


def variant_config(name: str, steps: int, work: Path, data_work: Path,
                   threads: int | None = None, device: str | None = None):
    """The bundled model's stage-2 config with only the variant's ablation switches changed
    (same data, feature cache, steps, seed), training into ``work/<slug>``. ``data_work`` is
    ``make demo-train``'s folder: its training set and feature cache are shared by every
    variant (the cache is computed once). ``threads`` (``--threads``) replaces the config's
    ``runtime.threads``, which the trainer applies when it starts: without it a run meant
    for both cores trained on one. ``device`` (``--device``) replaces ``runtime.device``."""
    from lab.miniature.train_all import stage2_config

    extra = [f"output_dir={work / variant_slug(name)}", f"optim.max_steps={steps}"]
    extra += [f"aid.{switch}=true" for switch in VARIANTS[name]]
    return stage2_config(data_work, DEMO_DIR, threads, extra, device)


def check_budget(name: str, steps: int, work: Path) -> None:
    """Refuses a ``work`` folder whose run of ``name`` has another step budget: its weights
    and kept scores would be taken for this budget's."""
    resolved = work / variant_slug(name) / "resolved_config.json"
    if not resolved.exists():
        return
    kept_steps = json.loads(resolved.read_text())["optim"]["max_steps"]
    if kept_steps != steps:
        raise SystemExit(
            f"--train-steps {steps}: {resolved.parent} holds a {kept_steps}-step run of "
            f"{name!r}; give another --out for {steps} steps (or --train-steps {kept_steps} "
            "to continue that table)")


def take_trained_runs(names: list[str], steps: int, source: Path, out: Path) -> None:
    """``--trained-in``: copies each variant's final weights and resolved config from
    ``source`` (a benchmark folder that trained them at ``steps``) into ``out``, so that
    ``out`` scores them (another ``--scenes`` or ``--seed``) without training them again.
    Refuses a variant ``source`` holds at another budget or has not finished, and one
    ``out`` already holds other weights of (its scores would be taken for these)."""
    from aid_model.evaluate.identity import file_identity

    for name in names:
        check_budget(name, steps, source)
        weights, target = variant_weights(name, source), variant_weights(name, out)
        if not weights.is_file():
            raise SystemExit(
                f"--trained-in {source}: no finished run of {name!r} there ({weights} is "
                f"missing); train it first (python -m lab.benchmark.benchmark --train-steps "
                f"{steps} --out {source} --variants {name!r}, resumable; make demo-ablations "
                "trains them all) or leave it out of --variants")
        if target.is_file():
            if file_identity(target) != file_identity(weights):
                raise SystemExit(
                    f"--trained-in {source}: {target} holds other weights of {name!r} than "
                    f"{weights}; give another --out, or delete {target.parent} to score "
                    "these")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights.parent / "resolved_config.json",
                        target.parent / "resolved_config.json")
        shutil.copyfile(weights, target)  # last: its presence marks a complete copy
        print(f"{name}: weights taken from {weights}", flush=True)


def train_variant(name: str, steps: int, work: Path, data_work: Path,
                  threads: int | None = None, device: str | None = None) -> Path:
    """Trains one variant (``variant_config``), resumable; returns its EMA weight file.
    Full AID is not trained a second time where it already was with the same settings:
    ``make demo-train``'s own stage-2 run when that run is there (``demo_train_run``), else
    the bundled weights when ``demo_model.json`` records these settings for them
    (``bundled_stage2``: a fresh clone has no run). Their weights and the resolved config
    they were trained with are copied."""
    from aid_model.train import FINAL_WEIGHTS, train

    weights = variant_weights(name, work)
    if weights.exists():
        return weights
    config = variant_config(name, steps, work, data_work, threads, device)
    kept: tuple[Path, str] | None = None
    if not VARIANTS[name]:
        if (run := demo_train_run(config, data_work)) is not None:
            kept = (run / FINAL_WEIGHTS, (run / "resolved_config.json").read_text())
        elif (recorded := bundled_stage2(config)) is not None:
            kept = (DEMO_DIR / AID_FILE, json.dumps(recorded, indent=2))
    if kept is None:
        train(config, resume="auto")
        return weights
    weights.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kept[0], weights)
    (weights.parent / "resolved_config.json").write_text(kept[1])
    print(f"{name}: {kept[0]} was trained with this config and budget; taken, not trained "
          "again", flush=True)
    return weights


def comparable_settings(values: dict) -> dict | None:
    """A run's settings as ``train_variant`` compares them: read through the config classes
    (keys added since the run take their defaults), folders spelled as ``repo_relative``
    spells them, without where it wrote and the threads and device it ran on (the random
    draws are the same on every device); None when they no longer load."""
    from aid_model.train.config import with_current_defaults

    current = with_current_defaults(values)
    if current is None:
        return None
    settings = repo_relative(current)
    settings.pop("output_dir", None)
    for where in ("threads", "device"):
        settings.get("runtime", {}).pop(where, None)
    return settings


def demo_train_run(config, data_work: Path) -> Path | None:
    """``make demo-train``'s stage-2 run folder (``data_work/aid``) when it finished with
    ``config``'s settings (``comparable_settings``); else None.
    Why: full AID at the bundled budget is that very run (same config, data, cache and
    seed), and training it again took a seventh of ``make demo-ablations`` (each of the
    four ablations measured took 1 h 55 min to 2 h 26 min on one core of two)."""
    from aid_model.train import FINAL_WEIGHTS

    run = data_work / "aid"
    resolved = run / "resolved_config.json"
    if not (resolved.is_file() and (run / FINAL_WEIGHTS).is_file()):
        return None
    kept = comparable_settings(json.loads(resolved.read_text()))
    return run if kept is not None and kept == comparable_settings(config.to_dict()) else None


def bundled_stage2(config) -> dict | None:
    """The resolved stage-2 config ``demo_model.json`` records for the bundled
    ``aid.safetensors`` when it has ``config``'s settings (``comparable_settings``) and the
    file is still the one it trained (same ``file_identity``); else None."""
    from aid_model.evaluate.identity import file_identity

    manifest = DEMO_DIR / MANIFEST
    if not manifest.is_file():
        return None
    stage2 = json.loads(manifest.read_text()).get("stage2") or {}
    recorded = stage2.get("resolved_config")
    if not isinstance(recorded, dict) or stage2.get("aid_identity") != file_identity(
            DEMO_DIR / AID_FILE):
        return None
    kept = comparable_settings(recorded)
    return recorded if kept is not None and kept == comparable_settings(config.to_dict()) else None


def variant_weights(name: str, work: Path) -> Path:
    """Where a retrained variant's EMA weights are (``variant_config``'s output folder)."""
    from aid_model.train import FINAL_WEIGHTS

    return work / variant_slug(name) / FINAL_WEIGHTS


def train_in_parallel(names: list[str], jobs: int, args: argparse.Namespace,
                      data_work: Path) -> None:
    """Trains and scores ``names`` in ``jobs`` child processes of this command (each with a
    ``--variants`` share, one thread), after filling the shared feature cache here so that
    no two children write it. Their output goes to ``<out>/job_<i>.log``."""
    from aid_model.train import train

    train(variant_config(names[0], args.train_steps, args.out, data_work, device=args.device),
          cache_only=True)
    shares = [names[start::jobs] for start in range(jobs) if names[start::jobs]]
    children = []
    for index, share in enumerate(shares):
        log = args.out / f"job_{index}.log"
        command = [sys.executable, "-m", "lab.benchmark.benchmark", "--scenes",
                   str(args.scenes), "--train-steps", str(args.train_steps), "--out",
                   str(args.out), "--data-work", str(data_work), "--seed", str(args.seed),
                   "--palette", args.palette, "--threads", str(args.threads),
                   "--device", args.device,
                   "--variants", ",".join(share)]
        print(f"job {index}: {', '.join(share)} (log: {log})", flush=True)
        with log.open("a") as output:
            children.append((share, log, subprocess.Popen(command, stdout=output,
                                                          stderr=subprocess.STDOUT)))
    failed = [(share, log) for share, log, child in children if child.wait() != 0]
    if failed:
        raise SystemExit("variants failed: " + "; ".join(
            f"{', '.join(share)} (see {log}; re-run the same command to resume)"
            for share, log in failed))


def variant_pipeline(weights: Path, device: str = "cpu"):
    """The miniature's base and text tower with the AID weights of one variant, on
    ``device``."""
    from aid_model.aid import attach_aid_from_file
    from aid_model.pipeline import AIDPipeline
    from aid_model.svd import load_svd
    from aid_model.text_encoder import load_text_encoder

    components = load_svd(DEMO_DIR / SVD_DIR, device=device)
    return AIDPipeline(components, attach_aid_from_file(components, weights),
                       load_text_encoder(DEMO_DIR / TEXT_ENCODER_DIR, device=device))


def variant_slug(name: str) -> str:
    """A file-name-safe form of a variant's name ("w/o DE" → "wo_DE")."""
    return "".join(c if c.isalnum() else "_" for c in name.replace("/", "")).strip("_")


def _kept_files(name: str, out: Path) -> tuple[Path, Path]:
    scores_file = out / "scores" / f"{variant_slug(name)}.json"
    return scores_file, scores_file.with_suffix(".pt")


def kept_scores(name: str, out: Path, complete: bool = True, inputs: str | None = None
                ) -> tuple[VariantScores, list[Tensor]] | None:
    """A variant's scores and examples as a run kept them in ``out/scores``; None when
    there are none, when an older benchmark kept other columns, or when ``inputs`` is given
    and they were scored from other inputs (all three are scored again). ``complete=False``
    also accepts scores kept before the ``LATER_COLUMNS`` were."""
    scores_file, examples_file = _kept_files(name, out)
    if not (scores_file.exists() and examples_file.exists()):
        return None
    kept = json.loads(scores_file.read_text())
    columns = {field.name for field in fields(VariantScores)}
    if not (set(kept) == columns
            or (not complete and columns - LATER_COLUMNS <= set(kept) <= columns)):
        return None
    if inputs is not None and kept.get("inputs") != inputs:
        return None
    return VariantScores(**kept), torch.load(examples_file, weights_only=True)


def scored_variant(name: str, out: Path, score: Callable[[], tuple[VariantScores, list[Tensor]]],
                   inputs: Callable[[], str] | None = None) -> tuple[VariantScores, list[Tensor]]:
    """``score()``'s result, kept in ``out/scores/<slug>.json`` and ``.pt`` (examples) so that
    an interrupted or split run (``--variants``) never scores a variant twice. ``inputs()``
    fingerprints what the row is scored from: kept scores of other inputs (a rebuilt model,
    a retrained weight file, another ``--scenes``) are scored again, not reused. It is asked
    again after ``score()``, which may have trained the weights it covers."""
    kept = kept_scores(name, out, inputs=inputs() if inputs else None)
    if kept is not None:
        return kept
    scores, examples = score()
    if inputs is not None:
        scores = replace(scores, inputs=inputs())
    scores_file, examples_file = _kept_files(name, out)
    scores_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(examples, examples_file)
    scores_file.write_text(json.dumps(scores.__dict__, indent=2))
    return scores, examples


# Examples of each row in the figure (the first held-out scenes).
FIGURE_EXAMPLES = 2

BASE_ROW = "base alone (no text)"
BUNDLED_ROW = "full AID (bundled)"
CEILING_ROW = "ground truth through the VAE (ceiling)"
# The base row: the bundled sampling settings without text guidance (the base has no text).
BASE_OPTIONS = DEMO_OPTIONS.with_(text_scale=0.0)


def row_inputs(name: str, scenes: int, out: Path, weight_rows: dict[str, Path],
               sampling_rows: dict[str, PredictionOptions] | None = None, seed: int = 0,
               palette: str = "exact") -> str:
    """The fingerprint of what row ``name`` is scored from: its model files by content
    (``file_identity``; a retrained variant's weights under ``out``, None before they are
    trained), the sampling options, the number of scenes, their ``seed`` and ``palette``
    (a row scored in one palette is never taken for the other). A file copied
    elsewhere keeps its fingerprint, so a ``--weights`` file later bundled matches the
    bundled row; a ``--sampling`` row (``sampling_rows``) is the bundled model with its own
    options."""
    from aid_model.evaluate.identity import file_identity, fingerprint

    bundled = demo_files()
    if name == BASE_ROW:
        files, options = {"svd": bundled["svd"]}, BASE_OPTIONS
    elif name == CEILING_ROW:
        files, options = {"vae": bundled["svd"] / "vae"}, None
    elif sampling_rows and name in sampling_rows:
        files, options = bundled, sampling_rows[name]
    else:
        if name != BUNDLED_ROW:
            bundled["aid"] = weight_rows.get(name) or variant_weights(name, out)
        files, options = bundled, DEMO_OPTIONS
    inputs = {"scenes": scenes,
              "files": {part: file_identity(path) if path.exists() else None
                        for part, path in files.items()},
              "options": asdict(options) if options else None}
    if seed:  # absent for seed 0, so that rows kept before --seed existed still match
        inputs["seed"] = seed
    if palette != "exact":  # likewise for rows kept before --palette existed
        inputs["palette"] = palette
    return fingerprint(inputs)


PAIRED_HEADER = ("| variant | scenes only full AID passes | scenes only this row passes "
                 "| difference | exact McNemar p |\n|---|---|---|---|---|")


def paired_rows(results: list[VariantScores]) -> list[str]:
    """Each row against full AID (the bundled row) on the same scenes, as Markdown rows
    under ``PAIRED_HEADER``: the discordant scenes and the exact McNemar p-value; rows
    without a per-scene record are named."""
    from aid_model.metrics.paired import paired_difference

    anchor = next((s for s in results if s.name == BUNDLED_ROW and s.passed_scenes), None)
    if anchor is None:
        return []
    rows = []
    for scores in results:
        if scores is anchor:
            continue
        if not scores.passed_scenes or scores.scenes != anchor.scenes:
            rows.append(f"| {scores.name} | no per-scene record on the same scenes (scored by "
                        "an older benchmark or on another number of scenes: score it again) "
                        "| | | |")
            continue
        paired = paired_difference(anchor.passed_scenes, scores.passed_scenes)
        rows.append(f"| {scores.name} | {paired.only_first} | {paired.only_second} | "
                    f"{100 * paired.difference:+.1f} points | {paired.p_value:.2g} |")
    return rows


KIND_HEADER = ("| variant | look-alike scenes | other scenes |\n|---|---|---|")


def kind_rows(results: list[VariantScores], seed: int = 0) -> list[str]:
    """Each row's direction accuracy on the look-alike scenes (the named object shares its
    colour with another object, so only the shape word tells them apart:
    ``lab.benchmark.lookalike``) and on the others, from its per-scene record, as
    Markdown rows under ``KIND_HEADER``. ``seed``: the held-out scenes the rows were scored
    on (``--seed``)."""
    from lab.benchmark.lookalike import lookalike_scenes

    kinds_of: dict[int, str] = {}
    rows = []
    for scores in results:
        if not scores.passed_scenes:
            rows.append(f"| {scores.name} | — | — |")
            continue
        if scores.scenes not in kinds_of:
            kinds_of[scores.scenes] = lookalike_scenes(scores.scenes, seed=seed)
        kinds = kinds_of[scores.scenes]
        cells = []
        for kind in "10":
            chosen = [p for p, k in zip(scores.passed_scenes, kinds, strict=True) if k == kind]
            passed = chosen.count("1")
            share = f"{100 * passed / len(chosen):.1f} %" if chosen else "—"
            cells.append(f"{share} ({passed} / {len(chosen)})")
        rows.append(f"| {scores.name} | {cells[0]} | {cells[1]} |")
    return rows


def print_table(results: list[VariantScores], seed: int = 0, palette: str = "exact") -> None:
    """Under a title naming the scenes (``seed``, ``palette``): the Markdown table, the
    accuracy on look-alike scenes and on the others, then each row against full AID scene
    by scene when the kept scores allow it. Look-alike scenes are the same in both palettes
    (a varied clip is its exact twin's scene in other colours)."""
    print(f"held-out scenes of seed {seed}, {palette} palette:")
    print(TABLE_HEADER)
    for scores in results:
        print(scores.row())
    if any(scores.passed_scenes for scores in results):
        print("\ndirection accuracy by scene kind (look-alike: another object has the named "
              "object's colour):")
        print(KIND_HEADER)
        print("\n".join(kind_rows(results, seed)))
    paired = paired_rows(results)
    if paired:
        print(f"\npaired against {BUNDLED_ROW}, on the same scenes and seeds:")
        print(PAIRED_HEADER)
        print("\n".join(paired))


def example_labels(scores: VariantScores, instructions: list[str]) -> list[str]:
    """The figure's labels of a row's first examples, one per instruction (examples are
    the first held-out scenes, in order): the variant, the scene, its instruction and
    whether the row passed there (no verdict for scores kept before verdicts were)."""
    labels = []
    for scene, instruction in enumerate(instructions):
        verdict = ""
        if scores.passed_scenes and scene < len(scores.passed_scenes):
            verdict = ": passes" if scores.passed_scenes[scene] == "1" else ": fails"
        labels.append(f'{scores.name}, scene {scene} "{instruction}"{verdict}')
    return labels


def write_table(results: list[VariantScores], examples: list[list[Tensor]], out: Path,
                seed: int = 0, palette: str = "exact") -> None:
    """Prints the Markdown table (``print_table``); writes ``out/scores.json`` and
    ``out/rollouts.png``: the first ``FIGURE_EXAMPLES`` of each row's ``examples`` (one list
    per row of ``results``), each labelled with its variant, scene, instruction and
    verdict."""
    from aid_model.video_io import write_contact_sheet

    print_table(results, seed, palette)
    scenes = SyntheticClipDataset(FIGURE_EXAMPLES, split="heldout", seed=seed)
    instructions = [scenes.clip(i).instruction for i in range(FIGURE_EXAMPLES)]
    figure_rows, labels = [], []
    for scores, videos in zip(results, examples, strict=True):
        shown = videos[:FIGURE_EXAMPLES]
        figure_rows.extend(shown)
        labels.extend(example_labels(scores, instructions[: len(shown)]))
    write_contact_sheet(figure_rows, out / "rollouts.png", labels=labels)
    (out / "scores.json").write_text(json.dumps([s.__dict__ for s in results], indent=2))


def write_kept_table(out: Path, weight_rows: dict[str, Path] | None = None,
                     sampling_rows: dict[str, PredictionOptions] | None = None,
                     seed: int = 0, palette: str = "exact") -> None:
    """The table and figure of every row whose scores ``out/scores`` keeps (nothing is
    trained or scored), the ``weight_rows`` (``--weights``) and ``sampling_rows``
    (``--sampling``) last; the rows not scored yet are named, and so are the rows scored
    from other files, settings or scenes (``seed``, ``palette``) than the current ones (a
    benchmark run would score them again)."""
    weight_rows = weight_rows or {}
    sampling_rows = sampling_rows or {}
    results, examples, missing, stale = [], [], [], []
    for name in (BASE_ROW, BUNDLED_ROW, CEILING_ROW, *VARIANTS, *weight_rows, *sampling_rows):
        kept = kept_scores(name, out, complete=False)
        if kept is None:
            missing.append(name)
            continue
        results.append(kept[0])
        examples.append(kept[1])
        if kept[0].inputs != row_inputs(name, kept[0].scenes, out, weight_rows,
                                        sampling_rows, seed, palette):
            stale.append(name)
    if not results:
        raise SystemExit(f"--kept-only: no scores kept in {out / 'scores'}; run the benchmark "
                         "with the same --out first")
    write_table(results, examples, out, seed, palette)
    if missing:
        print(f"not scored yet: {', '.join(missing)}")
    if stale:
        print("scored from other files, settings or scenes than the current ones, or before "
              "those "
              "were recorded (a benchmark run with this --out scores them again): "
              f"{', '.join(stale)}")


SEED_FILE = "seed.json"


def claim_scenes(out: Path, seed: int, palette: str = "exact", record_it: bool = True) -> None:
    """Makes sure ``out`` keeps the scores of one set of scenes: refuses when ``out``
    already holds another seed's or palette's (a folder of scores without the record was
    written before ``--seed`` existed, i.e. with seed 0; a record without a palette before
    ``--palette`` did, i.e. exact), else records both there (``record_it``; not for
    ``--kept-only``, which writes no scores). Kept rows are reused by name, so two sets of
    scenes in one folder would score rows again over each other's."""
    record = out / SEED_FILE
    kept = json.loads(record.read_text()) if record.exists() else (
        {"seed": 0} if (out / "scores").exists() else None)
    if kept is not None and kept["seed"] != seed:
        raise SystemExit(f"--out {out} keeps the scores of --seed {kept['seed']}, not {seed}: "
                         f"give --seed {kept['seed']}, or another --out for seed {seed}")
    kept_palette = kept.get("palette", "exact") if kept is not None else palette
    if kept_palette != palette:
        raise SystemExit(f"--out {out} keeps the scores of --palette {kept_palette}, not "
                         f"{palette}: give --palette {kept_palette}, or another --out for the "
                         f"{palette} palette")
    if record_it:
        out.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"seed": seed, "palette": palette}))


def parse_weight_rows(items: list[str]) -> dict[str, Path]:
    """``--weights NAME=FILE`` items → {row name: AID weight file}; refuses a missing file,
    an empty name or one the table already uses (its kept scores would be taken)."""
    rows: dict[str, Path] = {}
    taken = {BASE_ROW, BUNDLED_ROW, CEILING_ROW, *VARIANTS}
    for item in items:
        name, _, file = item.partition("=")
        name = name.strip()
        if not name or not file:
            raise SystemExit(f"--weights {item!r}: give NAME=FILE, e.g. "
                             "--weights \"5,000 steps=runs/aid_5k/aid_final.safetensors\"")
        if name in taken or name in rows:
            raise SystemExit(f"--weights {item!r}: the row name {name!r} is taken; choose "
                             "another name")
        if not Path(file).is_file():
            raise SystemExit(f"--weights {item!r}: no file {file}; give an AID weight file "
                             "(a training run's aid_final.safetensors)")
        rows[name] = Path(file)
    return rows


def check_something_to_score(variants: str | None, chosen: list[str], train_steps: int,
                             weight_rows: dict, sampling_rows: dict) -> None:
    """Refuses a command that would score nothing: ``--variants`` given (which leaves out
    the base, bundled and ceiling rows) while naming no variant to retrain with
    ``--train-steps`` and no ``--weights`` or ``--sampling`` row."""
    if variants is None or weight_rows or sampling_rows or (chosen and train_steps):
        return
    if chosen:
        raise SystemExit(
            f"--variants {variants!r} without --train-steps: the variants are retrained, "
            "give --train-steps N (the bundled model's budget is 4500), or leave out "
            "--variants to score the base, bundled and ceiling rows")
    raise SystemExit(
        f"--variants {variants!r} chooses no variant and no --weights or --sampling row "
        "was given: nothing to score; leave out --variants to score the base, bundled and "
        "ceiling rows, or add --weights NAME=FILE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--train-steps", type=int, default=0,
                        help="also retrain every variant of VARIANTS with this many steps "
                        "(same budget each) and score it; 0: the base and the bundled model only")
    parser.add_argument("--variants", default=None,
                        help="comma-separated subset of the retrained variants (default: all); "
                        "two processes with disjoint subsets share the work of one table, and a "
                        "last run without --variants prints it from the kept scores; \"\" "
                        "for none (only the --weights rows)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="train the retrained variants in this many processes at once "
                        "(one per CPU core), then print the whole table; no effect with "
                        "--trained-in, which trains nothing (use --threads 2 there)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads of this process (and of each --jobs child): 1 "
                        "(default) was measured faster for two jobs on 2 cores; 2 trains one "
                        "variant alone on 2 cores about 1.7 times as fast as one thread beside "
                        "another job (docs/results.md)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the variants train and every row samples (and each --jobs "
                        "child); the random draws are the same on both")
    parser.add_argument("--seed", type=int, default=0,
                        help="score on the held-out scenes (and noise seeds) of this seed: 0 "
                        "(default) the benchmark's, e.g. 1000 for a second set of scenes")
    parser.add_argument("--palette", choices=PALETTES, default="exact",
                        help="the held-out scenes' colours: exact (default; the world's own "
                        "grey and primaries) or varied (the same scenes, each drawn in its "
                        "own grey, primaries and edge smoothing); the direction check and the "
                        "stand-in VLM read each scene's colours from its given frame")
    parser.add_argument("--out", type=Path, default=None,
                        help="where scores are kept (default runs/bench_demo, with _seed<N> "
                        "for --seed N and _varied for --palette varied): one folder per "
                        "--seed and --palette, since a row is kept once, by name")
    parser.add_argument("--kept-only", action="store_true",
                        help="train and score nothing: print the table (and write the figure) "
                        "of the rows whose scores --out keeps")
    parser.add_argument("--weights", action="append", default=[], metavar="NAME=FILE",
                        help="also score this AID weight file over the bundled base as a row "
                        "named NAME, compared with the bundled row scene by scene (repeatable; "
                        "scores are kept by name with a fingerprint of the files they came "
                        "from: a changed file is scored again)")
    parser.add_argument("--sampling", action="append", default=[],
                        metavar="NAME=KEY=VALUE[,KEY=VALUE…]",
                        help="also score the bundled model sampled with these settings "
                        "changed from the demo's (PredictionOptions fields, e.g. "
                        "\"s_f 2.5=frame_scale=2.5,text_scale=4\") as a row named NAME, "
                        "compared with the bundled row scene by scene (repeatable)")
    parser.add_argument("--trained-in", type=Path, default=None, metavar="DIR",
                        help="score the variants trained in this benchmark folder (same "
                        "--train-steps) instead of training them under --out: e.g. --scenes "
                        "1000 --out runs/bench_1000 --trained-in runs/bench_demo scores the "
                        "table of make demo-ablations on 1,000 scenes")
    parser.add_argument("--data-work", type=Path, default=REPO / "runs" / "demo",
                        help="make demo-train's work folder: the training set and feature "
                        "cache every variant shares (written there when missing)")
    args = parser.parse_args()
    if args.seed < 0:
        raise SystemExit(f"--seed {args.seed}: give 0 (the benchmark's scenes) or a positive "
                         "seed")
    if args.out is None:
        args.out = Path("runs/bench_demo" + (f"_seed{args.seed}" if args.seed else "")
                        + ("_varied" if args.palette != "exact" else ""))
    if args.threads < 1:
        raise SystemExit(f"--threads {args.threads}: give 1 or more")
    torch.set_num_threads(args.threads)
    # --variants "" chooses none of them: with --weights, only those rows are scored.
    chosen = list(VARIANTS) if args.variants is None else [
        name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs}: give 1 or more processes")
    if args.trained_in is not None and not args.train_steps:
        raise SystemExit(f"--trained-in {args.trained_in}: give the --train-steps the variants "
                         "were trained with there (the bundled budget is 4500)")
    for name in chosen if args.train_steps else ():
        check_budget(name, args.train_steps, args.out)
    weight_rows = parse_weight_rows(args.weights)
    sampling_rows = parse_sampling_rows(
        args.sampling, DEMO_OPTIONS, [BASE_ROW, BUNDLED_ROW, CEILING_ROW, *VARIANTS, *weight_rows])
    if not args.kept_only:
        check_something_to_score(args.variants, chosen, args.train_steps, weight_rows,
                                 sampling_rows)
    claim_scenes(args.out, args.seed, args.palette, record_it=not args.kept_only)
    if args.kept_only:
        write_kept_table(args.out, weight_rows, sampling_rows, args.seed, args.palette)
        return
    if args.trained_in is not None:  # before any scoring: a refusal comes at once
        take_trained_runs(chosen, args.train_steps, args.trained_in, args.out)
    from aid_model.demo.load import load_demo_pipeline
    from aid_model.demo.paths import DEMO_DIR, SVD_DIR
    from aid_model.pipeline import AIDPipeline
    from aid_model.svd import load_svd

    started = time.perf_counter()
    results, examples_per_row = [], []

    def record(name: str, score: Callable[[], tuple[VariantScores, list[Tensor]]]) -> None:
        scores, examples = scored_variant(
            name, args.out, score,
            lambda: row_inputs(name, args.scenes, args.out, weight_rows, sampling_rows,
                               args.seed, args.palette))
        results.append(scores)
        examples_per_row.append(examples)
        print(scores.row(), flush=True)

    # The bundled model, loaded once for its row and the --sampling rows.
    demo = (load_demo_pipeline(args.device) if args.variants is None or sampling_rows
            else None)
    if args.variants is None:
        # The stage-1 base alone, loaded afresh: the demo's UNet carries AID's adapters.
        base = AIDPipeline(load_svd(DEMO_DIR / SVD_DIR, device=args.device))
        base_options = BASE_OPTIONS.with_(num_frames=demo.aid.config.num_frames)
        record(BASE_ROW, lambda: evaluate_pipeline(base, BASE_ROW, args.scenes,
                                                   seed=args.seed, options=base_options,
                                                   palette=args.palette))
        record(BUNDLED_ROW, lambda: evaluate_pipeline(demo, BUNDLED_ROW, args.scenes,
                                                      seed=args.seed, palette=args.palette))
        record(CEILING_ROW, lambda: evaluate_autoencoder_ceiling(
            demo.components.vae, CEILING_ROW, args.scenes, seed=args.seed,
            palette=args.palette))
    for name, weights in weight_rows.items():
        record(name, lambda name=name, weights=weights: evaluate_pipeline(
            variant_pipeline(weights, args.device), name, args.scenes, seed=args.seed,
            palette=args.palette))
    for name, options in sampling_rows.items():
        record(name, lambda name=name, options=options: evaluate_pipeline(
            demo, name, args.scenes, seed=args.seed, options=options, palette=args.palette))
    if args.train_steps:
        data_work = args.data_work.resolve()  # the same absolute paths as make demo-train's
        trains = args.trained_in is None  # else every variant's weights are in --out now
        if trains and not (data_work / "synthetic_train" / "annotations.jsonl").exists():
            from lab.miniature.train_all import write_training_set

            write_training_set(data_work / "synthetic_train")
        if trains and args.jobs > 1 and len(chosen) > 1:
            # The children train and score; the loop below then finds both kept.
            train_in_parallel(chosen, args.jobs, args, data_work)
        for name in chosen:
            record(name, lambda name=name: evaluate_pipeline(
                variant_pipeline(train_variant(name, args.train_steps, args.out, data_work,
                                               args.threads, args.device), args.device),
                name, args.scenes, seed=args.seed, palette=args.palette))
    if args.variants is None:
        write_table(results, examples_per_row, args.out, args.seed, args.palette)
    else:
        print_table(results, args.seed, args.palette)
    print(f"wall time of this run: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
