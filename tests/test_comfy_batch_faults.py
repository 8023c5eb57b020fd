"""The batch client against a server that answers badly: HTTP 500, an HTML page where JSON
belongs, a body cut short; an output folder that is a symlink out of --out; files in the
image column that are not images. Each fails its row (or, retried, passes), never the batch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_comfy_batch import HEADER, ROWS, TYPED, FakeComfy, options, write_jobs

from comfy_batch import JobsError, Manifest, run_batch
from comfy_batch.__main__ import main

ERROR_PAGE = b"500 Internal Server Error\n\nServer got itself in trouble"
HTML_PAGE = b"<html><head><title>Welcome to nginx!</title></head><body>proxy</body></html>"


class FaultyComfy(FakeComfy):
    """``fault(method, path)`` → "500", "html", "truncated" or None (answer normally)."""

    def __init__(self, root: Path):
        self.fault = lambda method, path: None
        self.faults_sent: list[tuple[str, str, str]] = []
        super().__init__(root)

    def _handler(self):
        fake = self

        class Faulty(super()._handler()):
            def do_GET(self):
                if not self.inject("GET"):
                    super().do_GET()

            def do_POST(self):
                if not self.inject("POST"):
                    super().do_POST()

            def inject(self, method: str) -> bool:
                kind = fake.fault(method, self.path)
                if kind is None:
                    return False
                if method == "POST":
                    self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.faults_sent.append((method, self.path, kind))
                if kind == "500":
                    self.reply(500, ERROR_PAGE)
                elif kind == "html":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(HTML_PAGE)))
                    self.end_headers()
                    self.wfile.write(HTML_PAGE)
                else:  # announces more than it sends, then hangs up
                    self.send_response(200)
                    self.send_header("Content-Length", "4096")
                    self.end_headers()
                    self.wfile.write(b'{"queue_running": [')
                    self.close_connection = True
                return True

        return Faulty


@pytest.fixture
def server(tmp_path):
    fake = FaultyComfy(tmp_path / "comfy")
    yield fake
    fake.stop()


def first_n(count: int, kind: str, method: str, prefix: str):
    """A fault for the first ``count`` requests to paths starting with ``prefix``."""
    seen = []

    def fault(request_method: str, path: str) -> str | None:
        if request_method == method and path.startswith(prefix) and len(seen) < count:
            seen.append(path)
            return kind
        return None

    return fault


@pytest.mark.parametrize("kind", ["500", "html", "truncated"])
@pytest.mark.parametrize(("method", "where"), [("GET", "/history/"), ("POST", "/upload/image"),
                                               ("GET", "/queue"), ("GET", "/view")])
def test_a_passing_fault_is_retried_and_the_row_finishes(server, tmp_path, kind, method,
                                                         where) -> None:
    jobs = write_jobs(tmp_path, ROWS[:1], HEADER)
    server.run_seconds = 0.1  # long enough for the client to ask /queue
    server.fault = first_n(2, kind, method, where)
    logs: list[str] = []
    report = run_batch(options(server, tmp_path, jobs), log=logs.append)
    assert len(report.done) == 1 and not report.failed, report.summary()
    assert len(server.faults_sent) == 2 and len(server.submissions) == 1
    assert any(line.startswith("server fault") for line in logs)


@pytest.mark.parametrize(("kind", "text"), [
    ("500", "answered 500: 500 Internal Server Error Server got itself in trouble"),
    ("html", "an unexpected answer: <html><head><title>Welcome to nginx!"),
    ("truncated", "an answer cut short (19 bytes, 4077 more announced)"),
])
def test_a_lasting_fault_on_history_fails_that_row_and_the_batch_goes_on(server, tmp_path,
                                                                        capsys, kind,
                                                                        text) -> None:
    jobs = write_jobs(tmp_path, ROWS, HEADER)

    def fault(method: str, path: str) -> str | None:
        first = server.submissions[0][0] if server.submissions else None
        return kind if first and path == f"/history/{first}" else None

    server.fault = fault
    arguments = ["--server", server.url, "--workflow", str(TYPED), "--jobs", str(jobs),
                 "--out", str(tmp_path / "out"), "--poll", "0.02"]
    code = main(arguments)
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in out + err
    assert "2 done, 0 already done before, 1 failed" in out
    assert f"line 2 [cup left]: following prompt {server.submissions[0][0]}: GET /history/" in out
    assert text in out
    # The prompt may have finished on the server: the rerun asks before queueing again.
    record = Manifest(tmp_path / "out" / "manifest.jsonl").get("cup left")
    assert record["status"] == "failed" and record["may_still_run"]
    server.fault = lambda method, path: None
    report = run_batch(options(server, tmp_path, jobs), log=lambda _: None)
    assert [job.name for job in report.done] == ["cup_left"]
    assert len(server.submissions) == 3  # picked up, not queued a second time


def test_a_lasting_500_on_upload_fails_each_row_with_the_servers_text(server, tmp_path,
                                                                      capsys) -> None:
    jobs = write_jobs(tmp_path, ROWS, HEADER)
    server.fault = lambda method, path: "500" if path == "/upload/image" else None
    report = run_batch(options(server, tmp_path, jobs), log=print)
    assert len(report.failed) == 3 and not server.submissions
    for _, reason in report.failed:
        assert reason.startswith("uploading frame") and "Server got itself in trouble" in reason
    assert len(server.faults_sent) == 3 * 4  # four tries a row, then the row fails
    assert "Traceback" not in capsys.readouterr().out


def test_html_answers_to_prompt_fail_the_row_without_queueing_it_twice(server,
                                                                       tmp_path) -> None:
    jobs = write_jobs(tmp_path, ROWS[:1], HEADER)
    server.fault = lambda method, path: "html" if path == "/prompt" else None
    report = run_batch(options(server, tmp_path, jobs), log=lambda _: None)
    (failed,) = report.failed
    assert failed[1].startswith("no usable answer to /prompt in 4 tries")
    assert not server.submissions
    server.fault = first_n(1, "html", "POST", "/prompt")
    report = run_batch(options(server, tmp_path, jobs), log=lambda _: None)
    assert len(report.done) == 1 and len(server.submissions) == 1


def test_a_job_folder_that_is_a_symlink_out_of_out_fails_that_row(server, tmp_path) -> None:
    jobs = write_jobs(tmp_path, ROWS, HEADER)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "lift").symlink_to(elsewhere)
    report = run_batch(options(server, tmp_path, jobs), log=lambda _: None)
    assert sorted(job.name for job in report.done) == ["cup_left", "plate"]
    ((job, reason),) = report.failed
    assert job.name == "lift" and "outside" in reason and str(elsewhere) in reason
    assert not any(elsewhere.iterdir()) and len(server.submissions) == 2


def test_a_symlink_placed_while_the_prompt_runs_fails_that_row_at_download(server,
                                                                           tmp_path) -> None:
    jobs = write_jobs(tmp_path, ROWS[:1], HEADER)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server.on_run = lambda prompt_id: (tmp_path / "out" / "cup_left").symlink_to(elsewhere)
    report = run_batch(options(server, tmp_path, jobs), log=lambda _: None)
    ((_, reason),) = report.failed
    assert reason.startswith("downloading the outputs: refusing to write")
    assert not any(elsewhere.iterdir())


def test_files_that_are_not_images_are_refused_before_anything_is_sent(server, tmp_path,
                                                                       capsys) -> None:
    (tmp_path / "notes.png").write_text("a text file named like an image\n")
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    jobs = write_jobs(tmp_path, ["a,/etc/passwd,x,,1", "b,notes.png,y,,2", "c,frame0.png,z,,3",
                                 "d,cut.png,w,,4"], "id,image,instruction,states,seed")
    with pytest.raises(JobsError) as refused:
        run_batch(options(server, tmp_path, jobs), log=lambda _: None)
    message = str(refused.value)
    assert "line 2: image: refusing to upload '/etc/passwd': not an image" in message
    assert "line 3: image: refusing to upload" in message and "notes.png" in message
    assert "line 5: image: refusing to upload" in message and "line 4" not in message
    assert not (server.root / "input").exists()
    arguments = ["--server", server.url, "--workflow", str(TYPED), "--jobs", str(jobs),
                 "--out", str(tmp_path / "out")]
    assert main(arguments) == 2
    assert "/etc/passwd" in capsys.readouterr().err


def test_an_image_replaced_by_another_file_after_the_check_is_not_uploaded(server,
                                                                           tmp_path) -> None:
    jobs = write_jobs(tmp_path, ROWS[:2], HEADER)

    def replace_second_image(line: str) -> None:
        if "queued" in line:
            (tmp_path / "frame1.png").write_text("root:x:0:0:root:/root:/bin/bash\n")

    report = run_batch(options(server, tmp_path, jobs), log=replace_second_image)
    assert [job.name for job in report.done] == ["cup_left"]
    ((job, reason),) = report.failed
    assert job.name == "lift" and "refusing to upload" in reason and "frame1.png" in reason
    uploaded = list((server.root / "input").rglob("*"))
    assert not any(path.name.endswith("frame1.png") for path in uploaded)
