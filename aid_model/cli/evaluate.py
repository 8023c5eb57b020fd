"""``python -m aid_model evaluate``: FVD, KVD (and FID) of AID weights on validation clips.

    python -m aid_model evaluate --config configs/ssv2.yaml --set data.split=validation \
        --aid runs/ssv2/aid_final.safetensors --i3d models/i3d_torchscript.pt --num-samples 2048
    torchrun --standalone --nproc_per_node 8 -m aid_model evaluate ...   (same options)

See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aid_model.cli.checks import check_options
from aid_model.pipeline.options import PredictionOptions

PROG = "python -m aid_model evaluate"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="FVD/KVD (and FID) of AID weights on the first N validation clips",
        description=(
            "Predicts the first N clips of the config's dataset from their reference frames, "
            "instruction and states, and computes FVD and KVD on I3D features (aid-method §8; "
            "reference frames included), plus FID on the predicted frames with --inception. "
            "Writes <out>/report.json, <out>/samples.png and per-process shards in "
            "<out>/shards (a rerun with the same settings continues from them). Launch with "
            "torchrun for several GPUs. Nothing is downloaded. docs/evaluation.md."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="the training config: model, text encoder, aid, data sections")
    parser.add_argument("--aid", type=Path, default=None, metavar="PATH",
                        help="AID weight file (e.g. runs/ssv2/aid_final.safetensors); "
                             "required unless --self-check")
    parser.add_argument("--i3d", type=Path, required=True, metavar="PATH",
                        help="I3D file: StyleGAN-V's i3d_torchscript.pt or a pytorch-i3d "
                             "state dict (docs/evaluation.md says where they are published)")
    parser.add_argument("--num-samples", type=int, required=True, metavar="N",
                        help="evaluate the first N samples of the dataset (paper: SSv2 2048, "
                             "Bridge 5558, Epic-100 9342, UCF-101 2048)")
    parser.add_argument("--inception", type=Path, default=None, metavar="PATH",
                        help="Inception TorchScript (inception-2015-12-05.pt): adds FID")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default: <config output_dir>/evaluation)")
    parser.add_argument("--batch-size", type=int, default=4, metavar="B",
                        help="clips per sampling call, per process")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set data.split=validation (repeatable)")
    parser.add_argument("--self-check", action="store_true",
                        help="use the real clips as the predictions (no model is loaded): "
                             "FVD must be 0; checks the data, the I3D file and the set-up")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard existing shards in <out>/shards and recompute")
    parser.add_argument("--preview", type=int, default=8, metavar="N",
                        help="samples shown in samples.png (ground truth above prediction)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    sampling = parser.add_argument_group("sampling (T, size and fps come from the data)")
    sampling.add_argument("--steps", type=int, default=25, help="sampling steps")
    sampling.add_argument("--sampler", default="euler", choices=["euler", "heun", "dpmpp_2m"])
    sampling.add_argument("--frame-scale", type=float, default=PredictionOptions().frame_scale,
                          help="s_f, frame-condition guidance")
    sampling.add_argument("--frame-scale-first", type=float, default=None,
                          help="s_f on the first frame, ramping to --frame-scale")
    sampling.add_argument("--text-scale", type=float, default=PredictionOptions().text_scale,
                          help="s_t, text guidance (0: off)")
    sampling.add_argument("--guidance-interval", type=float, nargs=2, default=None,
                          metavar=("SIGMA_LO", "SIGMA_HI"),
                          help="guide only for sigma in [lo, hi]")
    sampling.add_argument("--seed", type=int, default=0,
                          help="sample i is predicted with seed SEED + i")
    sampling.add_argument("--fps", default="sample",
                          help="micro-conditioning fps: 'sample' (each clip's own, as in "
                               "training) or a number")
    sampling.add_argument("--motion-bucket", type=float, default=None,
                          help="motion bucket id (default: the config's "
                               "conditioning.motion_bucket_id)")
    sampling.add_argument("--cond-aug", type=float, default=None,
                          help="reference-frame noise (default: the config's "
                               "conditioning.cond_aug.value)")
    sampling.add_argument("--decode-chunk", type=int, default=8,
                          help="frames per VAE decode call")

    metrics = parser.add_argument_group("metrics")
    metrics.add_argument("--kvd-subset-size", type=int, default=None,
                         help="KVD averaged over random subsets of this size (default: the "
                              "whole sets)")
    metrics.add_argument("--kvd-subsets", type=int, default=100, help="number of KVD subsets")
    metrics.add_argument("--i3d-features", default="logits", choices=["logits", "pool"],
                         help="I3D output: the 400 logits (FVD convention) or 1024 pooled "
                              "features (state dicts only)")
    metrics.add_argument("--i3d-bn-eps", type=float, default=1e-5,
                         help="batch-norm eps of an I3D state dict (pytorch-i3d's "
                              "rgb_imagenet.pt: 1e-3)")
    parser.set_defaults(func=run)


def _fps(text: str) -> float | None:
    if text.strip().lower() == "sample":
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--fps must be 'sample' or a number, got {text!r}") from None


def settings_from_args(args: argparse.Namespace, config):
    """``EvaluationSettings`` from the parsed options and the training config (defaults
    of the micro-conditioning come from its ``conditioning`` section)."""
    from aid_model.evaluate import EvaluationSettings
    from aid_model.pipeline.options import PredictionOptions

    conditioning = config.conditioning
    options = PredictionOptions(
        steps=args.steps, sampler=args.sampler, frame_scale=args.frame_scale,
        text_scale=args.text_scale, frame_scale_first=args.frame_scale_first,
        guidance_interval=tuple(args.guidance_interval) if args.guidance_interval else None,
        motion_bucket_id=(args.motion_bucket if args.motion_bucket is not None
                          else conditioning.motion_bucket_id),
        cond_aug=args.cond_aug if args.cond_aug is not None else conditioning.cond_aug.value,
        decode_chunk_size=args.decode_chunk,
    )
    out = args.out if args.out is not None else Path(config.output_dir) / "evaluation"
    return EvaluationSettings(
        num_samples=args.num_samples, i3d=args.i3d, out_dir=out, aid=args.aid,
        inception=args.inception, batch_size=args.batch_size, options=options,
        fps=_fps(args.fps), seed=args.seed, self_check=args.self_check, preview=args.preview,
        kvd_subset_size=args.kvd_subset_size, kvd_num_subsets=args.kvd_subsets,
        i3d_features=args.i3d_features, i3d_bn_eps=args.i3d_bn_eps, overwrite=args.overwrite,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    from aid_model.aid.weights import AIDWeightsError
    from aid_model.evaluate import OtherProcessFailed, ShardError, evaluate
    from aid_model.metrics import FeatureModelError
    from aid_model.safetensors_io import CheckpointError
    from aid_model.train import ConfigError, load_train_config

    try:
        config = load_train_config(args.config, args.overrides)
        settings = settings_from_args(args, config)
        settings.validate()
        if not settings.self_check:
            check_options(settings.options)
    except (ConfigError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    try:
        result = evaluate(config, settings)
    except (FeatureModelError, ShardError, AIDWeightsError, CheckpointError, FileNotFoundError,
            ValueError, OtherProcessFailed) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue from the finished "
              "batches", file=sys.stderr)
        return 130
    if result.report is not None:
        metrics = result.report["metrics"]
        line = f"FVD {metrics['fvd']:.4f}  KVD {metrics['kvd']:.6f}"
        if metrics["fid"] is not None:
            line += f"  FID {metrics['fid']:.4f}"
        print(f"{line}  ({settings.num_samples} samples)")
        for warning in metrics["warnings"]:
            print(f"warning: {warning}")
        print(f"report: {result.report_path}")
        if result.samples_path is not None:
            print(f"samples: {result.samples_path}")
    return 0
