"""JRNI webhook parsing and sender authentication, on bodies and headers the JRNI emulator really delivered (both
formats, every kind of change) and on a table of malformed bodies and forged headers."""

from __future__ import annotations

import base64
import copy
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from calsync.adapters.jrni import AffectedBooking, WebhookFormatError, check_webhook_auth, parse_webhook
from calsync.domain import JrniKey
from emulators.common.server import BackgroundServer
from emulators.jrni.app import create_app
from tests.calsync.adapters.jrni_support import (
    APP_ID,
    APP_KEY,
    BOB,
    CONSULTATION,
    FAST,
    FRED,
    PARIS,
    ROOM,
    SEED,
    control,
)

BASIC_SECRET = {"username": "hook-user", "password": "pass-for-tests"}
TOKEN_SECRET = {"token": "token-for-tests"}


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Captured:
    """What the emulator delivered for the scenario, and the ids it made."""

    deliveries: list[Delivery]
    appointment: str
    reservation: str
    block: str

    def at(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True
    got: list[Delivery]
    lock: threading.Lock


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.got.append(Delivery(self.path, dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def captured() -> Iterator[Captured]:
    """Run create, move, reassign, reservation + confirm, cancel, block + unblock in the emulator; keep what it sent."""
    receiver = _Receiver(("127.0.0.1", 0), _Handler)
    receiver.got, receiver.lock = [], threading.Lock()
    threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    hooks = f"http://127.0.0.1:{receiver.server_address[1]}"
    with BackgroundServer(lambda: create_app(FAST, copy.deepcopy(SEED)), "127.0.0.1", 0) as emulator:
        url = emulator.base_url
        data_hook = {"url": f"{hooks}/data", "format": "data", "auth": {"basic": BASIC_SECRET}}
        legacy_hook = {"url": f"{hooks}/booking", "format": "legacy", "auth": TOKEN_SECRET}
        control(url, "POST", "webhooks", json=data_hook)
        control(url, "POST", "webhooks", json=legacy_hook | {"cancellation_url": f"{hooks}/cancellation"})
        admin = _admin(url)
        bookings = f"{url}/api/v1/admin/{PARIS}/bookings"
        new: dict[str, Any] = {
            "datetime": "2026-07-06T08:00:00Z",
            "service_id": CONSULTATION,
            "person_id": BOB,
        }
        made = _ok(admin.post(bookings, json=new | {"client": {"first_name": "Cleo", "last_name": "Client"}}))
        _ok(admin.put(f"{bookings}/{made['id']}", json={"datetime": "2026-07-06T09:00:00Z"}))  # move
        _ok(admin.put(f"{bookings}/{made['id']}", json={"person_id": FRED}))  # reassign
        # A reservation made and confirmed in JRNI's own screens.
        reservation = new | {"company_id": PARIS, "datetime": "2026-07-08T08:00:00Z", "reservation": True}
        held = control(url, "POST", "bookings", json=reservation)
        control(url, "POST", f"bookings/{held['id']}/confirm")
        _ok(admin.post(f"{bookings}/{made['id']}/cancel", json={"notify": False}))
        block = {"start_time": "2026-07-09T12:00:00Z", "end_time": "2026-07-09T13:00:00Z"}
        slot = _ok(admin.put(f"{url}/api/v1/admin/{PARIS}/resources/{ROOM}/block", json=block))
        _ok(admin.delete(f"{url}/api/v1/admin/{PARIS}/slots/{slot['id']}"))  # unblock
        deadline = time.monotonic() + 10
        while len(receiver.got) < 16 and time.monotonic() < deadline:
            time.sleep(0.02)
    receiver.shutdown()
    receiver.server_close()
    assert len(receiver.got) == 16, [d.path for d in receiver.got]
    yield Captured(list(receiver.got), str(made["id"]), str(held["id"]), str(slot["booking_id"]))


def _admin(base_url: str) -> requests.Session:
    session = requests.Session()
    session.headers.update({"App-Id": APP_ID, "App-Key": APP_KEY})
    admin = SEED["admins"][0]
    credentials = {"email": admin["email"], "password": admin["password"]}
    login = _ok(session.post(f"{base_url}/api/v1/login/admin/{admin['company_id']}", json=credentials))
    session.headers["Auth-Token"] = login["auth_token"]
    return session


def _ok(response: requests.Response) -> Any:
    assert response.ok, f"{response.request.method} {response.url}: {response.status_code} {response.text}"
    return response.json()


# ---------------------------------------------------------------------------------------------- real deliveries


def test_data_webhooks_name_each_booking_with_what_happened(captured: Captured) -> None:
    parsed = [parse_webhook(d.body) for d in captured.at("/data")]

    p, a, r, b = str(PARIS), captured.appointment, captured.reservation, captured.block
    assert parsed == [
        [AffectedBooking(p, a, "create")],
        [AffectedBooking(p, a, "modify")],  # moved
        [AffectedBooking(p, a, "modify")],  # reassigned
        [AffectedBooking(p, r, "create")],
        [AffectedBooking(p, r, "confirmed")],
        [AffectedBooking(p, a, "cancelled")],
        [AffectedBooking(p, b, "create")],  # the block, named by its status-3 booking
        [AffectedBooking(p, b, "cancelled")],  # its slot deleted
    ]
    assert parsed[0][0].key == JrniKey(p, a)


def test_legacy_callbacks_name_each_booking_with_what_the_url_and_state_say(captured: Captured) -> None:
    legacy = [d for d in captured.deliveries if d.path in ("/booking", "/cancellation")]
    parsed = [parse_webhook(d.body, cancellation_url=d.path == "/cancellation") for d in legacy]

    p, a, r, b = str(PARIS), captured.appointment, captured.reservation, captured.block
    assert [d.path for d in legacy] == ["/booking"] * 5 + ["/cancellation", "/booking", "/cancellation"]
    assert parsed == [
        [AffectedBooking(p, a, "create")],
        [AffectedBooking(p, a, "modify")],
        [AffectedBooking(p, a, "modify")],
        [AffectedBooking(p, r, "create")],
        [AffectedBooking(p, r, "modify")],  # this format has no "confirmed": the fresh read tells
        [AffectedBooking(p, a, "cancelled")],
        [AffectedBooking(p, b, "create")],
        [AffectedBooking(p, b, "cancelled")],
    ]


def test_a_cancellation_sent_to_the_booking_url_is_still_seen_as_one(captured: Captured) -> None:
    # Operators who set only the booking callback URL get cancellations there too (jrni-api.md §2.7).
    cancellation = captured.at("/cancellation")[0]
    assert parse_webhook(cancellation.body, cancellation_url=False)[0].trigger == "cancelled"


def test_the_emulators_auth_headers_pass_only_with_their_own_secret(captured: Captured) -> None:
    data, legacy = captured.at("/data")[0], captured.at("/booking")[0]
    assert check_webhook_auth(data.headers, BASIC_SECRET)
    assert check_webhook_auth(legacy.headers, TOKEN_SECRET)
    assert not check_webhook_auth(data.headers, TOKEN_SECRET)
    assert not check_webhook_auth(legacy.headers, BASIC_SECRET)


# ---------------------------------------------------------------------------------------------- malformed bodies


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes | dict[str, Any]
    expected: list[AffectedBooking] | str  # the bookings, or words the WebhookFormatError must contain


def data(
    appointment: Any = None, company: Any = None, trigger: Any = "modify", **extra: Any
) -> dict[str, Any]:
    return {
        "appointment": {"origin": "booking", "bookingId": 100001} if appointment is None else appointment,
        "company": {"jrniId": 11} if company is None else company,
        "triggerName": trigger,
        **extra,
    }


def purchase(bookings: Any, **extra: Any) -> dict[str, Any]:
    return {"id": 500001, "_embedded": {"bookings": bookings}, **extra}


CASES = [
    Case("not JSON", b"<html>Bad gateway</html>", "not JSON"),
    Case("not UTF-8", b"\xff\xfe{", "not JSON"),
    Case("a JSON list", b"[1, 2]", "not an object (it is list)"),
    Case("an empty object", b"{}", "not a JRNI webhook"),
    Case("something else", {"event": "ping"}, "not a JRNI webhook"),
    Case("data: no trigger", data(trigger=None), "triggerName is missing"),
    Case("data: appointment a string", data(appointment="100001"), "appointment is missing or not an object"),
    Case(
        "data: no company", {"appointment": {"bookingId": 1}, "triggerName": "create"}, "company is missing"
    ),
    Case("data: no booking id", data(appointment={"origin": "booking"}), "appointment.bookingId"),
    Case("data: booking id not a number", data(appointment={"bookingId": "abc"}), "appointment.bookingId"),
    Case("data: booking id true", data(appointment={"bookingId": True}), "not a JRNI id"),
    Case("data: booking id negative", data(appointment={"bookingId": -5}), "not a JRNI id"),
    Case("data: booking id a superscript", data(appointment={"bookingId": "²"}), "not a JRNI id"),
    Case("data: no company id", data(company={"name": "Branch Paris"}), "company.jrniId"),
    Case("legacy: no bookings", {"id": 500001, "_embedded": {"client": {}}}, "_embedded.bookings is missing"),
    Case("legacy: bookings an object", purchase({"id": 1}), "_embedded.bookings is missing or not a list"),
    Case("legacy: a booking a number", purchase([100001]), "_embedded.bookings[0] is not an object"),
    Case("legacy: no company anywhere", purchase([{"id": 100001}]), "_embedded.bookings[0].company_id"),
    Case(
        "legacy: second booking without id",
        purchase([{"id": 1, "company_id": 11}, {"company_id": 11}]),
        "_embedded.bookings[1].id",
    ),
    # Accepted shapes at the edges.
    Case(
        "data: ids as digit strings",
        data(appointment={"bookingId": "100001"}, company={"jrniId": "11"}),
        [AffectedBooking("11", "100001", "modify")],
    ),
    Case(
        "data: a trigger JRNI may add later",
        data(trigger="reminder"),
        [AffectedBooking("11", "100001", "reminder")],
    ),
    Case("data: a queue entry is not a booking", data(appointment={"origin": "queuer", "bookingId": 7}), []),
    Case(
        "legacy: company from the purchase, two bookings",
        purchase([{"id": 1, "is_cancelled": True}, {"id": 2, "booking_updated": False}], company_id=12),
        [AffectedBooking("12", "1", "cancelled"), AffectedBooking("12", "2", "create")],
    ),
    Case("legacy: an empty purchase", purchase([]), []),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_parse_webhook(case: Case) -> None:
    if isinstance(case.expected, str):
        with pytest.raises(WebhookFormatError, match=re.escape(case.expected)):
            parse_webhook(case.body)
    else:
        assert parse_webhook(case.body) == case.expected


# ---------------------------------------------------------------------------------------------- authentication


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True)
class AuthCase:
    name: str
    headers: dict[str, str]
    secret: dict[str, str]
    expected: bool


AUTH_CASES = [
    AuthCase("basic, right", {"Authorization": basic("hook-user", "pass-for-tests")}, BASIC_SECRET, True),
    AuthCase(
        "basic, header name in lower case (HTTP API)",
        {"authorization": basic("hook-user", "pass-for-tests")},
        BASIC_SECRET,
        True,
    ),
    AuthCase(
        "basic, scheme in lower case",
        {"Authorization": "basic " + basic("hook-user", "pass-for-tests")[6:]},
        BASIC_SECRET,
        True,
    ),
    AuthCase("basic, wrong password", {"Authorization": basic("hook-user", "guess")}, BASIC_SECRET, False),
    AuthCase("basic, wrong user", {"Authorization": basic("someone", "pass-for-tests")}, BASIC_SECRET, False),
    AuthCase(
        "basic, password prefix only", {"Authorization": basic("hook-user", "pass")}, BASIC_SECRET, False
    ),
    AuthCase("basic, not base64", {"Authorization": "Basic !!!"}, BASIC_SECRET, False),
    AuthCase(
        "basic, raw user:password", {"Authorization": "Basic hook-user:pass-for-tests"}, BASIC_SECRET, False
    ),
    AuthCase("token, right", {"Authorization": "Basic token-for-tests"}, TOKEN_SECRET, True),
    AuthCase("token, wrong", {"Authorization": "Basic token-for-test"}, TOKEN_SECRET, False),
    AuthCase("token, as Bearer", {"Authorization": "Bearer token-for-tests"}, TOKEN_SECRET, False),
    AuthCase(
        "token, base64 of it",
        {"Authorization": "Basic " + base64.b64encode(b"token-for-tests").decode()},
        TOKEN_SECRET,
        False,
    ),
    AuthCase("no header", {"Content-Type": "application/json"}, BASIC_SECRET, False),
    AuthCase("empty header", {"Authorization": ""}, TOKEN_SECRET, False),
    AuthCase("empty credentials, empty token", {"Authorization": "Basic "}, {"token": ""}, False),
    AuthCase("no usable secret", {"Authorization": basic("", "")}, {"username": "", "password": ""}, False),
    AuthCase("non-ASCII credentials", {"Authorization": "Basic tökén"}, TOKEN_SECRET, False),
    AuthCase(
        "secret with both, token sent",
        {"Authorization": "Basic token-for-tests"},
        BASIC_SECRET | TOKEN_SECRET,
        True,
    ),
]


@pytest.mark.parametrize("case", AUTH_CASES, ids=lambda c: c.name)
def test_check_webhook_auth(case: AuthCase) -> None:
    assert check_webhook_auth(case.headers, case.secret) is case.expected
