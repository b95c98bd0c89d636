"""The outbound rules end to end: a change made in JRNI (the emulator's screens) travels webhook → front →
``jrni_webhook`` → SQS → ``outbound`` → Exchange, and the EWS emulator's calendars show what DESIGN.md §4 says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.conftest import (
    ALICE,
    BEN,
    CHLOE,
    E2E,
    INTEGRATION_PROPERTY,
    KEY_PROPERTY,
    MAILBOX,
    PROPERTY_SET_ID,
    ROOM,
    SAVINGS,
    stamp_of,
    utc,
)

PRE, LENGTH, POST = (
    timedelta(minutes=15),
    timedelta(minutes=45),
    timedelta(minutes=10),
)  # the Mortgage appointment


def assert_ours(e2e: E2E, item: dict[str, Any], key: str, integration_id: str | None = None) -> None:
    """An item calsync wrote: both stamps in calsync's property set, and nobody invited."""
    properties = {p["property_name"]: p for p in item["extended_properties"]}
    for name in (KEY_PROPERTY, INTEGRATION_PROPERTY):
        assert properties[name]["property_set_id"].lower() == PROPERTY_SET_ID, properties
    assert stamp_of(item, KEY_PROPERTY) == key
    assert stamp_of(item, INTEGRATION_PROPERTY) == (integration_id or e2e.integration_id)
    assert item["required_attendees"] == [] and item["optional_attendees"] == []


def assert_nobody_was_sent_anything(e2e: E2E) -> None:
    """Every write calsync made asked Exchange not to send invitations or cancellations."""
    attributes = {
        "CreateItem": "SendMeetingInvitations",
        "UpdateItem": "SendMeetingInvitationsOrCancellations",
        "DeleteItem": "SendMeetingCancellations",
    }
    writes = 0
    for operation, attribute in attributes.items():
        for request in e2e.captured(operation):
            writes += 1
            assert request.get(attribute) == "SendToNone", (operation, dict(request.attrib))
    assert writes, "no write reached Exchange"


def window(item: dict[str, Any]) -> tuple[Any, Any]:
    return utc(item["start"]), utc(item["end"])


def test_a_booking_created_in_jrni_is_one_busy_item_in_the_advisers_calendar_with_buffers_subject_and_body(
    e2e: E2E,
) -> None:
    start = e2e.day().replace(hour=10)
    booking = e2e.book(start, person=ALICE, client="Pat Jones")
    key = e2e.key(booking)

    item = e2e.one_item(MAILBOX[ALICE], key)

    assert window(item) == (start - PRE, start + LENGTH + POST)  # the service's buffers around it
    assert item["legacy_free_busy_status"] == "Busy"
    assert item["subject"] == "Mortgage appointment: Pat Jones"  # the default template
    assert "Pat Jones" in item["body"] and "pat@customer.example.test" in item["body"]
    assert_ours(e2e, item, key)
    e2e.quiet()
    assert [e2e.ours(MAILBOX[m], key) for m in (BEN, ROOM, CHLOE)] == [[], [], []]
    # One EWS request for the one item created: no lookup before it, no invitation with it.
    assert len(e2e.captured("CreateItem")) == 1
    assert len(e2e.captured("FindItem")) == 0
    assert_nobody_was_sent_anything(e2e)


def test_a_booking_with_an_adviser_and_a_meeting_room_is_in_both_calendars(e2e: E2E) -> None:
    start = e2e.day().replace(hour=9)
    booking = e2e.book(start, person=BEN, resource=ROOM)
    key = e2e.key(booking)

    adviser, room = e2e.one_item(MAILBOX[BEN], key), e2e.one_item(MAILBOX[ROOM], key)

    assert window(adviser) == window(room) == (start - PRE, start + LENGTH + POST)
    assert adviser["subject"] == room["subject"] == "Mortgage appointment: Pat Jones"
    assert_ours(e2e, adviser, key)
    assert_ours(e2e, room, key)
    assert e2e.ours(MAILBOX[ALICE], key) == []


def test_a_moved_booking_moves_the_same_item(e2e: E2E) -> None:
    day = e2e.day()
    booking = e2e.book(day.replace(hour=10), person=ALICE, resource=ROOM)
    key = e2e.key(booking)
    before = {m: e2e.one_item(MAILBOX[m], key) for m in (ALICE, ROOM)}

    later = day.replace(hour=14)
    e2e.jrni("PUT", f"bookings/{booking['id']}", {"datetime": later.isoformat()})

    for m in (ALICE, ROOM):
        after = e2e.one_item(
            MAILBOX[m], key, lambda i: utc(i["start"]) == later - PRE, f"booking {key} moved"
        )
        assert after["id"] == before[m]["id"]  # moved, not deleted and written again
        assert window(after) == (later - PRE, later + LENGTH + POST)
        assert_ours(e2e, after, key)
    assert_nobody_was_sent_anything(e2e)


def test_a_booking_reassigned_to_another_adviser_leaves_the_old_calendar_for_the_new_one(e2e: E2E) -> None:
    start = e2e.day().replace(hour=11)
    booking = e2e.book(start, person=ALICE, resource=ROOM)
    key = e2e.key(booking)
    room_before = e2e.one_item(MAILBOX[ROOM], key)
    e2e.one_item(MAILBOX[ALICE], key)

    e2e.jrni("PUT", f"bookings/{booking['id']}", {"person_id": int(BEN)})

    e2e.gone(MAILBOX[ALICE], key)
    moved = e2e.one_item(MAILBOX[BEN], key)
    assert window(moved) == (start - PRE, start + LENGTH + POST)
    assert_ours(e2e, moved, key)
    e2e.quiet()
    (room_after,) = e2e.ours(MAILBOX[ROOM], key)
    assert room_after["id"] == room_before["id"]  # the room keeps the booking: its item is left alone


def test_a_cancelled_booking_disappears_from_every_calendar(e2e: E2E) -> None:
    start = e2e.day().replace(hour=12)
    booking = e2e.book(start, person=ALICE, resource=ROOM)
    key = e2e.key(booking)
    for m in (ALICE, ROOM):
        e2e.one_item(MAILBOX[m], key)

    e2e.jrni("POST", f"bookings/{booking['id']}/cancel", {"cancel_reason": "customer rescheduled"})

    for m in (ALICE, ROOM):
        e2e.gone(MAILBOX[m], key)
    e2e.quiet()
    assert all(e2e.ours(mailbox, key) == [] for mailbox in MAILBOX.values())
    assert_nobody_was_sent_anything(e2e)


def test_a_reservation_is_tentative_until_it_is_confirmed_then_busy(e2e: E2E) -> None:
    start = e2e.day().replace(hour=15)
    booking = e2e.book(start, person=ALICE, service=SAVINGS, reservation=True, client="Sam Lee")
    key = e2e.key(booking)

    tentative = e2e.one_item(MAILBOX[ALICE], key)
    assert tentative["legacy_free_busy_status"] == "Tentative"
    assert window(tentative) == (start, start + timedelta(minutes=30))  # Savings review: no buffers

    e2e.jrni("POST", f"bookings/{booking['id']}/confirm")

    busy = e2e.one_item(
        MAILBOX[ALICE], key, lambda i: i["legacy_free_busy_status"] == "Busy", "confirmed → Busy"
    )
    assert busy["id"] == tentative["id"]
    assert window(busy) == window(tentative)


def test_a_block_made_in_jrni_is_a_busy_unavailable_item(e2e: E2E) -> None:
    day = e2e.day()
    start, end = day.replace(hour=16), day.replace(hour=17)
    # booking: true answers the block's status-3 booking, whose id is what calsync stamps.
    block = e2e.jrni(
        "POST",
        "blocks",
        {
            "company_id": 37001,
            "person_id": int(BEN),
            "booking": True,
            "start_time": start.isoformat(),
            "end_time": end.isoformat(),
        },
    )
    key = e2e.key(block)

    item = e2e.one_item(MAILBOX[BEN], key)

    assert item["subject"] == "Unavailable"  # the integration's block_subject
    assert item["legacy_free_busy_status"] == "Busy"
    assert window(item) == (start, end)  # a block has no buffers
    assert_ours(e2e, item, key)
    assert_nobody_was_sent_anything(e2e)


# --------------------------------------------------------------------------- a second integration, without buffers

SECOND = "no-buffers"


@pytest.fixture
def second_integration(e2e: E2E) -> Iterator[str]:
    """An integration of the same JRNI company with ``include_buffers: false`` and the appointment lock off, made
    through the admin API as an operator would; Chloe (unmapped in the demo one) mapped to her mailbox; its own
    webhook credentials and URL registered on JRNI while the test runs."""
    secrets = e2e.stack.client("secretsmanager")
    names = {part: f"calsync/{SECOND}/{part}" for part in ("jrni", "exchange", "webhook")}
    webhook = {"username": "second-webhook", "password": "second-pass-for-tests"}
    if SECOND not in [i["id"] for i in e2e.admin("GET", "integrations")["integrations"]]:
        for part in ("jrni", "exchange"):
            value = secrets.get_secret_value(SecretId=f"calsync/{e2e.integration_id}/{part}")["SecretString"]
            secrets.create_secret(Name=names[part], SecretString=value)
        secrets.create_secret(Name=names["webhook"], SecretString=json.dumps(webhook))
        demo = next(
            i for i in e2e.admin("GET", "integrations")["integrations"] if i["id"] == e2e.integration_id
        )
        e2e.admin(
            "POST",
            "integrations",
            {
                "id": SECOND,
                "name": "Example Bank (no buffers)",
                "jrni": {**demo["jrni"], "secret_name": names["jrni"]},
                "exchange": {"endpoint": demo["exchange"]["endpoint"], "secret_name": names["exchange"]},
                "webhook_secret_name": names["webhook"],
                "options": {"include_buffers": False},
                "appointment_lock": False,
                "test_endpoints": True,  # the emulators, on loopback http
            },
            expect=201,
        )
        e2e.admin("PUT", f"integrations/{SECOND}/mappings/person/{CHLOE}", {"mailbox": MAILBOX[CHLOE]})
    e2e.jrni(
        "POST",
        "webhooks",
        {"url": f"{e2e.api}/webhooks/jrni/{SECOND}", "format": "data", "auth": {"basic": webhook}},
    )
    yield SECOND
    # The e2e fixture puts JRNI's receivers back to the seed's alone.


def test_an_integration_without_buffers_writes_the_bare_appointment_time(
    e2e: E2E, second_integration: str
) -> None:
    start = e2e.day().replace(hour=10)
    booking = e2e.book(start, person=CHLOE)  # the Mortgage appointment: 15 min before, 10 after in JRNI
    key = e2e.key(booking)

    item = e2e.one_item(MAILBOX[CHLOE], key)

    assert window(item) == (start, start + LENGTH)
    assert_ours(e2e, item, key, integration_id=second_integration)


def test_the_appointment_lock_is_stored_per_integration_and_shown_by_the_admin_api(
    e2e: E2E, second_integration: str
) -> None:
    shown = {i["id"]: i for i in e2e.admin("GET", "integrations")["integrations"]}
    assert shown[second_integration]["appointment_lock"] is False  # as created
    assert shown[e2e.integration_id]["appointment_lock"] is True  # the default when not given
    assert shown[second_integration]["options"]["include_buffers"] is False
    assert shown[e2e.integration_id]["options"]["include_buffers"] is True
