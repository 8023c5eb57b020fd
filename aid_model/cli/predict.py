"""``python -m aid_model predict | long | manipulate``: video prediction from the command line."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from aid_model.cli.checks import (
    UsageError,
    check_input,
    check_options,
    check_output_file,
    check_output_folder,
    check_positive,
    image_suffixes,
    read_text_lines,
)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where the help already states it or there is
    none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default:" in text or action.default in (None, False):
            return text
        return super()._get_help_string(action)


def register(subparsers: argparse._SubParsersAction) -> None:
    predict = subparsers.add_parser(
        "predict", help="predict a video from reference frame(s) and an instruction",
        description="Predicts T frames from K reference frames and an instruction; writes an "
        "H.264 mp4 (and optionally GIF/WebP, PNG frames and a contact sheet).",
        formatter_class=_HelpFormatter,
    )
    _model_arguments(predict)
    predict.add_argument("--image", action="append", required=True, metavar="PATH",
                         help="reference frame, repeat for K > 1 (in order)")
    predict.add_argument("--instruction", default="", help="what should happen in the video")
    predict.add_argument("--states-file", type=Path, default=None,
                         help="text file with one future state per line (else the instruction)")
    predict.add_argument("--out", type=Path, required=True, help="output .mp4")
    _output_arguments(predict)
    _sampling_arguments(predict)
    predict.set_defaults(func=run_predict)

    long = subparsers.add_parser(
        "long", help="chain predictions into a long video, one instruction per segment",
        description="Each segment starts from the last --overlap frames of the previous one; "
        "segments are joined without repeating the overlap.",
        formatter_class=_HelpFormatter,
    )
    _model_arguments(long)
    long.add_argument("--image", action="append", required=True, metavar="PATH",
                      help="reference frame(s) of the first segment")
    long.add_argument("--instruction", action="append", required=True,
                      help="one per segment, in order (repeat the option)")
    long.add_argument("--overlap", type=int, default=2,
                      help="frames carried from one segment to the next (paper: 2)")
    long.add_argument("--out", type=Path, required=True, help="output .mp4")
    _output_arguments(long)
    _sampling_arguments(long)
    long.set_defaults(func=run_long)

    manipulate = subparsers.add_parser(
        "manipulate", help="one frame, several instructions, one batched run",
        description="Writes one video per instruction into --out-dir (same seed for all, so "
        "only the instruction differs) and a contact sheet of all of them.",
        formatter_class=_HelpFormatter,
    )
    _model_arguments(manipulate)
    manipulate.add_argument("--image", required=True, metavar="PATH", help="the reference frame")
    manipulate.add_argument("--instruction", action="append", required=True,
                            help="repeat the option for each instruction")
    manipulate.add_argument("--out-dir", type=Path, required=True, help="output folder")
    manipulate.add_argument("--gif", action="store_true", help="also write a GIF per video")
    _sampling_arguments(manipulate)
    manipulate.set_defaults(func=run_manipulate)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--demo", action="store_true",
                       help="use the bundled miniature model (64×64 synthetic world, CPU, no "
                       "downloads) instead of --svd/--aid/--text-encoder")
    group.add_argument("--svd", type=Path, default=None,
                       help="SVD checkpoint (original .safetensors) or diffusers folder")
    group.add_argument("--aid", type=Path, default=None,
                       help="AID weights (.safetensors); without: plain SVD image-to-video")
    group.add_argument("--text-encoder", type=Path, default=None,
                       help="OpenCLIP ViT-H text tower (.safetensors or transformers folder)")
    group.add_argument("--tokenizer", type=Path, default=None,
                       help="tokenizer folder (vocab.json, merges.txt) if not beside the encoder")
    group.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")
    group.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    group.add_argument("--unet-head-channels", type=int, default=64,
                       help="channels per UNet attention head (SVD: 64)")
    group.add_argument("--clip-num-heads", type=int, default=None,
                       help="CLIP vision heads (default: width/80, OpenCLIP ViT-H)")
    group.add_argument("--text-num-heads", type=int, default=None,
                       help="text tower heads (default: width/64, OpenCLIP ViT-H)")


def _sampling_arguments(parser: argparse.ArgumentParser) -> None:
    from aid_model.demo.load import DEMO_OPTIONS
    from aid_model.pipeline.options import PredictionOptions

    defaults = PredictionOptions()
    group = parser.add_argument_group(
        "sampling", "Defaults are for SVD-sized models; with --demo, the miniature's own "
        "settings are the defaults where they differ (shown as 'with --demo')."
    )

    def add(flag: str, field: str, kind, text: str, **extra) -> None:
        general, demo = getattr(defaults, field), getattr(DEMO_OPTIONS, field)
        shown = f"default: {_shown(general)}"
        if demo != general:
            shown += f"; with --demo: {_shown(demo)}"
        group.add_argument(flag, dest=field, type=kind, default=None, help=f"{text} ({shown})",
                           **extra)

    add("--frames", "num_frames", int, "T, frames in the output; unset: the AID model's, else 14")
    add("--height", "height", int, "multiple of 64 for SVD")
    add("--width", "width", int, "multiple of 64 for SVD")
    add("--steps", "steps", int, "sampling steps")
    add("--sampler", "sampler", str, "euler, heun or dpmpp_2m",
        choices=["euler", "heun", "dpmpp_2m"])
    add("--frame-scale", "frame_scale", float, "s_f, frame-condition guidance")
    add("--frame-scale-first", "frame_scale_first", float,
        "s_f on the first frame, ramping to --frame-scale (SVD style)")
    add("--text-scale", "text_scale", float, "s_t, text guidance (0: off)")
    group.add_argument("--guidance-interval", type=float, nargs=2, default=None,
                       metavar=("SIGMA_LO", "SIGMA_HI"),
                       help="guide only for sigma in [lo, hi]; elsewhere one UNet call a step "
                       "(default: always guide)")
    add("--seed", "seed", int, "noise seed")
    add("--fps", "fps", float, "SVD micro-conditioning fps and the output's frame rate")
    add("--motion-bucket", "motion_bucket_id", int, "SVD motion bucket id")
    add("--cond-aug", "cond_aug", float, "noise added to the reference frames' latent condition")
    add("--decode-chunk", "decode_chunk_size", int,
        "frames per VAE decode call (lower: less memory; unset: all at once)")


def _shown(value) -> str:
    return "unset" if value is None else str(value)


def _output_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("extra outputs")
    group.add_argument("--gif", type=Path, default=None, help="also write an animated GIF")
    group.add_argument("--webp", type=Path, default=None, help="also write an animated WebP")
    group.add_argument("--contact-sheet", type=Path, default=None, help="PNG of all frames")
    group.add_argument("--frames-dir", type=Path, default=None, help="write each frame as PNG")


SAMPLING_FIELDS = (
    "num_frames", "height", "width", "steps", "sampler", "frame_scale", "frame_scale_first",
    "text_scale", "seed", "fps", "motion_bucket_id", "cond_aug", "decode_chunk_size",
)


def _options(args: argparse.Namespace):
    """The options the user gave, over the demo's or the general defaults."""
    from aid_model.pipeline import PredictionOptions

    if args.demo:
        from aid_model.demo.load import DEMO_OPTIONS as base
    else:
        base = PredictionOptions()
    given = {f: getattr(args, f) for f in SAMPLING_FIELDS if getattr(args, f) is not None}
    if args.guidance_interval:
        given["guidance_interval"] = tuple(args.guidance_interval)
    options = base.with_(**given)
    args.fps = options.fps  # the output's frame rate follows the conditioning
    return options


def _check_model_arguments(args: argparse.Namespace) -> int | None:
    """Checks the model options without loading a model; returns the AID model's T (from
    the weight file's header) when --aid is given."""
    import torch

    from aid_model.pipeline.loading import parse_dtype

    if args.demo:
        if args.svd or args.aid or args.text_encoder:
            raise UsageError("--demo uses the bundled model: leave out --svd/--aid/--text-encoder")
    elif args.svd is None:
        raise UsageError("give --svd (an SVD checkpoint or diffusers folder), or --demo")
    check_input(args.svd, "--svd")
    check_input(args.aid, "--aid", "file")
    check_input(args.text_encoder, "--text-encoder")
    check_input(args.tokenizer, "--tokenizer", "folder")
    if args.aid is not None and args.text_encoder is None:
        raise UsageError("--aid needs --text-encoder (the OpenCLIP ViT-H text tower the AID "
                         "model was trained with)")
    try:
        parse_dtype(args.dtype)
    except ValueError as error:
        raise UsageError(f"--dtype: {error}") from None
    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {args.device!r} is not a device (cpu, cuda, cuda:1, mps, "
                         "...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    check_positive(args.unet_head_channels, "--unet-head-channels")
    check_positive(args.clip_num_heads, "--clip-num-heads")
    check_positive(args.text_num_heads, "--text-num-heads")
    if args.aid is None:
        return None
    from aid_model.aid.weights import check_config_against_header, read_aid_config
    from aid_model.safetensors_io import read_shapes

    config = read_aid_config(args.aid)  # header only: a wrong file is named in seconds
    check_config_against_header(config, read_shapes(args.aid), args.aid)
    return config.num_frames


def _checked_options(args: argparse.Namespace, images: list) -> object:
    """Every option and output checked, before any model is loaded; the options."""
    model_frames = _check_model_arguments(args)
    options = _options(args)
    if options.num_frames is None and model_frames is not None:
        options = options.with_(num_frames=model_frames)
    check_options(options, num_reference_frames=len(images))
    _check_images(images)
    return options


def _check_outputs(args: argparse.Namespace) -> None:
    check_output_file(args.out, "--out", (".mp4",))
    check_output_file(args.gif, "--gif", (".gif",))
    check_output_file(args.webp, "--webp", (".webp",))
    check_output_file(args.contact_sheet, "--contact-sheet", image_suffixes())
    check_output_folder(args.frames_dir, "--frames-dir")


def _pipeline(args: argparse.Namespace):
    from aid_model.pipeline import load_pipeline

    if args.demo:
        from aid_model.demo.load import load_demo_pipeline

        return load_demo_pipeline(device=args.device)
    return load_pipeline(
        args.svd, aid=args.aid, text_encoder=args.text_encoder, tokenizer=args.tokenizer,
        dtype=args.dtype, device=args.device, unet_head_channels=args.unet_head_channels,
        clip_num_heads=args.clip_num_heads, text_num_heads=args.text_num_heads,
    )


def _read_states(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    states = [line.strip() for line in read_text_lines(path, "--states-file")]
    return [s for s in states if s] or None


def _check_images(paths) -> None:
    from aid_model.images import load_image

    for path in paths:
        load_image(path)  # fails early, with the file named, before any model loads


def _progress(total_hint: str):
    from tqdm import tqdm

    bar = tqdm(desc=total_hint, unit="step")

    def update(info) -> None:
        bar.total = info.total
        bar.n = info.step + 1
        bar.refresh()

    return bar, update


def _write(video, args: argparse.Namespace, out: Path) -> list[Path]:
    from aid_model.video_io import (
        write_animation,
        write_contact_sheet,
        write_frames,
        write_mp4,
    )

    written = [write_mp4(video, out, fps=args.fps)]
    for extra in (args.gif, args.webp):
        if extra is not None:
            written.append(write_animation(video, extra, fps=args.fps))
    if args.contact_sheet is not None:
        written.append(write_contact_sheet([video], args.contact_sheet))
    if args.frames_dir is not None:
        written.extend(write_frames(video, args.frames_dir))
    return written


def run_predict(args: argparse.Namespace) -> int:
    _check_outputs(args)
    states = _read_states(args.states_file)
    options = _checked_options(args, args.image)
    pipeline = _pipeline(args)
    bar, update = _progress("predict")
    with bar:
        video = pipeline.predict(args.image, args.instruction, states, options, update)
    for path in _write(video, args, args.out):
        print(f"wrote {path}")
    return 0


def run_long(args: argparse.Namespace) -> int:
    from aid_model.pipeline import predict_long_video

    _check_outputs(args)
    options = _checked_options(args, args.image)
    check_positive(args.overlap, "--overlap", unset_ok=False)
    if options.num_frames is not None and args.overlap >= options.num_frames:
        raise UsageError(f"--overlap {args.overlap} must be smaller than the segment's "
                         f"{options.num_frames} frames (--frames)")
    pipeline = _pipeline(args)
    bar, update = _progress("long video")
    with bar:
        video = predict_long_video(pipeline, args.image, args.instruction, args.overlap,
                                   options=options, callback=update)
    for path in _write(video, args, args.out):
        print(f"wrote {path}")
    return 0


def slug(text: str, limit: int = 40) -> str:
    """A safe file-name part from an instruction."""
    cleaned = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return cleaned[:limit] or "empty"


def run_manipulate(args: argparse.Namespace) -> int:
    from aid_model.video_io import write_animation, write_contact_sheet, write_mp4

    check_output_folder(args.out_dir, "--out-dir")
    options = _checked_options(args, [args.image])
    pipeline = _pipeline(args)
    bar, update = _progress("manipulate")
    with bar:
        videos = pipeline.manipulate(args.image, args.instruction, options=options,
                                     callback=update)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for index, (instruction, video) in enumerate(zip(args.instruction, videos, strict=True)):
        stem = args.out_dir / f"{index:02d}_{slug(instruction)}"
        print(f"wrote {write_mp4(video, stem.with_suffix('.mp4'), fps=args.fps)}")
        if args.gif:
            print(f"wrote {write_animation(video, stem.with_suffix('.gif'), fps=args.fps)}")
    sheet = write_contact_sheet(videos, args.out_dir / "contact_sheet.png",
                                labels=list(args.instruction))
    print(f"wrote {sheet}")
    return 0
