"""A short stage 2 over a base, probed for the text as it trains: #37's screen of layouts.

Stage 2 exactly as ``make demo-train`` runs it (``configs/demo_synthetic.yaml``, its
4,500-step schedule), stopped after ``--until`` steps, every checkpoint of ``--probe-at``
kept and probed (``text_probe``). The bundled recipe's own stage 2, trained on the same
schedule, scored an output difference of 0.0009 / 0.0017 / 0.0086 at σ = 8 after 300 /
500 / 800 steps, and a layout whose text path stayed closed a fraction of that
(lab/NOTES.md, "The exact-palette screen decided"; measured by this probe's predecessor,
which agrees with it within 10 % on the bundled model).

    python -m lab.miniature.text_screen --base demo_model --work runs/demo

``--work`` gets the training set (16,000 instructed clips, in the recipe's palette unless
``--palette`` says otherwise), the feature cache (the base's VAE and towers), the run
(``aid/``) and ``text_probe.json``. It resumes. Given the folders of a ``make demo-train``
build whose stage 1 is done, as above, the screen is the start of that build's stage 2,
which ``make demo-train`` then continues.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

PROBE_AT = (300, 500, 800)


def screen(base: Path, work: Path, until: int, probe_at: Sequence[int], palette: str | None,
           threads: int) -> dict[str, list[dict]]:
    """Trains ``work/aid`` to ``until`` over ``base`` (a ``make demo-train`` output folder)
    and probes the EMA weights at ``probe_at``; returns ``text_probe.probe_run``'s numbers."""
    from aid_model.atomic import atomic_write_file
    from aid_model.train import train
    from lab.miniature.text_probe import probe_run, probe_table
    from lab.miniature.train_all import stage2_config, write_training_set

    every = stage2_config(work, base, threads).checkpoint.every
    wrong = [step for step in probe_at if not (every and step % every == 0 and step <= until)]
    if wrong:
        raise SystemExit(f"--probe-at {' '.join(map(str, wrong))}: probe only checkpointed "
                         f"steps, multiples of checkpoint.every ({every}) up to --until {until}")
    data = work / "synthetic_train"
    if not (data / "annotations.jsonl").exists():
        write_training_set(data, palette=palette)
    # Every checkpoint up to `until` is kept, so the probed ones are there at the end.
    config = stage2_config(work, base, threads, extra=[f"checkpoint.keep_last={until // every}"])
    train(config, resume="auto", until=until)
    results = probe_run(work / "aid", list(probe_at))
    atomic_write_file(work / "text_probe.json",
                      lambda path: path.write_text(json.dumps(results, indent=2)))
    print(probe_table(results))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True,
                        help="a stage-1 output folder (svd/, text_encoder/), as make "
                        "demo-train writes")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--until", type=int, default=max(PROBE_AT))
    parser.add_argument("--probe-at", type=int, nargs="+", default=list(PROBE_AT))
    parser.add_argument("--palette", choices=("exact", "varied"),
                        help="of the training clips (default: the recipe's, stage 1's); the "
                        "screens of lab/NOTES.md before 2026-12-08 used exact")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    from aid_model.demo.paths import SVD_DIR, TEXT_ENCODER_DIR

    missing = [name for name in (SVD_DIR, TEXT_ENCODER_DIR) if not (args.base / name).is_dir()]
    if missing:
        raise SystemExit(f"--base {args.base}: no {', '.join(missing)}; give the --out folder "
                         "of a finished stage 1 (python -m lab.miniature.build_base)")
    screen(args.base.resolve(), args.work.resolve(), args.until, args.probe_at, args.palette,
           args.threads)


if __name__ == "__main__":
    main()
