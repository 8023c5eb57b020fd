"""ComfyUI's HTTP API as the batch client uses it, with retries while the server is away.

Endpoints (ComfyUI's own): ``POST /upload/image`` (multipart), ``POST /prompt``,
``GET /history/{prompt_id}``, ``GET /queue``, ``GET /view``. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib import error, parse, request

# Statuses a proxy or a restarting server answers with while it cannot serve: retried.
RETRY_STATUSES = {502, 503, 504}
# Characters of a server's answer quoted in an error (an HTML error page can be long).
ANSWER_EXCERPT = 300


class ServerUnavailable(ConnectionError):
    """The server did not answer within the retry budget."""


class TransportError(ConnectionError):
    """A request that got no answer (only raised when retrying was not asked for)."""


class ServerError(RuntimeError):
    """The server answered with an error status, or (``status`` 200) with a body that is
    cut short or not the JSON asked for; ``body`` is its JSON or text."""

    def __init__(self, method: str, path: str, status: int, body: Any):
        self.status = status
        self.body = body
        text = _excerpt(body) if isinstance(body, str) else json.dumps(body)[:2000]
        super().__init__(f"{method} {path} answered {status}: {text}")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``initial``, ×``factor`` per try up to ``maximum`` seconds
    between tries, giving up once ``give_up_after`` seconds have passed.

    A server that answers, but badly (HTTP 500, a body cut short, HTML where JSON was
    asked for), is tried ``fault_tries`` times in all, with the same backoff; then the
    request raises ``ServerError`` with what the server said, and that row fails.
    """

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    give_up_after: float = 600.0
    fault_tries: int = 4

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(self.maximum, delay * self.factor)


class ComfyServer:
    """A ComfyUI server at ``base_url`` (e.g. ``http://127.0.0.1:8188``)."""

    def __init__(self, base_url: str, retry: RetryPolicy = RetryPolicy(), timeout: float = 60.0,
                 log: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep):
        parsed = parse.urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"--server must be an http(s) URL like http://127.0.0.1:8188, "
                             f"got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.timeout = timeout
        self.log = log
        self.sleep = sleep
        self.client_id = uuid.uuid4().hex

    # --- transport -----------------------------------------------------------------------

    def request(self, method: str, path: str, query: dict[str, str] | None = None,
                body: bytes | None = None, headers: dict[str, str] | None = None,
                retry: bool = True, decode: Callable[[bytes, str], Any] | None = None) -> Any:
        """One request's body (``decode(body, content_type)`` when given), retried with
        backoff while the server is down, restarting or answering 502/503/504
        (``retry=False``: ``TransportError`` at the first failure, an answer cut short
        included).

        Faults of a server that answers (another 5xx, a body cut short, a body ``decode``
        refuses) are tried ``retry.fault_tries`` times, then raise ``ServerError``; other
        error statuses raise it at once, as do 5xx when ``retry=False``.
        """
        url = self.base_url + path + ("?" + parse.urlencode(query) if query else "")
        started = time.monotonic()
        delays = self.retry.delays()
        faults = 0
        while True:
            fault: ServerError | None = None
            try:
                call = request.Request(url, data=body, headers=headers or {}, method=method)
                with request.urlopen(call, timeout=self.timeout) as response:
                    payload = response.read()
                    content_type = response.headers.get("Content-Type", "")
            except error.HTTPError as failure:
                payload = _read_error_body(failure)
                if failure.code in RETRY_STATUSES:
                    reason = f"HTTP {failure.code}"
                elif failure.code >= 500 and retry:
                    fault = ServerError(method, path, failure.code, _decode(payload))
                    reason = f"HTTP {failure.code}"
                else:
                    raise ServerError(method, path, failure.code, _decode(payload)) from None
            except http.client.IncompleteRead as failure:
                reason = (f"an answer cut short ({len(failure.partial)} bytes, "
                          f"{failure.expected} more announced)")
                fault = ServerError(method, path, 200, reason)
            except (error.URLError, ConnectionError, TimeoutError, OSError,
                    http.client.HTTPException) as failure:
                reason = str(getattr(failure, "reason", failure)) or type(failure).__name__
            else:
                if decode is None:
                    return payload
                try:
                    return decode(payload, content_type)
                except ValueError:
                    reason = f"an unexpected answer: {_text(payload)}"
                    fault = ServerError(method, path, 200, reason)
            if not retry:
                raise TransportError(f"{method} {path}: {reason}")
            if fault is not None:
                faults += 1
                if faults >= self.retry.fault_tries:
                    raise fault
            waited = time.monotonic() - started
            if fault is None and waited >= self.retry.give_up_after:
                raise ServerUnavailable(
                    f"{self.base_url} did not answer {method} {path} for {waited:.0f} s "
                    f"(last: {reason}); is ComfyUI running? Rerun the same command to resume"
                )
            delay = next(delays)
            if fault is None:
                delay = min(delay, max(0.0, self.retry.give_up_after - waited))
                self.log(f"server unavailable ({reason}); retrying {method} {path} in "
                         f"{delay:.1f} s")
            else:
                self.log(f"server fault ({reason}); try {faults + 1} of "
                         f"{self.retry.fault_tries} of {method} {path} in {delay:.1f} s")
            self.sleep(delay)

    def post_json(self, path: str, payload: Any, retry: bool = True) -> dict:
        body = json.dumps(payload).encode()
        return self.request("POST", path, body=body, headers={"Content-Type": "application/json"},
                            retry=retry, decode=_json_object)

    # --- ComfyUI's endpoints ---------------------------------------------------------------

    def upload_image(self, data: bytes, name: str, subfolder: str) -> str:
        """Uploads ``data`` (an image file's bytes) into ComfyUI's input folder (overwriting
        a file of the same name) and returns the value a Load Image node takes
        ("subfolder/name")."""
        boundary = uuid.uuid4().hex
        fields = {"type": "input", "subfolder": subfolder, "overwrite": "true"}
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
            .encode() for key, value in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + data + b"\r\n"
        )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        answer = self.request(
            "POST", "/upload/image", body=body, decode=_json_object,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        stored = answer.get("name", name)
        folder = answer.get("subfolder", subfolder)
        return f"{folder}/{stored}" if folder else stored

    def queue_prompt(self, prompt: dict, prompt_id: str) -> str:
        """Queues an API-format workflow once, without retrying (a retried POST whose first
        answer was lost would queue the prompt twice); returns the prompt id the server uses
        (ours, on servers that accept a client-chosen id).

        Raises:
            TransportError: no answer; the prompt may or may not be queued (ask ``knows``).
            ServerError: refused, e.g. 400 with ComfyUI's validation errors.
        """
        answer = self.post_json("/prompt", {"prompt": prompt, "client_id": self.client_id,
                                            "prompt_id": prompt_id}, retry=False)
        return str(answer.get("prompt_id", prompt_id))

    def knows(self, prompt_id: str) -> bool:
        """Whether the server has the prompt queued, running or finished."""
        if self.history(prompt_id) is not None:
            return True
        running, pending = self.queued_ids()
        return prompt_id in running or prompt_id in pending

    def history(self, prompt_id: str) -> dict | None:
        """The finished prompt's record (outputs, status), or None while it is not finished."""
        answer = self.request("GET", f"/history/{parse.quote(prompt_id)}",
                              decode=_json_object)
        return answer.get(prompt_id)

    def queued_ids(self) -> tuple[set[str], set[str]]:
        """(running, pending) prompt ids."""
        answer = self.request("GET", "/queue", decode=_json_object)

        def ids(items: list) -> set[str]:
            return {str(item[1]) for item in items if isinstance(item, list) and len(item) > 1}

        return ids(answer.get("queue_running", [])), ids(answer.get("queue_pending", []))

    def download(self, filename: str, subfolder: str, kind: str) -> bytes:
        """The output file's bytes; an HTML page in its place (a proxy's, a login's) is a
        fault, not the file."""

        def the_file(payload: bytes, content_type: str) -> bytes:
            if content_type.startswith("text/html") and not filename.lower().endswith(
                    (".html", ".htm")):
                raise ValueError("an HTML page instead of the file")
            return payload

        return self.request("GET", "/view",
                            {"filename": filename, "subfolder": subfolder, "type": kind},
                            decode=the_file)


def _json_object(payload: bytes, content_type: str = "") -> dict:
    """The body as a JSON object; ``ValueError`` for anything else (an HTML page, a list)."""
    answer = json.loads(payload)
    if not isinstance(answer, dict):
        raise ValueError(f"expected a JSON object, got {type(answer).__name__}")
    return answer


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return _text(payload)


def _text(payload: bytes) -> str:
    return _excerpt(payload.decode("utf-8", "replace")) or "(empty)"


def _excerpt(text: str) -> str:
    """``text`` on one line, at most ``ANSWER_EXCERPT`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= ANSWER_EXCERPT else flat[: ANSWER_EXCERPT - 1] + "…"


def _read_error_body(failure: error.HTTPError) -> bytes:
    try:
        return failure.read()
    except http.client.IncompleteRead as cut:
        return cut.partial
    except (OSError, http.client.HTTPException):
        return b""
