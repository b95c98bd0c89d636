"""A small HTTP server on loopback standing in for the admin API: it answers as told and keeps what it received."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """Answers every request with ``answer`` (status, JSON body) after ``delay`` seconds, and keeps what it got."""

    url: str
    received: list[Received] = field(default_factory=list)
    answer: tuple[int, Any] = (200, {"integrations": []})
    delay: float = 0.0
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)  # by method, before ``answer``
    paths: dict[str, tuple[int, Any]] = field(default_factory=dict)  # by the end of the path, before both
    etag: str | None = None


@contextmanager
def serve() -> Iterator[Server]:
    """A server on a free loopback port, until the block ends."""
    state = Server("")

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.received.append(Received(self.command, self.path, dict(self.headers.items()), body))
            time.sleep(state.delay)
            route = self.path.split("?")[0]
            by_path = next((answer for tail, answer in state.paths.items() if route.endswith(tail)), None)
            status, answer = by_path or state.answers.get(self.command, state.answer)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if state.etag:
                self.send_header("ETag", state.etag)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
