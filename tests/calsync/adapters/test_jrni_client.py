"""The JRNI adapter against the JRNI emulator over real HTTP: login and token renewal, paging, bookings as the
domain sees them (reservations, cancellations, blocks, time zones across DST), error translation, staff and rooms."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from calsync import deadline
from calsync.adapters.jrni import JrniBookingSource, JrniClient, booking_from_json
from calsync.adapters.jrni.client import ANSWER_SECONDS_PER_TIMEOUT, MAX_ANSWER_BYTES
from calsync.domain import (
    BookingKind,
    BookingStatus,
    ConflictError,
    DeadlineExceededError,
    JrniConnection,
    JrniKey,
    PermanentError,
    ResourceKind,
    RetryableError,
)
from tests.calsync.adapters.jrni_support import (
    ALICE,
    ANNEX,
    ANNEX_ROOM,
    APP_ID,
    BOB,
    CAROL,
    CONSULTATION,
    ERIN,
    FRED,
    HEAD_OFFICE,
    LONDON_CHAT,
    OTHER,
    PARIS,
    ROOM,
    SECRET,
    SECRET_NAME,
    control,
    make_booking,
    make_client,
    requests_to,
    slow_jrni,
)


def book(base_url: str, **fields: Any) -> Any:
    """A booking made in JRNI's screens (Bob, Consultation, Paris) at 08:00 UTC, unless ``fields`` say otherwise."""
    return make_booking(base_url, "2026-07-06T08:00:00Z", **fields)


def logins(base_url: str) -> int:
    """How many administrator logins the emulator has served."""
    counts = control(base_url, "GET", "stats")["requests"]
    return sum(
        n for endpoint, n in counts.items() if endpoint.startswith("POST ") and "/login/admin/" in endpoint
    )


# ---------------------------------------------------------------------------------------------- bookings


def test_a_confirmed_booking_reads_with_its_buffers_people_and_template_details(
    client: JrniClient, jrni_url: str
) -> None:
    made = book(
        jrni_url,
        resource_id=ROOM,
        client={"first_name": "Cleo", "last_name": "Client", "email": "cleo@example.test", "phone": "0123"},
        channel="Call Centre",
    )
    booking = JrniBookingSource(client).get_booking(str(PARIS), str(made["id"]))

    assert booking is not None
    assert booking.key == JrniKey(str(PARIS), str(made["id"]))
    assert (booking.kind, booking.status) == (BookingKind.APPOINTMENT, BookingStatus.CONFIRMED)
    assert booking.window.utc().start == datetime(2026, 7, 6, 8, 0, tzinfo=UTC)
    assert booking.window.end - booking.window.start == timedelta(minutes=60)
    assert (booking.pre_time, booking.post_time) == (timedelta(minutes=5), timedelta(minutes=10))
    assert (booking.person_id, booking.resource_id) == (str(BOB), str(ROOM))
    assert booking.updated_at is not None and booking.updated_at.tzinfo is not None
    assert booking.details == booking.details | {
        "service_name": "Consultation",
        "client_name": "Cleo Client",
        "client_email": "cleo@example.test",
        "client_phone": "0123",
        "person_name": "Bob Banker",
        "resource_name": "Room 1",
        "notes": "",
        "company_name": "Branch Paris",
        "channel": "Call Centre",
        "start_local": "Mon 06 Jul 2026 10:00",  # Paris summer time, UTC+2
        "end_local": "11:00",
    }


def test_a_reservation_reads_as_a_reservation_until_confirmed(client: JrniClient, jrni_url: str) -> None:
    made = book(jrni_url, reservation=True)
    source = JrniBookingSource(client)

    before = source.get_booking(str(PARIS), str(made["id"]))
    control(jrni_url, "POST", f"bookings/{made['id']}/confirm")
    after = source.get_booking(str(PARIS), str(made["id"]))

    assert before is not None and before.status is BookingStatus.RESERVATION
    assert after is not None and after.status is BookingStatus.CONFIRMED


def test_a_cancelled_booking_reads_as_cancelled(client: JrniClient, jrni_url: str) -> None:
    made = book(jrni_url)
    control(jrni_url, "POST", f"bookings/{made['id']}/cancel", json={"cancel_reason": "Client ill"})

    booking = JrniBookingSource(client).get_booking(str(PARIS), str(made["id"]))

    assert booking is not None and booking.status is BookingStatus.CANCELLED and not booking.is_active


def test_a_block_reads_as_a_block_and_as_cancelled_once_its_slot_is_deleted(
    client: JrniClient, jrni_url: str
) -> None:
    slot = control(
        jrni_url,
        "POST",
        "blocks",
        json={
            "company_id": PARIS,
            "resource_id": ROOM,
            "start_time": "2026-07-07T12:00:00Z",
            "end_time": "2026-07-07T13:30:00Z",
        },
    )
    source = JrniBookingSource(client)

    block = source.get_booking(str(PARIS), str(slot["booking_id"]))
    client.request("DELETE", f"/api/v1/admin/{PARIS}/slots/{slot['id']}")
    freed = source.get_booking(str(PARIS), str(slot["booking_id"]))

    assert block is not None
    assert (block.kind, block.status) == (BookingKind.BLOCK, BookingStatus.CONFIRMED)
    assert (block.person_id, block.resource_id) == (None, str(ROOM))
    assert block.window.utc().start == datetime(2026, 7, 7, 12, 0, tzinfo=UTC)
    assert block.details["start_local"] == "Tue 07 Jul 2026 14:00"
    assert freed is not None and (freed.kind, freed.status) == (BookingKind.BLOCK, BookingStatus.CANCELLED)


def test_a_booking_jrni_does_not_know_is_none(client: JrniClient) -> None:
    assert JrniBookingSource(client).get_booking(str(PARIS), "999999") is None


def test_a_booking_outside_the_parent_companys_tree_is_a_permanent_error(client: JrniClient) -> None:
    with pytest.raises(PermanentError, match="403"):
        JrniBookingSource(client).get_booking(str(OTHER), "100001")


@dataclass(frozen=True)
class ZoneCase:
    name: str
    company_id: int
    fields: dict[str, Any]
    utc_start: datetime
    offsets: tuple[timedelta, timedelta]  # of the start and the end, as JRNI gives them
    local: tuple[str, str]


H = timedelta(hours=1)
ZONE_CASES = [
    ZoneCase(
        "Paris winter",
        PARIS,
        {"datetime": "2026-01-12T09:00:00Z"},
        datetime(2026, 1, 12, 9, tzinfo=UTC),
        (H, H),
        ("Mon 12 Jan 2026 10:00", "11:00"),
    ),
    ZoneCase(
        "Paris summer",
        PARIS,
        {"datetime": "2026-07-13T09:00:00Z"},
        datetime(2026, 7, 13, 9, tzinfo=UTC),
        (2 * H, 2 * H),
        ("Mon 13 Jul 2026 11:00", "12:00"),
    ),
    # Clocks go forward at 02:00 on 29 March: 01:30 CET + 60 minutes is 03:30 CEST.
    ZoneCase(
        "Paris across the spring change",
        PARIS,
        {"datetime": "2026-03-29T00:30:00Z"},
        datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
        (H, 2 * H),
        ("Sun 29 Mar 2026 01:30", "03:30"),
    ),
    # London's clocks go back at 02:00 BST on 25 October: 01:45 BST + 30 minutes is 01:15 GMT.
    ZoneCase(
        "London across the autumn change",
        HEAD_OFFICE,
        {"datetime": "2026-10-25T00:45:00Z", "service_id": LONDON_CHAT, "person_id": ALICE},
        datetime(2026, 10, 25, 0, 45, tzinfo=UTC),
        (H, timedelta(0)),
        ("Sun 25 Oct 2026 01:45", "01:15"),
    ),
]


@pytest.mark.parametrize("case", ZONE_CASES, ids=lambda c: c.name)
def test_times_are_exact_in_the_companys_zone_across_dst(
    client: JrniClient, jrni_url: str, case: ZoneCase
) -> None:
    made = book(jrni_url, company_id=case.company_id, **case.fields)

    booking = JrniBookingSource(client).get_booking(str(case.company_id), str(made["id"]))

    assert booking is not None
    assert booking.window.start == case.utc_start
    assert (booking.window.start.utcoffset(), booking.window.end.utcoffset()) == case.offsets
    assert (booking.details["start_local"], booking.details["end_local"]) == case.local
    # Buffers are absolute minutes even when the clocks change inside them.
    widened = booking.window.widened(booking.pre_time, booking.post_time)
    assert widened.start == case.utc_start - booking.pre_time


def test_public_notes_are_joined_and_private_ones_left_out() -> None:
    row = {
        "id": 7,
        "company_id": 11,
        "datetime": "2026-07-06T10:00:00+02:00",
        "end_datetime": "2026-07-07T09:00:00+02:00",
        "status": 4,
        "notes": {
            "public": [{"id": 1, "note": "Bring ID"}, {"id": 2, "note": "Step-free access"}],
            "private": [{"id": 3, "note": "Known to be late"}],
        },
    }
    booking = booking_from_json(row, "11", None)
    assert booking.details["notes"] == "Bring ID\nStep-free access"
    shown = {k: v for k, v in booking.details.items() if k != "json"}  # the JSON itself is for the drops
    assert "Known to be late" not in str(shown)
    # Ends on another day: the end shows its date too.
    assert booking.details["end_local"] == "Tue 07 Jul 2026 09:00"


# ---------------------------------------------------------------------------------------------- calendars


def test_calendars_cover_the_parent_its_children_and_grandchildren_but_not_deleted_ones(
    jrni_url: str,
) -> None:
    client = make_client(jrni_url)
    calendars = JrniBookingSource(client, page_size=1).calendars()  # one row a page: paging is exercised too

    seen = {(c.kind, c.jrni_id): (c.company_id, c.name, c.ews_email, c.disabled) for c in calendars}
    assert seen == {
        (ResourceKind.PERSON, str(ALICE)): (str(HEAD_OFFICE), "Alice Adviser", None, False),
        (ResourceKind.PERSON, str(BOB)): (str(PARIS), "Bob Banker", "bob@exchange.example.test", False),
        (ResourceKind.PERSON, str(CAROL)): (str(PARIS), "Carol Away", None, True),
        (ResourceKind.PERSON, str(FRED)): (str(PARIS), "Fred Finance", None, False),
        (ResourceKind.PERSON, str(ERIN)): (str(ANNEX), "Erin Annex", None, False),
        (ResourceKind.RESOURCE, str(ROOM)): (str(PARIS), "Room 1", "room1@exchange.example.test", False),
        (ResourceKind.RESOURCE, str(ANNEX_ROOM)): (str(ANNEX), "Annex Room", None, False),
    }
    assert len(calendars) == len(seen)
    assert requests_to(jrni_url, "GET", "/people") >= 4  # Paris has four people (one deleted): four pages


# ---------------------------------------------------------------------------------------------- login, paging


@pytest.mark.parametrize(
    "expire",
    [
        pytest.param(
            lambda url: control(url, "POST", "faults", json={"kind": "token_expiry"}), id="token_expiry"
        ),
        pytest.param(
            lambda url: control(url, "POST", "clock", json={"advance_seconds": 25 * 3600}), id="idle 25 h"
        ),
    ],
)
def test_an_expired_token_is_renewed_without_the_caller_noticing(
    client: JrniClient, jrni_url: str, expire: Any
) -> None:
    made = book(jrni_url)
    source = JrniBookingSource(client)
    assert source.get_booking(str(PARIS), str(made["id"])) is not None
    assert logins(jrni_url) == 1

    expire(jrni_url)
    again = source.get_booking(str(PARIS), str(made["id"]))

    assert again is not None and again.key.booking_id == str(made["id"])
    assert logins(jrni_url) == 2


def test_paging_follows_next_links_to_the_last_page(client: JrniClient, jrni_url: str) -> None:
    made = [book(jrni_url, datetime=f"2026-07-0{day}T08:00:00Z")["id"] for day in range(1, 6)]

    rows = list(client.get_all(f"/api/v1/admin/{PARIS}/bookings", "bookings", {"per_page": 2}))

    assert [row["id"] for row in rows] == made
    assert requests_to(jrni_url, "GET", "/bookings") == 3


def test_the_api_root_may_be_given_instead_of_the_host(jrni_url: str) -> None:
    client = make_client(jrni_url + "/api/v1/")
    assert [c.jrni_id for c in JrniBookingSource(client).calendars()][:1] == [str(ALICE)]


# ---------------------------------------------------------------------------------------------- errors


def test_a_jrni_500_is_retryable_and_passes(client: JrniClient, jrni_url: str) -> None:
    made = book(jrni_url)
    control(jrni_url, "POST", "faults", json={"kind": "http_500", "count": 1, "path": "/api/v1/admin/"})
    source = JrniBookingSource(client)

    with pytest.raises(RetryableError, match="500"):
        source.get_booking(str(PARIS), str(made["id"]))
    assert source.get_booking(str(PARIS), str(made["id"])) is not None


def test_an_answer_trickling_in_is_given_up_on_after_its_time(jrni_url: str) -> None:
    # Each byte comes well within the read timeout, but the whole answer would take 100 s.
    with slow_jrni(every=0.1, size=1000) as url:
        client = make_client(url, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(RetryableError, match=r"did not answer POST /api/v1/login/admin/10 within 0\.5 s"):
            client.login()
    assert time.monotonic() - started < ANSWER_SECONDS_PER_TIMEOUT * 0.5 + 0.5


def test_an_answer_trickling_in_stops_at_the_overall_deadline(jrni_url: str) -> None:
    with slow_jrni(every=0.1, size=1000) as url:
        client = make_client(url, timeout=5.0)
        started = time.monotonic()
        with deadline.within(1.0), pytest.raises(DeadlineExceededError, match="within the 1 s this request"):
            client.login()
    assert time.monotonic() - started < 1.5
    with deadline.within(0.0), pytest.raises(DeadlineExceededError):  # no time left: nothing is sent
        make_client(jrni_url).login()


def test_an_answer_larger_than_any_page_is_refused(jrni_url: str) -> None:
    with (
        slow_jrni(size=MAX_ANSWER_BYTES + 1) as url,
        pytest.raises(PermanentError, match="larger than 8 MB: check the integration's base_url"),
    ):
        make_client(url).login()


def test_a_slow_jrni_is_retryable(jrni_url: str) -> None:
    client = make_client(jrni_url, timeout=0.2)
    control(jrni_url, "POST", "faults", json={"kind": "latency", "delay_ms": 1000, "count": 1})
    with pytest.raises(RetryableError, match="did not answer"):
        JrniBookingSource(client).get_booking(str(PARIS), "100001")


def test_an_unreachable_jrni_is_retryable() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}", timeout=1.0)
    with pytest.raises(RetryableError, match="could not be reached"):
        JrniBookingSource(client).get_booking(str(PARIS), "100001")


@dataclass(frozen=True)
class LoginCase:
    name: str
    secret: dict[str, str]
    company_id: int
    says: str


LOGIN_CASES = [
    LoginCase(
        "wrong password", {"password": "not-the-pass-for-tests"}, HEAD_OFFICE, "check app_id, app_key, email"
    ),
    LoginCase("unknown app", {"app_id": "unknown-app"}, HEAD_OFFICE, "check app_id, app_key, email"),
    LoginCase("company outside the admin's tree", {}, OTHER, "does not administer JRNI company 20"),
    LoginCase("unknown company", {}, 999, "knows no company 999"),
]


@pytest.mark.parametrize("case", LOGIN_CASES, ids=lambda c: c.name)
def test_a_refused_login_is_permanent_and_says_what_to_fix(jrni_url: str, case: LoginCase) -> None:
    client = JrniClient(
        JrniConnection(base_url=jrni_url, company_id=str(case.company_id), secret_name=SECRET_NAME),
        {**SECRET, **case.secret},
    )
    with pytest.raises(PermanentError, match=case.says) as raised:
        JrniBookingSource(client).calendars()
    assert SECRET["password"] not in str(raised.value) and "not-the-pass" not in str(raised.value)


def test_a_token_refused_again_after_a_fresh_login_is_permanent_after_one_retry() -> None:
    # No emulator fault does this; a JRNI that mints tokens and then refuses every one of them stands in.
    logins_seen: list[str] = []

    class RefusingJrni(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            logins_seen.append(self.path)
            self._answer(201, {"auth_token": f"token-{len(logins_seen)}"})

        def do_GET(self) -> None:
            self._answer(401, {"error": "401 Unauthorized"})

        def _answer(self, status: int, body: dict[str, str]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), RefusingJrni)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        client = make_client(f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(PermanentError, match="refused a fresh token"):
            JrniBookingSource(client).get_booking(str(PARIS), "100001")
    finally:
        server.shutdown()
        server.server_close()
    assert logins_seen == [f"/api/v1/login/admin/{HEAD_OFFICE}"] * 2


def test_a_secret_without_credentials_is_refused_before_any_call(jrni_url: str) -> None:
    with pytest.raises(PermanentError, match="lacks email, password"):
        JrniClient(JrniConnection(jrni_url, str(HEAD_OFFICE), SECRET_NAME), {"app_id": APP_ID})
    assert logins(jrni_url) == 0


def test_a_clash_is_a_conflict(client: JrniClient, jrni_url: str) -> None:
    book(jrni_url)  # Bob 10:00-11:00 Paris
    with pytest.raises(ConflictError, match="409"):
        client.request(
            "POST",
            f"/api/v1/admin/{PARIS}/bookings",
            json={"datetime": "2026-07-06T08:30:00Z", "service_id": CONSULTATION, "person_id": BOB},
        )


def test_a_link_to_another_host_is_not_followed_with_our_token(client: JrniClient) -> None:
    with pytest.raises(PermanentError, match="another host"):
        client.get("http://203.0.113.9/api/v1/admin/10/company")


def test_tokens_and_passwords_never_reach_the_logs(
    client: JrniClient, jrni_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Heard at the client's own logger: a Lambda's Powertools logger loaded earlier in the run may have set another
    # level for calsync's loggers, and not propagate.
    caplog.set_level(logging.DEBUG, logger="calsync.adapters.jrni.client")
    heard = logging.getLogger("calsync.adapters.jrni.client")
    heard.addHandler(caplog.handler)
    try:
        made = book(jrni_url)
        source = JrniBookingSource(client)
        source.get_booking(str(PARIS), str(made["id"]))
        first_token = client._token  # read only to check it is not logged
        control(jrni_url, "POST", "faults", json={"kind": "token_expiry"})
        source.get_booking(str(PARIS), str(made["id"]))
    finally:
        heard.removeHandler(caplog.handler)

    assert first_token and client._token and first_token != client._token
    assert "logging in again" in caplog.text  # the renewal itself is visible to the operator
    for secret in (SECRET["password"], first_token, client._token):
        assert secret not in caplog.text
