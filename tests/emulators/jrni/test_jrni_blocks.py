"""Blocks: PUT …/people|resources/{id}/block, the slots API, and mutual exclusion with bookings."""

from __future__ import annotations

import time

from .conftest import ALICE, BOB, LONG_MEETING, NORTH, ROOM_1, JrniClient, Receiver, control

ADMIN = f"/api/v1/admin/{NORTH}"
HOUR = {"start_time": "2026-06-01T11:00:00", "end_time": "2026-06-01T12:00:00"}  # UTC: 12:00-13:00 in London


def test_block_a_person_returns_a_slot(client: JrniClient) -> None:
    slot = client.ok("PUT", f"{ADMIN}/people/{ALICE}/block", status=201, json=HOUR)
    # the documented example: naive times are UTC, shown in the company's offset
    assert slot["datetime"] == "2026-06-01T12:00:00+01:00"
    assert slot["end_datetime"] == "2026-06-01T13:00:00+01:00"
    assert (slot["status"], slot["spaces_blocked"], slot["num_spaces"]) == (3, 1, 1)
    assert slot["full_describe"] == "Person - Alice Adviser"
    assert slot["person_id"] == ALICE
    assert slot["duration"] == 60
    assert client.ok("GET", slot["_links"]["self"]["href"])["id"] == slot["id"]
    # the block is listed as a status-3 booking, also through the slot's bookings link
    listed = client.ok("GET", slot["_links"]["bookings"]["href"])["_embedded"]["bookings"]
    assert [(b["status"], b["slot_id"]) for b in listed] == [(3, slot["id"])]
    slots = client.ok("GET", f"{ADMIN}/slots", params={"person_id": ALICE})["_embedded"]["slots"]
    assert [s["id"] for s in slots] == [slot["id"]]


def test_block_with_booking_flag_returns_the_status_3_booking(client: JrniClient) -> None:
    booking = client.ok(
        "PUT", f"{ADMIN}/resources/{ROOM_1}/block", status=201, json={**HOUR, "booking": True}
    )
    assert booking["status"] == 3
    assert booking["resource_id"] == ROOM_1
    assert booking["datetime"] == "2026-06-01T12:00:00+01:00"
    assert booking["_links"]["slot"]["href"].endswith(f"/slots/{booking['slot_id']}")


def test_block_moved_and_deleted(client: JrniClient) -> None:
    slot = client.ok("PUT", f"{ADMIN}/people/{ALICE}/block", status=201, json=HOUR)
    url = slot["_links"]["self"]["href"]
    moved = client.ok(
        "PUT", url, json={"start_time": "2026-06-01T15:00:00Z", "end_time": "2026-06-01T15:30:00Z"}
    )
    assert (moved["datetime"], moved["duration"]) == ("2026-06-01T16:00:00+01:00", 30)
    assert client.ok("GET", url)["datetime"] == "2026-06-01T16:00:00+01:00"
    client.ok("DELETE", url)
    assert client.get(url).status_code == 404
    assert client.ok("GET", f"{ADMIN}/slots")["_embedded"]["slots"] == []
    # the freed time can be booked
    client.ok(
        "POST",
        f"{ADMIN}/bookings",
        status=201,
        json={"datetime": "2026-06-01T15:00:00Z", "service_id": LONG_MEETING, "person_id": ALICE},
    )


def test_blocks_and_bookings_exclude_each_other(client: JrniClient) -> None:
    client.ok(
        "POST",
        f"{ADMIN}/bookings",
        status=201,
        json={"datetime": "2026-06-01T11:30:00Z", "service_id": LONG_MEETING, "person_id": ALICE},
    )
    refused = client.ok("PUT", f"{ADMIN}/people/{ALICE}/block", status=409, json=HOUR)
    assert refused["error"] == "409 Conflict"
    # a block for Bob at the same time is fine; a booking for Bob over it is not
    client.ok("PUT", f"{ADMIN}/people/{BOB}/block", status=201, json=HOUR)
    client.ok(
        "POST",
        f"{ADMIN}/bookings",
        status=409,
        json={"datetime": "2026-06-01T11:15:00Z", "service_id": LONG_MEETING, "person_id": BOB},
    )
    # overlapping blocks are allowed (two Outlook meetings at once)
    client.ok(
        "PUT",
        f"{ADMIN}/people/{BOB}/block",
        status=201,
        json={"start_time": "2026-06-01T11:30:00Z", "end_time": "2026-06-01T12:30:00Z"},
    )


def test_moving_a_block_onto_a_booking_is_409(client: JrniClient) -> None:
    client.ok(
        "POST",
        f"{ADMIN}/bookings",
        status=201,
        json={"datetime": "2026-06-01T09:00:00Z", "service_id": LONG_MEETING, "person_id": ALICE},
    )
    slot = client.ok("PUT", f"{ADMIN}/people/{ALICE}/block", status=201, json=HOUR)
    client.ok(
        "PUT",
        slot["_links"]["self"]["href"],
        status=409,
        json={"start_time": "2026-06-01T09:30:00Z", "end_time": "2026-06-01T10:30:00Z"},
    )
    assert client.ok("GET", slot["_links"]["self"]["href"])["datetime"] == "2026-06-01T12:00:00+01:00"


def test_block_from_jrni_screens_appears_in_the_api(client: JrniClient, base_url: str) -> None:
    slot = control(
        base_url, "POST", "blocks", status=201, json={"company_id": NORTH, "resource_id": ROOM_1, **HOUR}
    )
    assert slot["resource_id"] == ROOM_1
    listed = client.ok("GET", f"{ADMIN}/bookings", params={"resource_id": ROOM_1})["_embedded"]["bookings"]
    assert [(b["status"], b["booked_by"]) for b in listed] == [(3, "JRNI user")]


def test_a_bad_booking_flag_creates_no_block_and_sends_nothing(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    control(base_url, "POST", "webhooks", status=201, json={"url": receiver.url, "format": "data"})
    refused = client.ok("PUT", f"{ADMIN}/people/{ALICE}/block", status=400, json={**HOUR, "booking": "yes"})
    assert "booking" in refused["message"]
    body = {"company_id": NORTH, "person_id": ALICE, **HOUR, "booking": "yes"}
    control(base_url, "POST", "blocks", status=400, json=body)
    assert client.ok("GET", f"{ADMIN}/slots")["_embedded"]["slots"] == []
    assert client.ok("GET", f"{ADMIN}/bookings")["total_entries"] == 0
    time.sleep(0.2)
    assert receiver.attempts == 0
    assert control(base_url, "GET", "stats")["webhooks"]["enqueued"] == 0


def test_a_blocks_booking_can_move_but_not_change_hands(client: JrniClient) -> None:
    slot = client.ok("PUT", f"{ADMIN}/people/{ALICE}/block", status=201, json=HOUR)
    url = slot["_links"]["booking_details"]["href"]
    for change in ({"person_id": BOB}, {"person_id": None}, {"resource_id": ROOM_1}, {"confirm": True}):
        refused = client.ok("PUT", url, status=403, json=change)
        assert "block" in refused["message"], change
    # the time may change (BBNG: a blocked booking's start and duration are editable); the slot follows
    moved = client.ok(
        "PUT", url, json={"datetime": "2026-06-01T15:00:00Z", "duration": 30, "person_id": ALICE}
    )
    assert (moved["person_id"], moved["full_describe"], moved["duration"]) == (
        ALICE,
        "Person - Alice Adviser",
        30,
    )
    shown = client.ok("GET", slot["_links"]["self"]["href"])
    assert (shown["datetime"], shown["full_describe"]) == (
        "2026-06-01T16:00:00+01:00",
        "Person - Alice Adviser",
    )


def test_deleted_slot_leaves_its_booking_cancelled_and_listed_with_include_cancelled(
    client: JrniClient,
) -> None:
    slot = client.ok("PUT", f"{ADMIN}/resources/{ROOM_1}/block", status=201, json=HOUR)
    client.ok("DELETE", slot["_links"]["self"]["href"])
    assert client.ok("GET", f"{ADMIN}/bookings")["total_entries"] == 0
    listed = client.ok("GET", f"{ADMIN}/bookings", params={"include_cancelled": "true"})["_embedded"][
        "bookings"
    ]
    assert [(b["id"], b["status"], b["is_cancelled"], b["slot_id"]) for b in listed] == [
        (slot["booking_id"], 3, True, slot["id"])
    ]
    assert "slot" not in listed[0]["_links"]  # the slot itself is gone
