"""``python -m comfy_batch``: run a CSV of jobs through a ComfyUI server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from comfy_batch.jobs import JobsError
from comfy_batch.runner import BatchOptions, load_and_check, run_batch
from comfy_batch.server import RetryPolicy, ServerUnavailable

EXIT_FAILED_ROWS, EXIT_BAD_INPUT, EXIT_NO_SERVER, EXIT_INTERRUPTED = 1, 2, 3, 130


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m comfy_batch",
        description="Runs one job per CSV row through ComfyUI's HTTP API: uploads the row's "
        "image, sets its instruction/states/seed/NODE.INPUT columns on the workflow, queues "
        "it, waits, and downloads the outputs into OUT/<row name>/. Rerunning the same "
        "command skips finished rows and picks up prompts still queued.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI's address")
    p.add_argument("--workflow", type=Path, required=True,
                   help="API-format workflow (e.g. workflows/api/aid_predict_typed_states.json)")
    p.add_argument("--jobs", type=Path, required=True,
                   help="CSV with a header: id, image, instruction, states, seed, NODE.INPUT")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (holds manifest.jsonl and one folder per row); "
                   "required unless --check")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between progress checks")
    p.add_argument("--max-in-flight", type=int, default=2,
                   help="prompts queued on the server at a time")
    p.add_argument("--retry-for", type=float, default=600.0,
                   help="seconds to keep retrying while the server is down")
    p.add_argument("--requeue-limit", type=int, default=2,
                   help="times a prompt lost by a server restart is queued again")
    p.add_argument("--include-temp", action="store_true",
                   help="also download preview images (ComfyUI's temp folder)")
    p.add_argument("--check", action="store_true",
                   help="only check the CSV against the workflow; contact no server")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.max_in_flight < 1 or args.poll <= 0 or args.retry_for < 0:
        parser().error("--max-in-flight must be >= 1, --poll > 0 and --retry-for >= 0")
    if args.out is None and not args.check:
        parser().error("--out is required (the folder for the outputs and the manifest)")
    try:
        if args.check:
            jobs = load_and_check(args.workflow, args.jobs)
            print(f"{len(jobs)} jobs fit the workflow")
            return 0
        options = BatchOptions(
            server=args.server, workflow=args.workflow, jobs=args.jobs, out=args.out,
            poll_interval=args.poll, max_in_flight=args.max_in_flight,
            requeue_limit=args.requeue_limit, include_temp=args.include_temp,
            retry=RetryPolicy(give_up_after=args.retry_for),
        )
        report = run_batch(options)
    except JobsError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ServerUnavailable as problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_NO_SERVER
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume (prompts already queued keep "
              "running on the server and are picked up)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED_ROWS if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
