"""``python -m aid_model states``: future states for one frame, or for a whole dataset.

    python -m aid_model states --model DIR --image a.png --instruction "open the drawer"
    python -m aid_model states --model DIR --dataset data.csv --out states.jsonl

The first prints the states; the second annotates every row of the dataset into a JSONL
cache, skipping rows already there, so an interrupted run resumes when rerun.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "states",
        help="predict a video's future states from its first frame with a vision-language model",
        description=(
            "Ask a vision-language model (LLaVA-OneVision, LLaVA-NeXT, Qwen2-VL, …) loaded "
            "from a local folder for S states (--num-states) of the video that carries out the "
            "instruction from the given first frame (paper §3.3)."
        ),
    )
    parser.add_argument(
        "--model", required=True, metavar="DIR", help="local folder of the vision-language model"
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--image", metavar="PATH", help="one first frame (needs --instruction)")
    target.add_argument(
        "--dataset",
        metavar="CONFIG",
        help="a CSV with columns image,instruction (image paths relative to the CSV)",
    )
    parser.add_argument("--instruction", help="the instruction for --image")
    parser.add_argument(
        "--out",
        metavar="JSONL",
        help="state cache to read and append to; required with --dataset, optional with --image",
    )
    parser.add_argument("--num-states", type=int, default=4, metavar="S", help="default: 4")
    parser.add_argument(
        "--batch-size", type=int, default=4, help="frames per generate call (default: 4)"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="answer length bound (default: 48 + 40 per state)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16"),
        default=None,
        help="default: float32 on CPU, bfloat16 (or float16) on GPU",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: auto)")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run Python code shipped in the model folder (only for models you trust)",
    )
    parser.add_argument(
        "--model-id",
        default=None,
        help="name of the model in cache rows (default: the model folder's name)",
    )
    parser.add_argument(
        "--json", action="store_true", help="with --image: print the states as a JSON list"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem:
        print(f"python -m aid_model states: error: {problem}", file=sys.stderr)
        return 2

    from aid_model.states import StateCache, StatePrompter, StateSample, annotate, read_csv_samples

    try:
        # Validate the inputs before the (slow) model load.
        if args.dataset is not None:
            samples = read_csv_samples(args.dataset)
        else:
            samples = [StateSample(args.image, " ".join(args.instruction.split()), args.image)]
        cache = StateCache(args.out) if args.out else None
        prompter = StatePrompter.from_pretrained(
            args.model,
            dtype=args.dtype,
            device=args.device,
            trust_remote_code=args.trust_remote_code,
            max_new_tokens=args.max_new_tokens,
            model_id=args.model_id,
        )
    except (FileNotFoundError, ValueError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    if cache is None:
        prediction = prompter.predict(
            samples[0].image, samples[0].instruction, args.num_states, batch_size=1
        )[0]
        _print_states(prediction.states, prediction.warnings, as_json=args.json)
        return 0

    if cache.skipped_lines:
        print(
            f"warning: {cache.skipped_lines} unreadable line(s) in {args.out} ignored",
            file=sys.stderr,
        )
    try:
        result = annotate(
            prompter,
            samples,
            cache,
            num_states=args.num_states,
            batch_size=args.batch_size,
            progress=args.dataset is not None,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: {len(cache)} row(s) are saved in {args.out}; "
            f"run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    if args.image is not None:
        row = result.rows[0]
        _print_states(row.states, row.warnings, as_json=args.json)
        return 0
    print(
        f"{len(result.rows)} frame(s) annotated into {args.out}: {result.generated} generated, "
        f"{result.cached} from the cache; {result.fallbacks} fell back to the instruction"
    )
    return 0


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the option combination, or None; argparse cannot say these."""
    if args.image is not None and not (args.instruction or "").strip():
        return "--image needs --instruction"
    if args.dataset is not None:
        if args.instruction:
            return "--instruction goes with --image; a dataset has one per row"
        if not args.out:
            return "--dataset needs --out, the JSONL file the states are written to"
        if not args.dataset.lower().endswith(".csv"):
            return (
                f"--dataset {args.dataset!r}: only CSV files (columns image,instruction) are "
                f"read for now; dataset configs come with the training code"
            )
    for option, value in (("--num-states", args.num_states), ("--batch-size", args.batch_size)):
        if value < 1:
            return f"{option} must be at least 1, got {value}"
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        return f"--max-new-tokens must be at least 1, got {args.max_new_tokens}"
    return None


def _print_states(states: list[str], warnings: list[str], *, as_json: bool) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if as_json:
        print(json.dumps(states, ensure_ascii=False))
    else:
        for number, state in enumerate(states, 1):
            print(f"{number}. {state}")
