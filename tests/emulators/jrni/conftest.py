"""Fixtures for the JRNI emulator tests: one emulator over real HTTP per session (reset and seeded per test), a
JRNI client that follows HAL links, and a webhook receiver on loopback."""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests

from emulators.common.server import BackgroundServer
from emulators.jrni.app import create_app
from emulators.jrni.settings import JrniSettings

APP_ID = "app-id-for-tests"
APP_KEY = "app-key-for-tests"
PARENT_ADMIN = ("parent-admin@example.test", "password-for-tests")
BRANCH_ADMIN = ("branch-admin@example.test", "password-for-tests")
OTHER_ADMIN = ("other-admin@example.test", "password-for-tests")

PARENT, NORTH, SOUTH, OTHER = 10, 11, 12, 20
ALICE, BOB, CAROL, DAVE = 101, 102, 103, 201
ROOM_1, ROOM_2, OTHER_ROOM = 151, 152, 251
CONSULTATION, LONG_MEETING, OTHER_SERVICE = 401, 402, 501
WEEKDAYS = 301
REASON, VISITED, ACCOUNT_NO, OTHER_QUESTION = 1001, 1002, 1003, 2001  # custom booking questions
ADVICE_QUESTIONS = 31  # the question group (detail_group_id) of CONSULTATION
PRIYA = 1  # a client with a full address
NORTH_ADDRESS = {
    "name": "Branch North",
    "address1": "Unit 4",
    "address2": "22 Specimen Row",
    "address3": "City Centre",
    "address4": "Leeds",
    "address5": "West Yorkshire",
    "postcode": "ZZ2 2BB",
    "country": "United Kingdom",
    "lat": 53.7997,
    "long": -1.5492,
    "map_url": "https://maps.example.test/?q=53.7997,-1.5492",
    "phone": "0113 496 0123",
}

SEED: dict[str, Any] = {
    "apps": [{"app_id": APP_ID, "app_key": APP_KEY}],
    "companies": [
        {"id": PARENT, "name": "Head Office", "timezone": "Europe/London", "parent_id": None},
        {
            "id": NORTH,
            "name": "Branch North",
            "timezone": "Europe/London",
            "parent_id": PARENT,
            "description": "Walk-in branch for advice and mortgage appointments.",
            "reference": "BR-0011",
            "currency_code": "GBP",
            "country_code": "gb",
            "locale": "en",
            "website": "https://north.example.test",
            "extra": {"region": "North"},
            "address": NORTH_ADDRESS,
        },
        {"id": SOUTH, "name": "Branch South", "timezone": "Europe/Paris", "parent_id": PARENT},
        {"id": OTHER, "name": "Other Company", "timezone": "America/New_York"},
    ],
    "admins": [
        {"email": PARENT_ADMIN[0], "password": PARENT_ADMIN[1], "company_id": PARENT},
        {"email": BRANCH_ADMIN[0], "password": BRANCH_ADMIN[1], "company_id": NORTH, "name": "Branch Admin"},
        {"email": OTHER_ADMIN[0], "password": OTHER_ADMIN[1], "company_id": OTHER},
    ],
    "schedules": [
        {
            "id": WEEKDAYS,
            "company_id": NORTH,
            "name": "Weekdays",
            "rules": {"1": "0900-1700", "2": "0900-1200,1300-1700", "0": "None", "2026-06-02": "1000-1400"},
        }
    ],
    "people": [
        {
            "id": ALICE,
            "company_id": NORTH,
            "name": "Alice Adviser",
            "email": "alice@example.test",
            "ews_email": "alice@exchange.example.test",
            "schedule_id": WEEKDAYS,
            "description": "Senior mortgage adviser",
            "phone": "0113 496 0124",
            "mobile": "07700 900123",
            "reference": "STAFF-101",
            "group_id": 61,
            "group_name": "Mortgage advisers",
            "extra": {"languages": "English, Urdu"},
        },
        {"id": BOB, "company_id": NORTH, "name": "Bob Banker", "email": "bob@example.test"},
        {
            "id": CAROL,
            "company_id": NORTH,
            "name": "Carol Gone",
            "email": "carol@example.test",
            "disabled": True,
        },
        {"id": DAVE, "company_id": OTHER, "name": "Dave Elsewhere", "email": "dave@example.test"},
    ],
    "resources": [
        {
            "id": ROOM_1,
            "company_id": NORTH,
            "name": "Room 1",
            "ews_email": "room1@exchange.example.test",
            "description": "Ground floor, step-free access, seats 4",
            "phone": "0113 496 0130",
            "reference": "ROOM-1",
            "group_name": "Meeting rooms",
            "extra": {"floor": "Ground", "capacity": 4},
        },
        {"id": ROOM_2, "company_id": NORTH, "name": "Room 2"},
        {"id": OTHER_ROOM, "company_id": OTHER, "name": "Other Room"},
    ],
    "services": [
        {
            "id": CONSULTATION,
            "company_id": NORTH,
            "name": "Consultation",
            "duration": 30,
            "pre_time": 5,
            "post_time": 10,
            "description": "A first conversation with an adviser about your plans.",
            "price": 2500,
            "reference": "SVC-CONSULT",
            "detail_group_id": ADVICE_QUESTIONS,
            "extra": {"bring": "Photo ID"},
        },
        {"id": LONG_MEETING, "company_id": NORTH, "name": "Long Meeting", "duration": 60},
        {"id": OTHER_SERVICE, "company_id": OTHER, "name": "Other Service", "duration": 45},
    ],
    "questions": [
        {
            "id": REASON,
            "company_id": PARENT,  # a parent company's question, asked in its branches
            "name": "Reason for visit",
            "reference": "reason_for_visit",
            "detail_type": "text_area",
            "required": True,
            "detail_group_id": ADVICE_QUESTIONS,
        },
        {
            "id": VISITED,
            "company_id": NORTH,
            "name": "Have you visited us before?",
            "reference": "visited_before",
            "detail_type": "select",
            "options": ["Yes", "No"],
            "detail_group_id": ADVICE_QUESTIONS,
        },
        {"id": ACCOUNT_NO, "company_id": NORTH, "name": "Account number", "reference": "account_number"},
        {"id": OTHER_QUESTION, "company_id": OTHER, "name": "Preferred language", "reference": "language"},
    ],
    "clients": [
        {
            "id": PRIYA,
            "company_id": NORTH,
            "first_name": "Priya",
            "last_name": "Patel",
            "email": "priya.patel@example.test",
            "mobile": "07700 900456",
            "address1": "Flat 2",
            "address2": "10 Example Road",
            "address3": "Hyde Park",
            "address4": "Leeds",
            "address5": "West Yorkshire",
            "postcode": "ZZ6 1AB",
            "country": "United Kingdom",
            "reference": "CUST-0001",
        }
    ],
}

FAST = JrniSettings(
    webhook_timeout_seconds=0.5,
    webhook_max_attempts=5,
    webhook_backoff_seconds=0.05,
    webhook_backoff_max_seconds=0.2,
    reorder_hold_seconds=0.5,
)


@pytest.fixture(scope="session")
def server() -> Iterator[BackgroundServer]:
    """One emulator for the session; tests reset and seed it through the control plane."""
    with BackgroundServer(lambda: create_app(FAST), "127.0.0.1", 0) as running:
        yield running


@pytest.fixture
def base_url(server: BackgroundServer) -> str:
    """The emulator, reset and seeded with SEED."""
    requests.post(f"{server.base_url}/_emulator/reset", timeout=5).raise_for_status()
    requests.post(f"{server.base_url}/_emulator/seed", json=copy.deepcopy(SEED), timeout=5).raise_for_status()
    return server.base_url


class JrniClient:
    """A JRNI API client as calsync would use it: App-Id on every call, Auth-Token after login, HAL links."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.http.headers.update({"App-Id": APP_ID, "App-Key": APP_KEY, "Accept": "application/json"})
        self.login_body: dict[str, Any] = {}

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    def login(self, email: str, password: str, company_id: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"email": email, "password": password}
        if company_id is not None:
            body["id"] = company_id
        response = self.http.post(self.url("/api/v1/login"), json=body, timeout=5)
        assert response.status_code == 201, response.text
        self.login_body = response.json()
        self.http.headers["Auth-Token"] = self.login_body["auth_token"]
        return self.login_body

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return self.http.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()


def expand(template: dict[str, Any], **values: Any) -> str:
    """Fill a HAL link: RFC 6570 ``{?a,b}`` becomes a query of the given values; ``{id}`` is substituted.

    Values are percent-encoded, so a ``+01:00`` offset stays a plus sign and is not read as a space.
    """
    href: str = template["href"]
    if "{?" in href:
        href, _, names = href.partition("{?")
        wanted = [n for n in names.rstrip("}").split(",") if values.get(n) is not None]
        query = urlencode([(n, str(values[n])) for n in wanted], quote_via=quote)
        return f"{href}?{query}" if query else href
    for name, value in values.items():
        href = href.replace("{" + name + "}", quote(str(value), safe=""))
    return href


@pytest.fixture
def parent_client(base_url: str) -> JrniClient:
    """Logged in as the parent company's administrator."""
    client = JrniClient(base_url)
    client.login(*PARENT_ADMIN)
    return client


@pytest.fixture
def client(base_url: str) -> JrniClient:
    """Logged in as the North branch's administrator."""
    client = JrniClient(base_url)
    client.login(*BRANCH_ADMIN)
    return client


def control(base_url: str, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
    """Call the control plane and check the status."""
    response = requests.request(method, f"{base_url}/_emulator/{path}", timeout=5, **kwargs)
    assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


# -------------------------------------------------------------------------------------------- webhook receiver


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """A loopback HTTP server that records what it is sent; ``answers`` are the statuses for the next requests."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    delay_seconds: list[float] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until ``count`` deliveries were accepted (2xx), then give them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} webhook deliveries, got {len(self.received)}")

    def exactly(self, count: int, timeout: float = 5.0, settle: float = 0.15) -> list[Received]:
        """Wait for ``count`` deliveries, then a little longer, and check that no more arrived."""
        self.wait_for(count, timeout)
        time.sleep(settle)
        with self.lock:
            got = list(self.received)
        assert len(got) == count, [r.body.get("triggerName", r.path) for r in got]
        return got


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1, a free port. A 3xx answer carries ``Location: <path>/redirected``."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with state.lock:
                state.attempts += 1
                status = state.answers.pop(0) if state.answers else 200
                delay = state.delay_seconds.pop(0) if state.delay_seconds else 0.0
            if delay:
                time.sleep(delay)
            if 200 <= status < 300:
                with state.lock:
                    state.received.append(Received(self.path, dict(self.headers), json.loads(raw)))
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", self.path + "/redirected")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1, a free port."""
    with running_receiver() as state:
        yield state


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    """Another, independent webhook receiver."""
    with running_receiver() as state:
        yield state
