"""How much a stage-2 model's denoiser listens to the instruction: #37's early screen.

Held-out instructed scenes of the synthetic world; each clip's latents x₀ are noised at a
few σ (one fixed ε a scene) and denoised twice with the full condition: once with the true
instruction, once with the same object sent the opposite way, each with the stand-in
prompter's states for its own instruction, as at prediction. Per σ, over the predicted
frames (latent units, the VAE's scale applied):

- ``difference``: mean |D_true − D_opposite|, how much the output depends on the text;
- ``error_true``, ``error_opposite``: mean (D − x₀)²; ``ratio`` = opposite / true, above 1
  when a wrong instruction costs the model.

A model that ignores the text scores difference 0 and ratio 1. Sampling a whole rollout
(``lab.benchmark``) says whether instructions are followed; this says in a minute whether
the text reaches the output at all, which an 800-step stage 2 already shows
(lab/NOTES.md, "Layout (d) grown from the layout-(c) base").

    python -m lab.miniature.text_probe --run runs/demo/aid --step 300 500 800
    python -m lab.miniature.text_probe --model demo_model
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from aid_model.synthetic import WorldConfig
from aid_model.synthetic.clip import SyntheticClip
from aid_model.synthetic.dataset import SyntheticClipDataset, clip_to_sample
from aid_model.synthetic.instructions import Instruction
from aid_model.synthetic.prompter import SyntheticStatePrompter
from aid_model.synthetic.world import OPPOSITE
from aid_model.train.config import ConditioningSection

SIGMAS = (0.5, 2.0, 8.0, 30.0)
NUM_SCENES = 12
FIRST_SCENE = 500  # held-out offset of the benchmark's fixed scenes (tests/test_demo_model.py)


@dataclass(frozen=True)
class SigmaRow:
    sigma: float
    difference: float
    error_true: float
    error_opposite: float

    @property
    def ratio(self) -> float:
        return self.error_opposite / self.error_true


def opposite_instruction(clip: SyntheticClip) -> str:
    """The clip's instruction with its direction reversed, in the generator's first wording."""
    command = clip.command
    if command is None:
        raise ValueError(f"clip {clip.seed} is random motion: it has no instruction to reverse")
    return Instruction(command.colour, command.shape, OPPOSITE[command.direction]).text()


def probe_samples(num_scenes: int = NUM_SCENES, first: int = FIRST_SCENE,
                  palette: str = "exact", num_states: int = 4) -> tuple[list[dict], list[dict]]:
    """(true, opposite): held-out clips in the sample contract, indices 0…n−1 (they key
    the cond_aug streams, so both lists draw the same), states from the stand-in prompter."""
    dataset = SyntheticClipDataset(num_scenes, split="heldout", seed=first,
                                   num_states=num_states, palette=palette)
    prompter = SyntheticStatePrompter(WorldConfig())
    true, opposite = [], []
    for index in range(num_scenes):
        clip = dataset.clip(index)
        first_frame = clip.frames[0]
        for texts, out in (([clip.instruction], true), ([opposite_instruction(clip)], opposite)):
            states = prompter.predict_states([first_frame], texts, num_states)[0]
            sample = clip_to_sample(clip)
            out.append({**sample, "instruction": texts[0], "states": states, "index": index})
    return true, opposite


@torch.no_grad()
def probe(model, text_encoder, samples: tuple[list[dict], list[dict]],
          sigmas: Sequence[float] = SIGMAS, conditioning: ConditioningSection | None = None,
          seed: int = 0) -> list[SigmaRow]:
    """The table above for ``model`` (an ``AIDModel`` with MCondition) on ``samples``
    (``probe_samples``), with a training run's micro-conditioning (default: the trainer's)
    and ``seed`` for ε."""
    from aid_model.conditioning import svd_added_time_ids
    from aid_model.train.data import collate_training
    from aid_model.train.features import FeatureEncoder
    from aid_model.train.loss import frame_mask
    from aid_model.train.module import AIDDenoisingModule

    conditioning = conditioning or ConditioningSection()
    motion_bucket_id = conditioning.motion_bucket_id
    device = next(model.unet.parameters()).device
    encoder = FeatureEncoder(model, text_encoder, conditioning.cond_aug, seed, vae_batch=64,
                             device=device)
    true, opposite = (encoder.from_batch(collate_training(list(batch)), 0, 0)
                      for batch in samples)
    denoise = AIDDenoisingModule(model).eval()
    scale = float(model.components.vae.config.scaling_factor)
    target = true.latents * scale
    batch = target.shape[0]
    # (B, T) over the predicted frames, broadcast over channels and cells.
    mask = frame_mask(target.shape[1], true.num_reference_frames.to(device), "predicted")
    weights = mask.reshape(batch, -1, 1, 1, 1).expand_as(target)
    time_ids = torch.cat([svd_added_time_ids(float(true.fps[i]), motion_bucket_id,
                                             float(true.cond_aug[i]))
                          for i in range(batch)]).to(device)
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(seed)).to(device)

    def mean(values: Tensor) -> float:
        return float((values * weights).sum() / weights.sum())

    rows = []
    for sigma in sigmas:
        noisy = target + sigma * noise
        sigma_batch = torch.full((batch,), float(sigma), device=device)
        outputs = [denoise(noisy, sigma_batch, f.image_embeddings, f.concat_latents, time_ids,
                           f.instruction_embeddings, f.state_embeddings, f.image_context)
                   for f in (true, opposite)]
        rows.append(SigmaRow(float(sigma), mean((outputs[0] - outputs[1]).abs()),
                             mean((outputs[0] - target) ** 2), mean((outputs[1] - target) ** 2)))
    return rows


def load_probed_model(svd: Path, text_encoder: Path, weights: Path,
                      unet_head_channels: int | None = None, clip_num_heads: int | None = None,
                      text_num_heads: int | None = None, tokenizer_dir: Path | None = None):
    """(AIDModel, text encoder) of a base, its text tower and AID weights, on the CPU."""
    from aid_model.aid import attach_aid_from_file
    from aid_model.svd import load_svd
    from aid_model.text_encoder import load_text_encoder

    components = load_svd(svd, unet_head_channels=unet_head_channels,
                          clip_num_heads=clip_num_heads)
    model = attach_aid_from_file(components, weights).eval()
    tower = load_text_encoder(text_encoder, tokenizer_dir=tokenizer_dir, num_heads=text_num_heads)
    return model, tower


def run_weights(run: Path, step: int | None) -> Path:
    """A run's EMA weights at checkpoint ``step``, or its exported final weights."""
    from aid_model.train.checkpoint import EMA_WEIGHTS_FILE, checkpoint_name
    from aid_model.train.trainer import FINAL_WEIGHTS

    path = (run / FINAL_WEIGHTS if step is None
            else run / "checkpoints" / checkpoint_name(step) / EMA_WEIGHTS_FILE)
    if not path.exists():
        kept = sorted(p.name for p in (run / "checkpoints").glob("step_*"))
        raise SystemExit(f"--run {run}: no {path.relative_to(run)} (checkpoints kept: "
                         f"{', '.join(kept) or 'none'}); give a kept --step")
    return path


def probe_run(run: Path, steps: Sequence[int | None], num_scenes: int = NUM_SCENES,
              palette: str = "exact") -> dict[str, list[dict]]:
    """``probe`` of each of ``steps`` of a training run (None: its final weights)."""
    from aid_model.train import load_train_config

    paths = {step: run_weights(run, step) for step in steps}  # all checked before any work
    config = load_train_config(run / "resolved_config.json")
    samples = probe_samples(num_scenes, palette=palette)
    results = {}
    for step, path in paths.items():
        model, tower = load_probed_model(
            Path(config.model.svd), Path(config.text_encoder.source), path,
            config.model.unet_head_channels, config.model.clip_num_heads,
            config.text_encoder.num_heads, config.text_encoder.tokenizer_dir)
        rows = probe(model, tower, samples, conditioning=config.conditioning, seed=config.seed)
        results["final" if step is None else str(step)] = as_records(rows)
    return results


def probe_model_folder(folder: Path, num_scenes: int = NUM_SCENES,
                       palette: str = "exact") -> dict[str, list[dict]]:
    """``probe`` of a model folder as ``make demo-train`` writes it (``demo_model/``)."""
    from aid_model.demo.load import demo_files

    parts = demo_files(folder)
    model, tower = load_probed_model(parts["svd"], parts["text_encoder"], parts["aid"])
    rows = probe(model, tower, probe_samples(num_scenes, palette=palette))
    return {str(folder): as_records(rows)}


def as_records(rows: Sequence[SigmaRow]) -> list[dict]:
    return [{"sigma": r.sigma, "difference": r.difference, "error_true": r.error_true,
             "error_opposite": r.error_opposite, "ratio": r.ratio} for r in rows]


def probe_table(results: dict[str, list[dict]]) -> str:
    """Markdown: one row a set of weights (a step, or a folder): the output difference
    and the error ratio at each σ."""
    sigmas = [row["sigma"] for row in next(iter(results.values()))]
    names = " / ".join(f"{s:g}" for s in sigmas)
    lines = [f"| weights | output difference at σ = {names} | error ratio at σ = {names} |",
             "|---|---|---|"]
    for step, rows in results.items():
        differences = " / ".join(f"{row['difference']:.4f}" for row in rows)
        ratios = " / ".join(f"{row['ratio']:.3f}" for row in rows)
        lines.append(f"| {step} | {differences} | {ratios} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path,
                        help="a stage-2 training folder (its resolved_config.json names the "
                        "base and the text tower)")
    source.add_argument("--model", type=Path,
                        help="a model folder as make demo-train writes it (demo_model/)")
    parser.add_argument("--step", type=int, nargs="*", default=[],
                        help="checkpoints to probe (their EMA weights); none: the final weights")
    parser.add_argument("--scenes", type=int, default=NUM_SCENES)
    parser.add_argument("--palette", choices=("exact", "varied"), default="exact")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the numbers here (JSON)")
    args = parser.parse_args(argv)
    if args.run is not None and not (args.run / "resolved_config.json").exists():
        raise SystemExit(f"--run {args.run}: no resolved_config.json; give the output_dir of "
                         "a training run")
    if args.model is not None and args.step:
        raise SystemExit("--step reads a training run's checkpoints; give --run, or no --step")
    torch.set_num_threads(args.threads)
    if args.model is not None:
        results = probe_model_folder(args.model, args.scenes, args.palette)
    else:
        results = probe_run(args.run, args.step or [None], args.scenes, args.palette)
    print(probe_table(results))
    if args.out is not None:
        from aid_model.atomic import atomic_write_file

        atomic_write_file(args.out, lambda p: p.write_text(json.dumps(results, indent=2)))


if __name__ == "__main__":
    main()
