"""ComfyUI's HTTP API as the batch client uses it, with retries while the server is away.

Endpoints (ComfyUI's own): ``POST /upload/image`` (multipart), ``POST /prompt``,
``GET /history/{prompt_id}``, ``GET /queue``, ``GET /view``. Standard library only.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import error, parse, request

# Statuses a proxy or a restarting server answers with while it cannot serve: retried.
RETRY_STATUSES = {502, 503, 504}


class ServerUnavailable(ConnectionError):
    """The server did not answer within the retry budget."""


class TransportError(ConnectionError):
    """A request that got no answer (only raised when retrying was not asked for)."""


class ServerError(RuntimeError):
    """The server answered with an error status (not retried); ``body`` is its JSON or text."""

    def __init__(self, method: str, path: str, status: int, body: Any):
        self.status = status
        self.body = body
        text = body if isinstance(body, str) else json.dumps(body)[:2000]
        super().__init__(f"{method} {path} answered {status}: {text}")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``initial``, ×``factor`` per try up to ``maximum`` seconds
    between tries, giving up once ``give_up_after`` seconds have passed."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    give_up_after: float = 600.0

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
                retry: bool = True) -> bytes:
        """One request, retried with backoff while the server is down, restarting or
        answering 502/503/504 (``retry=False``: ``TransportError`` at the first failure).
        Other error statuses raise ``ServerError`` at once."""
        url = self.base_url + path + ("?" + parse.urlencode(query) if query else "")
        started = time.monotonic()
        delays = self.retry.delays()
        while True:
            try:
                call = request.Request(url, data=body, headers=headers or {}, method=method)
                with request.urlopen(call, timeout=self.timeout) as response:
                    return response.read()
            except error.HTTPError as failure:
                payload = failure.read()
                if failure.code not in RETRY_STATUSES:
                    raise ServerError(method, path, failure.code, _decode(payload)) from None
                reason = f"HTTP {failure.code}"
            except (error.URLError, ConnectionError, TimeoutError, OSError) as failure:
                reason = str(getattr(failure, "reason", failure))
            if not retry:
                raise TransportError(f"{method} {path}: {reason}")
            waited = time.monotonic() - started
            if waited >= self.retry.give_up_after:
                raise ServerUnavailable(
                    f"{self.base_url} did not answer {method} {path} for {waited:.0f} s "
                    f"(last: {reason}); is ComfyUI running? Rerun the same command to resume"
                )
            delay = min(next(delays), max(0.0, self.retry.give_up_after - waited))
            self.log(f"server unavailable ({reason}); retrying {method} {path} in {delay:.1f} s")
            self.sleep(delay)

    def get_json(self, path: str, query: dict[str, str] | None = None) -> Any:
        return json.loads(self.request("GET", path, query) or b"null")

    def post_json(self, path: str, payload: Any, retry: bool = True) -> Any:
        body = json.dumps(payload).encode()
        answer = self.request("POST", path, body=body,
                              headers={"Content-Type": "application/json"}, retry=retry)
        return json.loads(answer or b"null")

    # --- ComfyUI's endpoints ---------------------------------------------------------------

    def upload_image(self, path: Path, name: str, subfolder: str) -> str:
        """Uploads into ComfyUI's input folder (overwriting a file of the same name) and
        returns the value a Load Image node takes ("subfolder/name")."""
        boundary = uuid.uuid4().hex
        fields = {"type": "input", "subfolder": subfolder, "overwrite": "true"}
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
            .encode() for key, value in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + path.read_bytes() + b"\r\n"
        )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        answer = json.loads(self.request(
            "POST", "/upload/image", body=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}))
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
        answer = self.get_json(f"/history/{parse.quote(prompt_id)}")
        return answer.get(prompt_id) if isinstance(answer, dict) else None

    def queued_ids(self) -> tuple[set[str], set[str]]:
        """(running, pending) prompt ids."""
        answer = self.get_json("/queue")

        def ids(items: list) -> set[str]:
            return {str(item[1]) for item in items if isinstance(item, list) and len(item) > 1}

        return ids(answer.get("queue_running", [])), ids(answer.get("queue_pending", []))

    def download(self, filename: str, subfolder: str, kind: str) -> bytes:
        return self.request("GET", "/view",
                            {"filename": filename, "subfolder": subfolder, "type": kind})


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")
