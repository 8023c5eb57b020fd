"""The batch client against a local stand-in for ComfyUI's HTTP API (127.0.0.1, a thread):
uploads, queueing, progress, downloads, resume, retries, restarts, failure reports and
output names that cannot leave the output folder."""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from comfy_batch import (
    BatchOptions,
    JobsError,
    Manifest,
    RetryPolicy,
    path_inside,
    read_jobs,
    run_batch,
    safe_name,
)
from comfy_batch.__main__ import main

REPO_ROOT = Path(__file__).resolve().parents[1]
TYPED = REPO_ROOT / "workflows" / "api" / "aid_predict_typed_states.json"
LLAVA = REPO_ROOT / "workflows" / "api" / "aid_predict_llava_states.json"
FAST_RETRY = RetryPolicy(initial=0.02, factor=2.0, maximum=0.1, give_up_after=10.0)


class LocalServer(ThreadingHTTPServer):
    """Binds without the reverse DNS lookup http.server does (slow, and not local)."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class FakeComfy:
    """ComfyUI's endpoints with an in-memory queue and history, like ComfyUI's own: a
    restart (``restart``) forgets both. Prompts "run" in a worker thread, in order; each
    output node writes a file whose content records the prompt's inputs."""

    def __init__(self, root: Path, port: int = 0, run_seconds: float = 0.05):
        self.root = root
        self.port = port
        self.run_seconds = run_seconds
        self.lock = threading.Lock()
        self.submissions: list[tuple[str, dict]] = []
        self.drop_next_prompt_answers = 0
        self.reject = lambda prompt: None  # → a 400 body
        self.explode = lambda prompt: None  # → an exception message
        self.on_run = lambda prompt_id: None
        self.counter = 0
        self.httpd = None
        self.start()

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.queue: list[tuple[str, dict]] = []
        self.running: str | None = None
        self.history: dict[str, dict] = {}
        self.stopped = threading.Event()
        self.httpd = LocalServer(("127.0.0.1", self.port), self._handler())
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        threading.Thread(target=self._work, daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def restart(self, down_for: float = 0.0) -> None:
        """A restarted ComfyUI: same port, empty queue and history."""
        self.stop()
        time.sleep(down_for)
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        stopped = self.stopped
        while not stopped.is_set():
            with self.lock:
                item = self.queue.pop(0) if self.queue else None
                self.running = item[0] if item else None
            if item is None:
                time.sleep(0.01)
                continue
            prompt_id, prompt = item
            self.on_run(prompt_id)
            time.sleep(self.run_seconds)
            if stopped.is_set():
                return  # killed while running: the prompt is lost with the process
            record = self._execute(prompt_id, prompt)
            with self.lock:
                self.history[prompt_id] = record
                self.running = None

    def _execute(self, prompt_id: str, prompt: dict) -> dict:
        messages = [["execution_start", {"prompt_id": prompt_id}]]
        problem = self.explode(prompt)
        if problem:
            messages.append(["execution_error", {
                "prompt_id": prompt_id, "node_id": "11", "node_type": "AIDConditioning",
                "exception_type": "ValueError", "exception_message": problem + "\n",
                "traceback": []}])
            return {"prompt": [0, prompt_id, prompt, {}, []], "outputs": {},
                    "status": {"status_str": "error", "completed": False, "messages": messages}}
        outputs = {}
        for node_id, node in prompt.items():
            kind = node["class_type"]
            if kind in ("SaveAnimatedWEBP", "SaveVideo"):
                self.counter += 1
                folder, _, prefix = node["inputs"]["filename_prefix"].rpartition("/")
                name = f"{prefix}_{self.counter:05d}_.{'webp' if 'WEBP' in kind else 'mp4'}"
                target = self.root / "output" / folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(prompt))
                outputs[node_id] = {"images": [{"filename": name, "subfolder": folder,
                                                "type": "output"}], "animated": [True]}
            elif kind == "PreviewAny":
                outputs[node_id] = {"text": ["a state\nanother state"]}
        messages.append(["execution_success", {"prompt_id": prompt_id}])
        return {"prompt": [0, prompt_id, prompt, {}, []], "outputs": outputs,
                "status": {"status_str": "success", "completed": True, "messages": messages}}

    # --- HTTP -----------------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status: int, body) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path.startswith("/history/"):
                    prompt_id = url.path.rsplit("/", 1)[1]
                    with fake.lock:
                        found = fake.history.get(prompt_id)
                    return self.reply(200, {prompt_id: found} if found else {})
                if url.path == "/queue":
                    with fake.lock:
                        running = [[0, fake.running, {}, {}, []]] if fake.running else []
                        pending = [[i, p, {}, {}, []] for i, (p, _) in enumerate(fake.queue)]
                    return self.reply(200, {"queue_running": running, "queue_pending": pending})
                if url.path == "/view":
                    base = fake.root / query.get("type", "output")
                    path = base / query.get("subfolder", "") / query["filename"]
                    if ".." in query["filename"] or not path.is_file():
                        return self.reply(404, {"error": "not found"})
                    return self.reply(200, path.read_bytes())
                return self.reply(404, {})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if self.path == "/upload/image":
                    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
                    fields = {part.get_param("name", header="content-disposition"): part
                              for part in message.iter_parts()}
                    image = fields["image"]
                    subfolder = fields["subfolder"].get_content().strip()
                    name = image.get_filename()
                    target = fake.root / "input" / subfolder / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(image.get_payload(decode=True))
                    return self.reply(200, {"name": name, "subfolder": subfolder,
                                            "type": "input"})
                if self.path == "/prompt":
                    payload = json.loads(body)
                    prompt, prompt_id = payload["prompt"], payload["prompt_id"]
                    refused = fake.reject(prompt)
                    if refused:
                        return self.reply(400, refused)
                    with fake.lock:
                        fake.submissions.append((prompt_id, prompt))
                        fake.queue.append((prompt_id, prompt))
                        drop = fake.drop_next_prompt_answers > 0
                        fake.drop_next_prompt_answers -= drop
                    if drop:  # queued, but the answer never arrives
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return None
                    return self.reply(200, {"prompt_id": prompt_id, "number": 0,
                                            "node_errors": {}})
                return self.reply(404, {})

        return Handler


@pytest.fixture
def server(tmp_path):
    fake = FakeComfy(tmp_path / "comfy")
    yield fake
    fake.stop()


def write_jobs(folder: Path, rows: list[str], header: str) -> Path:
    from PIL import Image

    for index in range(3):
        Image.new("RGB", (8, 6), (40 * index, 90, 200)).save(folder / f"frame{index}.png")
    path = folder / "jobs.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


HEADER = "id,image,instruction,states,seed,KarrasScheduler.steps"
ROWS = [
    'cup left,frame0.png,move the cup left,"a cup | the cup moves left",1,',
    'lift,frame1.png,lift the cup,,2,12',
    'plate,frame2.png,put the cup on the plate,"one\nstate a line",3,',
]


def options(server, tmp_path, jobs, workflow=TYPED, **changes) -> BatchOptions:
    return BatchOptions(server=server.url, workflow=workflow, jobs=jobs, out=tmp_path / "out",
                        poll_interval=0.02, retry=FAST_RETRY, **changes)


def saved_prompt(out: Path, job: str) -> dict:
    video = next((out / job).glob("32_*.mp4"))
    return json.loads(video.read_text())


def test_each_row_runs_with_its_values_and_its_outputs_come_back(server, tmp_path) -> None:
    jobs = write_jobs(tmp_path, ROWS, HEADER)
    logs: list[str] = []
    report = run_batch(options(server, tmp_path, jobs), log=logs.append)
    assert [job.name for job in report.done] == ["cup_left", "lift", "plate"]
    assert not report.failed and len(server.submissions) == 3
    out = tmp_path / "out"
    prompt = saved_prompt(out, "cup_left")
    assert prompt["11"]["inputs"]["instruction"] == "move the cup left"
    assert prompt["11"]["inputs"]["states"] == "a cup\nthe cup moves left"
    assert prompt["23"]["inputs"]["noise_seed"] == 1 and prompt["22"]["inputs"]["steps"] == 25
    # The uploaded frame replaces the workflow's example frame.
    assert prompt["10"]["class_type"] == "LoadImage"
    image = prompt["10"]["inputs"]["image"]
    assert image.startswith("aid_batch/") and image.endswith("_frame0.png")
    assert (server.root / "input" / image).read_bytes() == (tmp_path / "frame0.png").read_bytes()
    assert saved_prompt(out, "lift")["22"]["inputs"]["steps"] == 12
    assert saved_prompt(out, "plate")["11"]["inputs"]["states"] == "one\nstate a line"
    assert sorted(p.name for p in (out / "lift").iterdir()) == [
        "32_video_aid_predict_00002_.mp4"]
    records = Manifest(out / "manifest.jsonl").records
    assert {key: r["status"] for key, r in records.items()} == dict.fromkeys(
        ["cup left", "lift", "plate"], "done")
    assert any("running" in line for line in logs) and "3 done" in logs[-1]


def test_a_rerun_skips_finished_rows_and_runs_only_new_ones(server, tmp_path) -> None:
    jobs = write_jobs(tmp_path, ROWS[:2], HEADER)
    run_batch(options(server, tmp_path, jobs), log=lambda _: None)
    assert len(server.submissions) == 2
    report = run_batch(options(server, tmp_path, jobs), log=lambda _: None)
    assert len(server.submissions) == 2 and len(report.skipped) == 2 and not report.done
    jobs = write_jobs(tmp_path, ROWS, HEADER)
    report = run_batch(options(server, tmp_path, jobs), log=lambda _: None)
    assert [job.name for job in report.done] == ["plate"] and len(server.submissions) == 3


def test_prompts_queued_before_an_interruption_are_picked_up_not_queued_again(server,
                                                                             tmp_path) -> None:
    jobs = write_jobs(tmp_path, ROWS[:2], HEADER)
    # The first run stops right after queueing (as a Ctrl-C would).
    server.run_seconds = 0.3

    class Stop(Exception):
        pass

    def stop_when_queued(line: str) -> None:
        if "queued" in line:
            raise Stop

    with pytest.raises(Stop):
        run_batch(options(server, tmp_path, jobs, max_in_flight=1), log=stop_when_queued)
    assert len(server.submissions) == 1
    logs: list[str] = []
    report = run_batch(options(server, tmp_path, jobs, max_in_flight=1), log=logs.append)
    assert len(report.done) == 2 and len(server.submissions) == 2  # not 3
    assert any("picking up prompt" in line for line in logs)


def test_a_lost_answer_to_prompt_does_not_queue_twice(server, tmp_path) -> None:
    jobs = write_jobs(tmp_path, ROWS[:1], HEADER)
    server.drop_next_prompt_answers = 1
    logs: list[str] = []
    report = run_batch(options(server, tmp_path, jobs), log=logs.append)
    assert len(report.done) == 1 and len(server.submissions) == 1
    assert any("no answer to /prompt" in line for line in logs)


def test_the_client_waits_for_a_server_that_is_down_at_the_start(tmp_path) -> None:
    fake = FakeComfy(tmp_path / "comfy")
    port = fake.port
    fake.stop()
    jobs = write_jobs(tmp_path, ROWS[:1], HEADER)
    starter = threading.Timer(0.4, lambda: (setattr(fake, "port", port), fake.start()))
    starter.start()
    logs: list[str] = []
    try:
        report = run_batch(options(fake, tmp_path, jobs), log=logs.append)
    finally:
        starter.join()
        fake.stop()
    assert len(report.done) == 1
    assert any(line.startswith("server unavailable") for line in logs)


def test_a_server_restart_loses_the_prompt_and_the_client_queues_it_again(server,
                                                                          tmp_path) -> None:
    jobs = write_jobs(tmp_path, ROWS[:1], HEADER)
    server.run_seconds = 0.3
    restarted = threading.Event()

    def restart_once(prompt_id: str) -> None:
        if not restarted.is_set():
            restarted.set()
            threading.Thread(target=server.restart, args=(0.2,)).start()

    server.on_run = restart_once
    logs: list[str] = []
    report = run_batch(options(server, tmp_path, jobs), log=logs.append)
    assert len(report.done) == 1 and len(server.submissions) == 2
    assert any("no longer knows prompt" in line for line in logs)
    record = Manifest(tmp_path / "out" / "manifest.jsonl").get("cup left")
    assert record["status"] == "done" and len(record["outputs"]) == 1
    assert len(list((tmp_path / "out" / "cup_left").iterdir())) == 1  # no duplicates


def test_failed_rows_are_reported_with_comfyuis_error_and_retried_by_a_rerun(server,
                                                                           tmp_path) -> None:
    jobs = write_jobs(tmp_path, ROWS, HEADER)
    server.explode = lambda prompt: (
        "reference_frames: 16 frames given for video_frames = 16"
        if prompt["23"]["inputs"]["noise_seed"] == 2 else None)
    server.reject = lambda prompt: {
        "error": {"type": "prompt_outputs_failed_validation",
                  "message": "Prompt outputs failed validation", "details": ""},
        "node_errors": {"2": {"class_type": "AIDApply", "errors": [{
            "message": "Custom validation failed for node",
            "details": "aid_weights - aid_weights: 'x' is not in models/aid"}]}},
    } if prompt["23"]["inputs"]["noise_seed"] == 3 else None
    logs: list[str] = []
    report = run_batch(options(server, tmp_path, jobs), log=logs.append)
    assert [job.name for job in report.done] == ["cup_left"]
    failures = {job.name: reason for job, reason in report.failed}
    assert failures["lift"] == ("node 11 (AIDConditioning): ValueError: reference_frames: 16 "
                                "frames given for video_frames = 16")
    assert failures["plate"].startswith("prompt refused (HTTP 400): Prompt outputs failed "
                                        "validation; node 2 (AIDApply): Custom validation")
    assert "failed rows" in logs[-1] and "line 3 [lift]" in logs[-1]
    server.explode = lambda prompt: None
    server.reject = lambda prompt: None
    report = run_batch(options(server, tmp_path, jobs), log=lambda _: None)
    assert sorted(job.name for job in report.done) == ["lift", "plate"]
    assert len(report.skipped) == 1


def test_output_names_never_leave_the_output_folder(server, tmp_path) -> None:
    jobs = write_jobs(tmp_path, ['../../evil,frame0.png,x,,1,', '/etc/passwd,frame1.png,y,,2,'],
                      HEADER)
    report = run_batch(options(server, tmp_path, jobs), log=lambda _: None)
    out = (tmp_path / "out").resolve()
    names = sorted(job.name for job in report.done)
    assert names == ["etc_passwd", "evil"]
    for path in out.rglob("*"):
        assert out in path.resolve().parents
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("../../etc/passwd", "etc_passwd"), ("..", "unnamed"), (".hidden", "hidden"),
    ("a/b\\c:d", "a_b_c_d"), ("café au lait.png", "cafe_au_lait.png"), ("CON", "_CON"),
    ("nul.txt", "_nul.txt"), ("x" * 200 + ".webp", "x" * 75 + ".webp"), ("", "unnamed"),
])
def test_safe_names(text: str, expected: str) -> None:
    assert safe_name(text) == expected


def test_a_symlink_cannot_lead_a_file_out_of_the_folder(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "job").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside"):
        path_inside(out, "job", "file.webp")
    assert path_inside(out, "other", "../file.webp") == out.resolve() / "other" / "file.webp"


def test_columns_map_onto_titles_ids_classes_and_primitives(tmp_path) -> None:
    from comfy_batch import Target, load_workflow

    workflow = load_workflow(LLAVA)
    jobs_path = write_jobs(tmp_path, ['x,frame0.png,pour,"a | b",5,0.5,3'],
                           "id,image,instruction,states,seed,AIDGuider.text_scale,"
                           "22.steps")
    (job,) = read_jobs(jobs_path, workflow)
    # The image column goes to the one first-frame node, here AID Example Frame.
    assert job.uploads == {Target("10", "image"): tmp_path / "frame0.png"}
    # The instruction feeds two nodes through the "Instruction" primitive: set it there.
    assert job.values[Target("12", "value")] == "pour"
    # Typed states replace the link from Predict Future States.
    assert job.values[Target("11", "states")] == "a\nb"
    assert job.values[Target("23", "noise_seed")] == 5
    assert job.values[Target("20", "text_scale")] == 0.5
    assert job.values[Target("22", "steps")] == 3
    prompt = job.prompt(workflow, {Target("10", "image"): "aid_batch/x.png"})
    assert prompt["11"]["inputs"]["states"] == "a\nb"
    assert workflow["11"]["inputs"]["states"] == ["13", 0]
    # The example frame becomes a Load Image of the upload, on the same links.
    assert prompt["10"]["class_type"] == "LoadImage"
    assert prompt["10"]["inputs"] == {"image": "aid_batch/x.png"}
    assert workflow["10"]["class_type"] == "AIDExampleFrame"


def test_bad_csvs_are_refused_before_anything_is_sent(tmp_path, capsys) -> None:
    jobs = write_jobs(tmp_path, ['a,missing.png,x,,1,', 'a,frame0.png,y,,z,'],
                      "id,image,instruction,states,seed,Nope.steps")
    with pytest.raises(JobsError) as failure:
        read_jobs(jobs, json.loads(TYPED.read_text()))
    assert "column 'Nope.steps': no node with id, title or class 'Nope'" in str(failure.value)
    jobs = write_jobs(tmp_path, ['a,missing.png,x,,1', 'a,frame0.png,y,,z'],
                      "id,image,instruction,states,seed")
    with pytest.raises(JobsError) as failure:
        read_jobs(jobs, json.loads(TYPED.read_text()))
    message = str(failure.value)
    assert "line 2: image: image file" in message and "missing.png" in message
    assert "line 3: seed: invalid literal" in message and "also used on line 2" in message
    ui = REPO_ROOT / "workflows" / "aid_predict_typed_states.json"
    assert main(["--workflow", str(ui), "--jobs", str(jobs), "--out", str(tmp_path), "--check"
                 ]) == 2
    assert "UI-format workflow" in capsys.readouterr().err


def test_command_line_exit_codes(server, tmp_path, capsys) -> None:
    jobs = write_jobs(tmp_path, ROWS[:1], HEADER)
    arguments = ["--server", server.url, "--workflow", str(TYPED), "--jobs", str(jobs),
                 "--out", str(tmp_path / "out"), "--poll", "0.02"]
    assert main([*arguments[2:], "--check"]) == 0
    assert main(arguments) == 0
    assert "1 done" in capsys.readouterr().out
    server.stop()
    jobs = write_jobs(tmp_path, ROWS[:2], HEADER)
    assert main([*arguments, "--retry-for", "0.2"]) == 3
    assert "did not answer" in capsys.readouterr().err
    server.start()  # the fixture stops it again


def test_a_torn_manifest_line_is_skipped_and_the_next_record_starts_fresh(tmp_path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"key": "a", "status": "done"}\n{"key": "b", "sta')
    manifest = Manifest(path)
    assert manifest.status("a") == "done" and manifest.skipped_lines == 1
    manifest.record("c", "queued", prompt_id="p")
    assert Manifest(path).status("c") == "queued"
    assert os.path.getsize(path) > 0
