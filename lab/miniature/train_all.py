"""``make demo-train``: the bundled miniature from scratch, every stage resumable.

1. stage 1 (``build_base``): the VAE and the base image-to-video UNet on random motion,
   and the random frozen text tower with the world's tokenizer → ``demo_model/svd``,
   ``demo_model/text_encoder``;
2. the instructed training set in the generic format (``python -m aid_model synthetic``);
3. stage 2: ``python -m aid_model train --config configs/demo_synthetic.yaml`` — the same
   trainer users run — then its EMA weights → ``demo_model/aid.safetensors``;
4. ``demo_model/demo_model.json``: what was trained, losses and wall times, with stage 2's
   resolved config and the content identity of the weights it gave (``stage2_record``), so that
   ``make demo-ablations`` on a fresh clone can take the bundled weights as its full AID
   row instead of training them again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aid_model.demo.paths import AID_FILE, DEMO_DIR, MANIFEST, SVD_DIR, TEXT_ENCODER_DIR

REPO = Path(__file__).resolve().parents[2]
STAGE2_CONFIG = REPO / "configs" / "demo_synthetic.yaml"
# 4,000 clips overfit (stage-2 loss 0.074 on training clips, 0.086 on held-out ones).
TRAIN_CLIPS = 16_000


def write_training_set(folder: Path, num_clips: int = TRAIN_CLIPS,
                       palette: str | None = None) -> Path:
    """The instructed clips of stage 2, in the generic format users' data has; in stage 1's
    palette unless ``palette`` ("exact" or "varied") says otherwise."""
    from aid_model.synthetic import WorldConfig
    from aid_model.synthetic.clip import generate_clip
    from aid_model.synthetic.dataset import clip_seeds
    from aid_model.synthetic.writer import write_dataset
    from lab.miniature.stage1 import PALETTE

    seeds = clip_seeds("train", 0, num_clips)
    world = WorldConfig(palette=palette or PALETTE)
    return write_dataset(folder, (generate_clip(seed, num_states=4, config=world)
                                  for seed in seeds))


def stage2_config(work: Path, out: Path, threads: int | None = None,
                  extra: Sequence[str] = (), device: str | None = None):
    """Stage 2's training config: ``configs/demo_synthetic.yaml`` over the base in ``out``,
    on the training set and feature cache in ``work``, training into ``work/aid``.
    ``threads`` (``--threads``) replaces the file's ``runtime.threads``: the trainer sets
    torch's threads from the config, so without it stage 2 kept the file's one thread.
    ``extra`` overrides come last and win (the benchmark's variants: their folder, budget
    and ablation switches). ``device`` (``--device``) replaces ``runtime.device``."""
    from aid_model.train import load_train_config

    overrides = [
        f"output_dir={work / 'aid'}", f"model.svd={out / SVD_DIR}",
        f"text_encoder.source={out / TEXT_ENCODER_DIR}",
        f"data.root={work / 'synthetic_train'}", f"cache.dir={work / 'feature_cache'}",
    ]
    if threads is not None:
        overrides.append(f"runtime.threads={threads}")
    if device is not None:
        overrides.append(f"runtime.device={device}")
    return load_train_config(STAGE2_CONFIG, [*overrides, *extra])


def repo_relative(values: Any) -> Any:
    """A copy of a JSON-like tree (``TrainConfig.to_dict()``) in which every folder inside
    this repository is spelled relative to it (others absolute where they exist here), so
    that settings recorded on one clone compare equal on another."""
    from aid_model.train.config import with_absolute_folders

    def relative(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: relative(item) for key, item in value.items()}
        if isinstance(value, list):
            return [relative(item) for item in value]
        if isinstance(value, str) and Path(value).is_absolute():
            path = Path(value)
            return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else value
        return value

    return relative(with_absolute_folders(values))


def stage2_record(config, weights: Path) -> dict:
    """What ``demo_model.json`` keeps of stage 2: its config file, the resolved settings
    (``repo_relative``) and the content identity of the weights they trained."""
    from aid_model.evaluate.identity import file_identity

    return {"config": str(STAGE2_CONFIG.relative_to(REPO)),
            "resolved_config": repo_relative(config.to_dict()),
            "aid_identity": file_identity(weights)}


RECIPE = "recipe.json"


def stage1_recipe() -> dict:
    """What decides stage 1's and the training set's results: the layout, the palette, the
    stages' settings and clip counts (stage 2's config is checked by the trainer itself)."""
    from dataclasses import asdict

    from aid_model.demo import configs
    from lab.miniature import stage1

    recipe = {"vae": configs.VAE, "unet": configs.UNET, "image_encoder": configs.IMAGE_ENCODER,
              "text_encoder": configs.TEXT_ENCODER, "palette": stage1.PALETTE,
              "vae_settings": asdict(stage1.VAE_SETTINGS),
              "decoder_settings": asdict(stage1.DECODER_SETTINGS),
              "base_settings": asdict(stage1.BASE_SETTINGS), "base_clips": stage1.BASE_CLIPS,
              "kl_weight": stage1.KL_WEIGHT, "train_clips": TRAIN_CLIPS}
    return json.loads(json.dumps(recipe))  # tuples as lists, as the file holds them


def claim_work(work: Path) -> None:
    """Records this recipe in ``work/recipe.json``, or refuses a ``work`` folder whose
    checkpoints, encoded clips and training set another recipe made (resuming over them
    would mix the two)."""
    from aid_model.atomic import atomic_write_file

    path, recipe = work / RECIPE, stage1_recipe()
    if path.exists():
        recorded = json.loads(path.read_text())
        changed = sorted(key for key in recipe.keys() | recorded.keys()
                         if recipe.get(key) != recorded.get(key))
        if changed:
            raise SystemExit(f"--work {work}: made by another recipe (differs in "
                             f"{', '.join(changed)}); give a new --work folder, or delete it to "
                             "start again")
        return
    atomic_write_file(path, lambda target: target.write_text(json.dumps(recipe, indent=2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "demo")
    parser.add_argument("--out", type=Path, default=DEMO_DIR)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads of every stage; 1 (default) is the safe choice "
                        "on a shared 2-core machine, 2 trains stage 2 about 1.5 times as "
                        "fast on 2 otherwise idle cores (docs/results.md)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where every stage trains; the random draws are the same on both")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    work, out = args.work.resolve(), args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    claim_work(work)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    # Done when this work folder finished it, not when OUT has a base: OUT is demo_model/
    # by default, which holds the bundled one.
    if not (work / "stage1" / "stage1.json").exists():
        from lab.miniature.build_base import build_base

        build_base(work / "stage1", out, device=args.device)
    timings["stage1_s"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    data = work / "synthetic_train"
    if not (data / "annotations.jsonl").exists():
        write_training_set(data)
    timings["dataset_s"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    from aid_model.train import FINAL_WEIGHTS, train

    config = stage2_config(work, out, args.threads, device=args.device)
    result = train(config, resume="auto")
    shutil.copyfile(Path(config.output_dir) / FINAL_WEIGHTS, out / AID_FILE)
    timings["stage2_s"] = round(time.perf_counter() - start, 1)

    stage1 = work / "stage1" / "stage1.json"
    manifest = {
        "what": "miniature AID trained on the synthetic instruction world (docs/results.md)",
        "command": "make demo-train",
        "stage1": json.loads(stage1.read_text()) if stage1.exists() else None,
        "stage2": {**stage2_record(config, out / AID_FILE), "result": str(result)},
        "timings": timings,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
