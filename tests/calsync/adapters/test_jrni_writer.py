"""The JRNI ``BookingWriter`` against the JRNI emulator over real HTTP, logged in as the parent company's administrator:
blocks made, found by their marker, moved, renamed and removed; bookings moved, cancelled and confirmed; JRNI's
refusals translated (a locked booking, a clash, an outage). Also the pure marker helper outbound uses (no echo)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from calsync.adapters.jrni import (
    BlockGoneError,
    BookingLockedError,
    JrniBookingSource,
    JrniBookingWriter,
    JrniClient,
    block_note,
    carries_marker,
    parse_webhook,
)
from calsync.domain import (
    BookingKind,
    ConflictError,
    JrniKey,
    PermanentError,
    ResourceKind,
    RetryableError,
    TimeWindow,
)
from tests.calsync.adapters.jrni_support import (
    BOB,
    DAVE,
    FRED,
    OTHER,
    PARIS,
    ROOM,
    control,
    make_booking,
    requests_to,
)

INTEGRATION = "int-1"
MARKER = f"calsync:{INTEGRATION}:0123456789abcdef0123"
OTHER_MARKER = f"calsync:{INTEGRATION}:fedcba9876543210fedc"

NINE = datetime(2026, 7, 6, 9, 0, tzinfo=UTC)


def at(hour: float, minutes: int = 60) -> TimeWindow:
    """A window on Monday 6 July 2026 starting ``hour`` UTC."""
    start = NINE + timedelta(hours=hour - 9)
    return TimeWindow(start, start + timedelta(minutes=minutes))


@pytest.fixture
def writer(client: JrniClient) -> JrniBookingWriter:
    return JrniBookingWriter(client)


def book(base_url: str, **fields: Any) -> Any:
    """A booking made in JRNI's screens: Bob, Consultation (60 min, 5 + 10 min buffers), Paris, 09:00 UTC."""
    return make_booking(base_url, "2026-07-06T09:00:00Z", **fields)


def blocks(base_url: str) -> dict[str, Any]:
    """Every block the emulator holds (cancelled ones included), by booking id."""
    return {str(b["id"]): b for b in control(base_url, "GET", "state")["blocks"]}


def booking(base_url: str, booking_id: str) -> Any:
    [found] = [b for b in control(base_url, "GET", "state")["bookings"] if str(b["id"]) == booking_id]
    return found


def live_slots(base_url: str) -> set[str]:
    return {str(s["id"]) for s in control(base_url, "GET", "state")["slots"]}


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


# ------------------------------------------------------------------------------------------------- blocks


@dataclass
class Receiver:
    """A webhook receiver on loopback that keeps every body it is sent."""

    url: str
    bodies: list[bytes]

    def wait_for(self, count: int, timeout: float = 3.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.bodies)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", bodies)
    finally:
        server.shutdown()
        server.server_close()


def test_a_block_is_made_with_its_title_and_marker_and_its_webhook_names_the_booking_returned(
    writer: JrniBookingWriter, jrni_url: str, receiver: Receiver
) -> None:
    control(jrni_url, "POST", "webhooks", json={"url": receiver.url, "format": "data"})

    created = writer.create_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9), "Dentist", MARKER)

    block = blocks(jrni_url)[created.jrni_key.booking_id]
    assert created.jrni_key.company_id == str(PARIS)
    assert str(block["slot_id"]) == created.slot_id and created.slot_id in live_slots(jrni_url)
    assert (block["status"], block["person_id"], block["is_cancelled"]) == (3, BOB, False)
    assert (utc(block["datetime"]), utc(block["end_datetime"])) == (at(9).start, at(9).end)
    assert block["private_note"] == f"Dentist\n{MARKER}"
    [body] = receiver.wait_for(1)
    [affected] = parse_webhook(body)
    assert (affected.company_id, affected.booking_id) == (
        created.jrni_key.company_id,
        created.jrni_key.booking_id,
    )


def test_a_resource_is_blocked_the_same_way(writer: JrniBookingWriter, jrni_url: str) -> None:
    created = writer.create_block(str(PARIS), ResourceKind.RESOURCE, str(ROOM), at(14, 30), "Board", MARKER)

    block = blocks(jrni_url)[created.jrni_key.booking_id]
    assert (block["resource_id"], block["person_id"], block["duration"]) == (ROOM, None, 30)


def test_outbound_reads_back_a_block_as_ours_and_another_integrations_or_jrnis_own_as_not(
    writer: JrniBookingWriter, client: JrniClient, jrni_url: str
) -> None:
    ours = writer.create_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9), "Dentist", MARKER)
    jrnis = control(
        jrni_url,
        "POST",
        "blocks",
        json={
            "company_id": PARIS,
            "person_id": BOB,
            "start_time": "2026-07-06T12:00:00Z",
            "end_time": "2026-07-06T13:00:00Z",
            "booking": True,
        },
    )
    source = JrniBookingSource(client)

    read = source.get_booking(str(PARIS), ours.jrni_key.booking_id)
    theirs = source.get_booking(str(PARIS), str(jrnis["id"]))

    assert read is not None and read.kind is BookingKind.BLOCK
    assert read.details["private_note"] == f"Dentist\n{MARKER}"
    assert carries_marker(read.details, INTEGRATION)
    assert not carries_marker(read.details, "int-2")
    assert theirs is not None and not carries_marker(theirs.details, INTEGRATION)


def test_find_block_finds_the_block_carrying_the_marker_and_no_other(
    writer: JrniBookingWriter, jrni_url: str
) -> None:
    mine = writer.create_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9), "Dentist", MARKER)
    writer.create_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9), "Gym", OTHER_MARKER)  # same time
    writer.create_block(str(PARIS), ResourceKind.PERSON, str(FRED), at(9), "Dentist", f"{MARKER}99")

    assert writer.find_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9), MARKER) == mine
    assert writer.find_block(str(PARIS), ResourceKind.PERSON, str(FRED), at(9), MARKER) is None
    assert writer.find_block(str(PARIS), ResourceKind.RESOURCE, str(ROOM), at(9), MARKER) is None


def test_find_block_looks_around_the_window_but_not_at_removed_blocks(
    writer: JrniBookingWriter, jrni_url: str
) -> None:
    # 23:30 UTC on Sunday is Monday in Paris: found from a window given in another zone all the same.
    late = TimeWindow(datetime(2026, 7, 5, 23, 30, tzinfo=UTC), datetime(2026, 7, 6, 0, 30, tzinfo=UTC))
    made = writer.create_block(str(PARIS), ResourceKind.PERSON, str(BOB), late, "Flight", MARKER)

    assert writer.find_block(str(PARIS), ResourceKind.PERSON, str(BOB), late, MARKER) == made
    writer.remove_block(str(PARIS), made.slot_id)
    assert writer.find_block(str(PARIS), ResourceKind.PERSON, str(BOB), late, MARKER) is None


def test_moving_a_block_moves_its_slot_and_keeps_its_title_and_marker(
    writer: JrniBookingWriter, jrni_url: str
) -> None:
    made = writer.create_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9), "Dentist", MARKER)

    writer.move_block(str(PARIS), made.slot_id, at(15, 45), "Dentist")

    block = blocks(jrni_url)[made.jrni_key.booking_id]
    assert (utc(block["datetime"]), utc(block["end_datetime"])) == (at(15, 45).start, at(15, 45).end)
    assert block["private_note"] == f"Dentist\n{MARKER}"
    assert requests_to(jrni_url, "PUT", "/bookings/{id}") == 0  # the title did not change: one call only


def test_renaming_a_block_rewrites_its_note_with_the_marker_kept(
    writer: JrniBookingWriter, jrni_url: str
) -> None:
    made = writer.create_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9), "Dentist", MARKER)

    writer.move_block(str(PARIS), made.slot_id, at(9), "Orthodontist")

    assert blocks(jrni_url)[made.jrni_key.booking_id]["private_note"] == f"Orthodontist\n{MARKER}"
    assert writer.find_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9), MARKER) == made


def test_moving_a_block_removed_in_jrni_says_so(writer: JrniBookingWriter, jrni_url: str) -> None:
    made = writer.create_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9), "Dentist", MARKER)
    control(jrni_url, "POST", f"bookings/{made.jrni_key.booking_id}/cancel", json={})

    with pytest.raises(BlockGoneError, match=f"slot {made.slot_id}"):
        writer.move_block(str(PARIS), made.slot_id, at(10), "Dentist")


def test_removing_a_block_frees_the_time_and_removing_it_again_is_harmless(
    writer: JrniBookingWriter, jrni_url: str
) -> None:
    made = writer.create_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9), "Dentist", MARKER)

    writer.remove_block(str(PARIS), made.slot_id)
    writer.remove_block(str(PARIS), made.slot_id)

    assert made.slot_id not in live_slots(jrni_url)
    assert blocks(jrni_url)[made.jrni_key.booking_id]["is_cancelled"] is True
    book(jrni_url)  # the time is free again: a booking over it is accepted


# ----------------------------------------------------------------------------------------------- bookings


def test_moving_a_booking_moves_its_start_and_its_end(writer: JrniBookingWriter, jrni_url: str) -> None:
    made = book(jrni_url)
    key = JrniKey(str(PARIS), str(made["id"]))

    writer.move_booking(key, at(13, 90))

    moved = booking(jrni_url, key.booking_id)
    assert (utc(moved["datetime"]), utc(moved["end_datetime"])) == (at(13).start, at(13, 90).end)
    assert (moved["pre_time"], moved["post_time"]) == (5, 10)  # buffers stay JRNI's


@pytest.mark.parametrize(
    ("case", "fields", "after", "why"),
    [
        ("made externally", {"external": True}, None, "made externally"),
        ("cancelled", {}, "cancel", "it is cancelled"),
    ],
)
def test_moving_a_booking_jrni_locks_is_refused_with_the_reason(
    writer: JrniBookingWriter, jrni_url: str, case: str, fields: dict[str, Any], after: str | None, why: str
) -> None:
    made = book(jrni_url, **fields)
    if after:
        control(jrni_url, "POST", f"bookings/{made['id']}/{after}", json={})
    key = JrniKey(str(PARIS), str(made["id"]))

    with pytest.raises(BookingLockedError, match=why) as raised:
        writer.move_booking(key, at(13))

    assert isinstance(raised.value, PermanentError), case
    assert utc(booking(jrni_url, key.booking_id)["datetime"]) == at(9).start


def test_cancelling_a_booking_cancels_it_quietly_with_the_reason_and_again_is_harmless(
    writer: JrniBookingWriter, jrni_url: str, receiver: Receiver
) -> None:
    control(jrni_url, "POST", "webhooks", json={"url": receiver.url, "format": "data"})
    made = book(jrni_url)
    key = JrniKey(str(PARIS), str(made["id"]))

    writer.cancel_booking(key, "Deleted in Outlook")
    writer.cancel_booking(key, "Deleted in Outlook")
    writer.cancel_booking(JrniKey(str(PARIS), "999999"), "Deleted in Outlook")  # JRNI knows it no more

    cancelled = booking(jrni_url, key.booking_id)
    assert (cancelled["is_cancelled"], cancelled["cancel_reason"]) == (True, "Deleted in Outlook")
    triggers = [parse_webhook(b)[0].trigger for b in receiver.wait_for(2)]
    time.sleep(0.1)
    assert [parse_webhook(b)[0].trigger for b in receiver.bodies] == triggers == ["create", "cancelled"]


def test_confirming_a_reservation_confirms_it_and_confirming_again_is_harmless(
    writer: JrniBookingWriter, jrni_url: str
) -> None:
    made = book(jrni_url, reservation=True)
    key = JrniKey(str(PARIS), str(made["id"]))

    writer.confirm_reservation(key)
    writer.confirm_reservation(key)

    confirmed = booking(jrni_url, key.booking_id)
    assert (confirmed["is_reservation"], confirmed["booking_type"]) == (False, "Booking")


def test_confirming_a_cancelled_reservation_is_refused_as_locked(
    writer: JrniBookingWriter, jrni_url: str
) -> None:
    made = book(jrni_url, reservation=True)
    control(jrni_url, "POST", f"bookings/{made['id']}/cancel", json={})

    with pytest.raises(BookingLockedError, match="cancelled"):
        writer.confirm_reservation(JrniKey(str(PARIS), str(made["id"])))


# ------------------------------------------------------------------------------------------ error translation


def test_a_block_over_a_booking_is_a_conflict_and_leaves_nothing_behind(
    writer: JrniBookingWriter, jrni_url: str
) -> None:
    book(jrni_url)

    with pytest.raises(ConflictError, match="409"):
        writer.create_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9, 30), "Dentist", MARKER)

    assert blocks(jrni_url) == {}


@pytest.mark.parametrize(
    ("case", "company", "person", "error", "words"),
    [
        ("unknown staff member", PARIS, 999, PermanentError, "404"),
        ("outside the parent company's tree", OTHER, DAVE, PermanentError, "403"),
    ],
)
def test_blocks_jrni_cannot_make_are_permanent_errors(
    writer: JrniBookingWriter,
    jrni_url: str,
    case: str,
    company: int,
    person: int,
    error: type[Exception],
    words: str,
) -> None:
    with pytest.raises(error, match=words):
        writer.create_block(str(company), ResourceKind.PERSON, str(person), at(9), case, MARKER)
    assert blocks(jrni_url) == {}


def test_jrni_unavailable_is_retryable_and_nothing_is_written(
    writer: JrniBookingWriter, jrni_url: str
) -> None:
    made = writer.create_block(str(PARIS), ResourceKind.PERSON, str(BOB), at(9), "Dentist", MARKER)
    control(jrni_url, "POST", "faults", json={"kind": "http_500", "path": "/api/v1/admin/"})

    with pytest.raises(RetryableError):
        writer.move_block(str(PARIS), made.slot_id, at(11), "Dentist")
    with pytest.raises(RetryableError):
        writer.cancel_booking(JrniKey(str(PARIS), made.jrni_key.booking_id), "gone")

    control(jrni_url, "DELETE", "faults")
    block = blocks(jrni_url)[made.jrni_key.booking_id]
    assert (utc(block["datetime"]), block["is_cancelled"]) == (at(9).start, False)


# -------------------------------------------------------------------------------------------------- markers


@pytest.mark.parametrize(
    ("case", "booking", "integration", "ours"),
    [
        ("JRNI's private_note", {"private_note": block_note("Dentist", MARKER)}, INTEGRATION, True),
        ("JRNI's notes.private", {"notes": {"private": [{"id": 1, "note": MARKER}]}}, INTEGRATION, True),
        ("Booking.details", {"private_note": f"Gym\n{MARKER}", "notes": ""}, INTEGRATION, True),
        ("another integration's block", {"private_note": MARKER}, "int-2", False),
        ("an integration whose id extends ours", {"private_note": "calsync:int-10:abc"}, INTEGRATION, False),
        ("the marker quoted inside a sentence", {"private_note": f"see {MARKER}"}, INTEGRATION, False),
        ("a block made in JRNI", {"private_note": "Lunch"}, INTEGRATION, False),
        ("no note at all", {"private_note": None, "notes": {"private": []}}, INTEGRATION, False),
    ],
)
def test_carries_marker(case: str, booking: dict[str, Any], integration: str, ours: bool) -> None:
    assert carries_marker(booking, integration) is ours, case


def test_a_block_without_a_title_is_noted_with_its_marker_alone() -> None:
    assert block_note("  ", MARKER) == MARKER
    assert block_note(" Dentist ", MARKER) == f"Dentist\n{MARKER}"
