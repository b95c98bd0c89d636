"""What the JRNI adapter tests share: the emulator's seed (a parent company with a branch, a grandchild annex
and an unrelated company), its ids, the app and administrator credentials, and helpers to make a client and to
call the emulator's control plane."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from calsync.adapters.jrni import JrniClient
from calsync.domain import JrniConnection
from emulators.jrni.settings import JrniSettings

APP_ID, APP_KEY = "app-id-for-tests", "app-key-for-tests"
ADMIN = ("parent-admin@example.test", "pass-for-tests")
SECRET = {"app_id": APP_ID, "app_key": APP_KEY, "email": ADMIN[0], "password": ADMIN[1]}
SECRET_NAME = "calsync/jrni/tests"

HEAD_OFFICE, PARIS, ANNEX, OTHER = 10, 11, 12, 20  # the annex is a child of the Paris branch: a grandchild
ALICE, BOB, CAROL, DORA, ERIN, FRED, DAVE = 101, 102, 103, 104, 105, 106, 201
ROOM, ANNEX_ROOM, OLD_ROOM, OTHER_ROOM = 151, 152, 153, 251
CONSULTATION, LONDON_CHAT = 401, 402

SEED: dict[str, Any] = {
    "apps": [{"app_id": APP_ID, "app_key": APP_KEY}],
    "companies": [
        {"id": HEAD_OFFICE, "name": "Head Office", "timezone": "Europe/London", "parent_id": None},
        {"id": PARIS, "name": "Branch Paris", "timezone": "Europe/Paris", "parent_id": HEAD_OFFICE},
        {"id": ANNEX, "name": "Paris Annex", "timezone": "Europe/Paris", "parent_id": PARIS},
        {"id": OTHER, "name": "Other Company", "timezone": "America/New_York"},
    ],
    "admins": [
        {"email": ADMIN[0], "password": ADMIN[1], "company_id": HEAD_OFFICE},
        {"email": "other-admin@example.test", "password": "pass-for-tests", "company_id": OTHER},
    ],
    "people": [
        {"id": ALICE, "company_id": HEAD_OFFICE, "name": "Alice Adviser", "email": "alice@example.test"},
        {
            "id": BOB,
            "company_id": PARIS,
            "name": "Bob Banker",
            "email": "bob@example.test",
            "ews_email": "bob@exchange.example.test",
        },
        {
            "id": CAROL,
            "company_id": PARIS,
            "name": "Carol Away",
            "email": "carol@example.test",
            "disabled": True,
        },
        {
            "id": DORA,
            "company_id": PARIS,
            "name": "Dora Deleted",
            "email": "dora@example.test",
            "deleted": True,
        },
        {"id": FRED, "company_id": PARIS, "name": "Fred Finance", "email": "fred@example.test"},
        {"id": ERIN, "company_id": ANNEX, "name": "Erin Annex", "email": "erin@example.test"},
        {"id": DAVE, "company_id": OTHER, "name": "Dave Elsewhere", "email": "dave@example.test"},
    ],
    "resources": [
        {"id": ROOM, "company_id": PARIS, "name": "Room 1", "ews_email": "room1@exchange.example.test"},
        {"id": ANNEX_ROOM, "company_id": ANNEX, "name": "Annex Room"},
        {"id": OLD_ROOM, "company_id": PARIS, "name": "Old Room", "deleted": True},
        {"id": OTHER_ROOM, "company_id": OTHER, "name": "Other Room"},
    ],
    "services": [
        {
            "id": CONSULTATION,
            "company_id": PARIS,
            "name": "Consultation",
            "duration": 60,
            "pre_time": 5,
            "post_time": 10,
        },
        {"id": LONDON_CHAT, "company_id": HEAD_OFFICE, "name": "London Chat", "duration": 30},
    ],
}

FAST = JrniSettings(
    webhook_timeout_seconds=0.5, webhook_backoff_seconds=0.05, webhook_backoff_max_seconds=0.2
)


def make_client(base_url: str, timeout: float = 5.0, **secret: str) -> JrniClient:
    return JrniClient(
        JrniConnection(base_url=base_url, company_id=str(HEAD_OFFICE), secret_name=SECRET_NAME),
        {**SECRET, **secret},
        timeout=timeout,
    )


def control(base_url: str, method: str, path: str, **kwargs: Any) -> Any:
    """Call the emulator's control plane; any error fails the test."""
    response = requests.request(method, f"{base_url}/_emulator/{path}", timeout=5, **kwargs)
    assert response.ok, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def make_booking(base_url: str, start: str, **fields: Any) -> Any:
    """A booking made in JRNI's screens, as the emulator's control plane makes it: Bob, Consultation (60 min, 5 + 10
    min buffers), Paris, starting ``start`` unless ``fields`` say otherwise."""
    body = {"company_id": PARIS, "datetime": start, "service_id": CONSULTATION, "person_id": BOB}
    return control(base_url, "POST", "bookings", json=body | fields)


def requests_to(base_url: str, method: str, fragment: str) -> int:
    counts = control(base_url, "GET", "stats")["requests"]
    return sum(
        n
        for endpoint, n in counts.items()
        if endpoint.startswith(f"{method} ") and endpoint.endswith(fragment)
    )


@contextmanager
def slow_jrni(*, every: float = 0.0, size: int = 1000, body: bytes = b" ") -> Iterator[str]:
    """A server on 127.0.0.1 that answers every request 200 at once, then sends a body of ``size`` bytes one byte
    ``every`` seconds (or all at once with ``every`` 0): JRNI behind a broken proxy, or a hostile host. Its URL."""

    class Trickling(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.do_GET()

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            try:
                if not every:
                    self.wfile.write((body * (size // len(body) + 1))[:size])
                    return
                for _ in range(size):
                    self.wfile.write(body[:1])
                    self.wfile.flush()
                    time.sleep(every)
            except OSError:
                return  # the client gave up

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
