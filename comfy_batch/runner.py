"""Running the jobs: upload, queue, follow, download, remember; resume where it stopped.

Never twice: every prompt is queued under an id the client chooses and writes to the
manifest first, so a rerun (or a retry after a lost answer) asks the server about that id
before queueing anything again. ComfyUI keeps its queue and history in memory, so a prompt
the restarted server no longer knows is queued again (at most ``requeue_limit`` times).

One row's trouble is that row's: a server fault that outlasts its retries (HTTP 500, a body
cut short, an HTML page), a refused image, an output folder that leads outside ``--out``
fail the row, with the reason, and the batch goes on. A row that failed while its prompt
was queued keeps the prompt id, so a rerun asks about that prompt before queueing again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfy_batch.jobs import Job, Target, image_problem, load_workflow, read_jobs
from comfy_batch.manifest import DONE, FAILED, QUEUED, Manifest
from comfy_batch.names import path_inside, safe_name
from comfy_batch.server import (
    ComfyServer,
    RetryPolicy,
    ServerError,
    TransportError,
)

MANIFEST_NAME = "manifest.jsonl"
UPLOAD_SUBFOLDER = "aid_batch"


@dataclass
class BatchOptions:
    """What ``python -m comfy_batch`` takes (see ``--help``)."""

    server: str
    workflow: Path
    jobs: Path
    out: Path
    poll_interval: float = 1.0
    max_in_flight: int = 2
    requeue_limit: int = 2
    include_temp: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 60.0


@dataclass
class BatchReport:
    done: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{len(self.done)} done, {len(self.skipped)} already done before, "
                 f"{len(self.failed)} failed"]
        if self.failed:
            lines.append("failed rows (rerun the same command to retry them):")
            for job, reason in self.failed:
                lines.append(f"  line {job.line} [{job.label}]: {reason}")
        return "\n".join(lines)


@dataclass
class _Flight:
    job: Job
    prompt_id: str
    requeues: int = 0
    started: float = field(default_factory=time.monotonic)
    running: bool = False


def workflow_hash(workflow: dict) -> str:
    return hashlib.sha256(json.dumps(workflow, sort_keys=True).encode()).hexdigest()[:16]


def run_batch(options: BatchOptions, log: Callable[[str], None] = print,
              server: ComfyServer | None = None,
              sleep: Callable[[float], None] = time.sleep) -> BatchReport:
    """Runs every job of ``options.jobs`` not finished in an earlier run.

    Raises:
        JobsError: the CSV does not fit the workflow (nothing was sent).
        ServerUnavailable: the server stayed away longer than the retry budget (the
            manifest holds what was queued; rerun to resume).
    """
    workflow = load_workflow(options.workflow)
    jobs = read_jobs(options.jobs, workflow)
    options.out.mkdir(parents=True, exist_ok=True)
    server = server or ComfyServer(options.server, options.retry, options.timeout, log, sleep)
    return _Runner(options, workflow, Manifest(options.out / MANIFEST_NAME), server, log,
                   sleep).run(jobs)


class _Runner:
    def __init__(self, options: BatchOptions, workflow: dict, manifest: Manifest,
                 server: ComfyServer, log: Callable[[str], None],
                 sleep: Callable[[float], None]):
        self.options = options
        self.workflow = workflow
        self.workflow_hash = workflow_hash(workflow)
        self.manifest = manifest
        self.server = server
        self.log = log
        self.sleep = sleep
        self.report = BatchReport()
        self.total = 0
        self.started = 0

    def run(self, jobs: list[Job]) -> BatchReport:
        pending: deque[Job] = deque()
        other_workflow = 0
        for job in jobs:
            record = self.manifest.get(job.key)
            if record and record.get("status") == DONE:
                self.report.skipped.append(job)
                other_workflow += record.get("workflow") != self.workflow_hash
            else:
                pending.append(job)
        if other_workflow:
            self.log(f"note: {other_workflow} finished rows were made with another workflow; "
                     "they are skipped (use a new --out folder to redo them)")
        self.log(f"{len(jobs)} rows: {len(self.report.skipped)} done before, "
                 f"{len(pending)} to run")
        self.total = len(pending)
        in_flight: dict[str, _Flight] = {}
        while pending or in_flight:
            while pending and len(in_flight) < self.options.max_in_flight:
                job = pending.popleft()
                self.started += 1
                flight = self._adopt(job) or self._submit(job, 0)
                if flight is not None:
                    in_flight[flight.prompt_id] = flight
            if in_flight:
                self._poll(in_flight)
                if in_flight:
                    self.sleep(self.options.poll_interval)
        self.log(self.report.summary())
        return self.report

    # --- queueing ---------------------------------------------------------------------------

    def _adopt(self, job: Job) -> _Flight | None:
        """A prompt an earlier run queued for this job, if the server still has it."""
        record = self.manifest.get(job.key)
        if not record or not record.get("prompt_id") or not (
                record.get("status") == QUEUED or record.get("may_still_run")):
            return None
        prompt_id = record["prompt_id"]
        try:
            if not self.server.knows(prompt_id):
                return None
        except ServerError as fault:
            self._fail(job, str(fault), prompt_id=prompt_id)
            return None
        self.log(f"line {job.line} [{job.label}]: picking up prompt {prompt_id} queued "
                 "by an earlier run")
        return _Flight(job, prompt_id, int(record.get("requeues", 0)))

    def _submit(self, job: Job, requeues: int) -> _Flight | None:
        try:
            path_inside(self.options.out, job.name)  # before the server spends time on it
        except ValueError as problem:
            self._fail(job, f"output folder: {problem}")
            return None
        uploaded: dict[Target, str] = {}
        for target, path in job.uploads.items():
            try:
                data = path.read_bytes()
            except OSError as problem:
                self._fail(job, f"cannot read image {str(path)!r}: {problem.strerror or problem}")
                return None
            problem = image_problem(data)  # the bytes sent, whatever the file was when checked
            if problem:
                self._fail(job, f"refusing to upload {str(path)!r}: {problem}")
                return None
            name = f"{hashlib.sha256(data).hexdigest()[:12]}_{safe_name(path.name)}"
            try:
                uploaded[target] = self.server.upload_image(data, name, UPLOAD_SUBFOLDER)
            except ServerError as fault:
                self._fail(job, f"uploading {path.name}: {fault}")
                return None
        prompt = job.prompt(self.workflow, uploaded)
        prompt_id = str(uuid.uuid4())
        # Written before sending: whatever happens next, a rerun knows what to ask about.
        self._record(job, QUEUED, prompt_id=prompt_id, requeues=requeues)
        tries = 0
        while True:
            tries += 1
            try:
                accepted = self.server.queue_prompt(prompt, prompt_id)
                break
            except TransportError as problem:
                # The answer was lost: the prompt may be queued already. Wait for the
                # server, then ask before sending it again.
                self.log(f"line {job.line}: no answer to /prompt ({problem}); checking")
                try:
                    known = self.server.knows(prompt_id)
                except ServerError as fault:
                    self._fail(job, str(fault), prompt_id=prompt_id)
                    return None
                if known:
                    accepted = prompt_id
                    break
                if tries >= self.options.retry.fault_tries:
                    self._fail(job, f"no usable answer to /prompt in {tries} tries: {problem}")
                    return None
            except ServerError as refused:
                self._fail(job, rejected_text(refused))
                return None
        if accepted != prompt_id:  # a server that picks its own ids
            self._record(job, QUEUED, prompt_id=accepted, requeues=requeues)
        self.log(f"[{self.started}/{self.total}] line {job.line} [{job.label}]: queued "
                 f"({accepted})")
        return _Flight(job, accepted, requeues)

    # --- following ----------------------------------------------------------------------------

    def _poll(self, in_flight: dict[str, _Flight]) -> None:
        snapshot: tuple[set[str], set[str]] | None = None
        for prompt_id, flight in list(in_flight.items()):
            try:
                record = self.server.history(prompt_id)
                if record is None:
                    # Every prompt in flight was queued before this poll began, so it is in
                    # the queue unless it finished (then history has it) or the server lost it.
                    snapshot = snapshot or self.server.queued_ids()
                    running, pending = snapshot
                    if prompt_id in running or prompt_id in pending:
                        if prompt_id in running and not flight.running:
                            flight.running = True
                            self.log(f"line {flight.job.line} [{flight.job.label}]: running")
                        continue
                    record = self.server.history(prompt_id)
            except ServerError as fault:
                del in_flight[prompt_id]
                self._fail(flight.job, f"following prompt {prompt_id}: {fault}",
                           prompt_id=prompt_id)
                continue
            del in_flight[prompt_id]
            if record is None:
                self._lost(flight, in_flight)
            else:
                self._finish(flight, record)

    def _lost(self, flight: _Flight, in_flight: dict[str, _Flight]) -> None:
        job = flight.job
        if flight.requeues >= self.options.requeue_limit:
            self._fail(job, f"the server lost the prompt {flight.requeues + 1} times (restarts?)")
            return
        self.log(f"line {job.line} [{job.label}]: the server no longer knows prompt "
                 f"{flight.prompt_id} (restarted?); queueing it again")
        again = self._submit(job, flight.requeues + 1)
        if again is not None:
            in_flight[again.prompt_id] = again

    def _finish(self, flight: _Flight, record: dict) -> None:
        job = flight.job
        status = record.get("status") or {}
        if status.get("status_str") == "error" or status.get("completed") is False:
            self._fail(job, execution_error_text(status))
            return
        try:
            files = self._download(job, record.get("outputs") or {})
        except (ServerError, ValueError, OSError) as problem:
            # ValueError: the job's folder leads outside --out (a symlink put there).
            self._fail(job, f"downloading the outputs: {problem}", prompt_id=flight.prompt_id)
            return
        seconds = time.monotonic() - flight.started
        self._record(job, DONE, prompt_id=flight.prompt_id, outputs=files)
        self.report.done.append(job)
        self.log(f"line {job.line} [{job.label}]: done in {seconds:.1f} s, "
                 f"{len(files)} file(s) in {self.options.out / job.name}")

    def _download(self, job: Job, outputs: dict[str, Any]) -> list[str]:
        written: list[str] = []
        used: set[str] = set()

        def place(name: str) -> Path:
            base, index = safe_name(name), 2
            candidate = base
            while candidate in used:  # two outputs with one name: keep both
                stem, dot, suffix = base.rpartition(".")
                candidate = f"{stem}-{index}.{suffix}" if dot else f"{base}-{index}"
                index += 1
            used.add(candidate)
            path = path_inside(self.options.out, job.name, candidate)
            path.parent.mkdir(parents=True, exist_ok=True)
            return path

        for node_id, ui in outputs.items():
            if not isinstance(ui, dict):
                continue
            for kind, items in ui.items():
                if not isinstance(items, list):
                    continue
                for item in items:
                    if isinstance(item, dict) and "filename" in item:
                        folder_type = item.get("type") or "output"
                        if folder_type != "output" and not self.options.include_temp:
                            continue
                        subfolder = item.get("subfolder") or ""
                        data = self.server.download(str(item["filename"]), subfolder,
                                                    folder_type)
                        prefix = f"{node_id}_{subfolder}_" if subfolder else f"{node_id}_"
                        path = place(prefix + str(item["filename"]))
                    elif kind == "text" and isinstance(item, str):
                        data = item.encode("utf-8")
                        path = place(f"{node_id}_text.txt")
                    else:
                        continue
                    # Under a temporary name first: a kill mid-write leaves no torn output.
                    partial = path.with_name(f".{path.name}.part")
                    partial.write_bytes(data)
                    os.replace(partial, path)
                    written.append(path.relative_to(self.options.out.resolve()).as_posix())
        return written

    # --- bookkeeping ----------------------------------------------------------------------------

    def _record(self, job: Job, status: str, **fields: Any) -> None:
        self.manifest.record(job.key, status, line=job.line, name=job.name,
                             workflow=self.workflow_hash, **fields)

    def _fail(self, job: Job, reason: str, prompt_id: str | None = None) -> None:
        """Records the row as failed; ``prompt_id``: its prompt may still run or have
        finished on the server, and a rerun asks about it before queueing the row again."""
        extra = {"prompt_id": prompt_id, "may_still_run": True} if prompt_id else {}
        self._record(job, FAILED, error=reason, **extra)
        self.report.failed.append((job, reason))
        self.log(f"line {job.line} [{job.label}]: FAILED: {reason}")


def execution_error_text(status: dict) -> str:
    """ComfyUI's error for a failed prompt, from its history status messages."""
    for event, data in status.get("messages") or []:
        if not isinstance(data, dict):
            continue
        where = f"node {data.get('node_id')} ({data.get('node_type')})"
        if event == "execution_error":
            message = str(data.get("exception_message", "")).strip()
            return f"{where}: {data.get('exception_type', 'error')}: {message}"
        if event == "execution_interrupted":
            return f"interrupted on the server at {where}"
    return f"the server reports status {status.get('status_str')!r} without an error message"


def rejected_text(refused: ServerError) -> str:
    """ComfyUI's validation errors for a refused prompt (HTTP 400 on /prompt)."""
    body = refused.body
    if not isinstance(body, dict):
        return f"prompt refused (HTTP {refused.status}): {body}"
    parts = []
    error = body.get("error")
    if isinstance(error, dict):
        parts.append(": ".join(str(x) for x in (error.get("message"), error.get("details")) if x))
    for node_id, info in (body.get("node_errors") or {}).items():
        for problem in (info or {}).get("errors", []):
            detail = ": ".join(str(x) for x in (problem.get("message"), problem.get("details"))
                               if x)
            parts.append(f"node {node_id} ({info.get('class_type')}): {detail}")
    return f"prompt refused (HTTP {refused.status}): " + "; ".join(p for p in parts if p)


def load_and_check(workflow: Path, jobs: Path) -> list[Job]:
    """The jobs, checked against the workflow without contacting any server."""
    return read_jobs(jobs, load_workflow(workflow))
