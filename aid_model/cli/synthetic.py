"""``python -m aid_model synthetic --out DIR --num-clips N``: write synthetic-world clips.

The clips go to disk in the generic dataset format (``annotations.jsonl``
with ``path``, ``instruction``, ``states``; one folder of PNG frames per clip), with the
ground truth in ``world.jsonl`` and a contact sheet. See docs/synthetic-world.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aid_model.synthetic.clip import SyntheticClip


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synthetic",
        help="write clips of the synthetic instruction world as a dataset",
        description=(
            "Generates clips of the synthetic world (coloured shapes moved by instructions) "
            "and writes them in the generic dataset format. The same --split, --seed and "
            "--num-clips always write the same clips."
        ),
    )
    parser.add_argument("--out", required=True, help="folder to write the dataset into")
    parser.add_argument("--num-clips", type=int, required=True, help="how many clips to write")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="offset of the first clip's seed within the split (default: 0)",
    )
    parser.add_argument(
        "--split",
        choices=("train", "heldout"),
        default="train",
        help="seed range to draw from; the two never share a clip (default: train)",
    )
    parser.add_argument(
        "--random-motion",
        action="store_true",
        help="objects move at random, with no instruction and no states (base-model clips)",
    )
    parser.add_argument(
        "--palette",
        choices=("exact", "varied"),
        default="exact",
        help=(
            "exact: the grey-200 background and pure primaries the bundled miniature knows; "
            "varied: each clip draws its own grey (150-240), primaries (within 40 of pure) "
            "and anti-aliasing, the same scenes otherwise (default: exact)"
        ),
    )
    parser.add_argument("--num-states", type=int, default=4, help="states per clip, S (default: 4)")
    parser.add_argument(
        "--preview-clips",
        type=int,
        default=8,
        help="clips shown in contact_sheet.png (default: 8; 0: no sheet)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aid_model.synthetic.clip import generate_clip
    from aid_model.synthetic.dataset import clip_seeds
    from aid_model.synthetic.world import WorldConfig
    from aid_model.synthetic.writer import CONTACT_SHEET, write_dataset

    if args.num_clips < 1:
        print(f"error: --num-clips must be at least 1, got {args.num_clips}", file=sys.stderr)
        return 2
    if args.num_states < 1:
        print(f"error: --num-states must be at least 1, got {args.num_states}", file=sys.stderr)
        return 2
    try:
        seeds = clip_seeds(args.split, args.seed, args.num_clips)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    config = WorldConfig(palette=args.palette)
    clips = (
        generate_clip(
            seed, random_motion=args.random_motion, num_states=args.num_states, config=config
        )
        for seed in seeds
    )
    written: list[int] = []
    manifest = write_dataset(args.out, _noting_seeds(clips, written),
                             preview_clips=args.preview_clips)
    elapsed = time.perf_counter() - started
    kind = "random-motion" if args.random_motion else "instructed"
    kind += ", varied-palette" if args.palette == "varied" else ""
    print(
        f"{args.num_clips} {kind} clip(s), seeds {written[0]}..{written[-1]}, written "
        f"in {elapsed:.1f} s\nannotations: {manifest}"
    )
    if args.preview_clips > 0:
        print(f"preview:  {manifest.parent / CONTACT_SHEET}")
    return 0


def _noting_seeds(clips: Iterator[SyntheticClip], seeds: list[int]) -> Iterator[SyntheticClip]:
    """``clips`` unchanged, each one's seed appended to ``seeds`` as it passes."""
    for clip in clips:
        seeds.append(clip.seed)
        yield clip
