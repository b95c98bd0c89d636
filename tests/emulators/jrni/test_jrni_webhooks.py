"""Webhooks: both formats, receiver authentication, retries with back-off, duplicate and reordered deliveries."""

from __future__ import annotations

import base64
import time
from typing import Any

from .conftest import ALICE, BOB, LONG_MEETING, NORTH, ROOM_1, JrniClient, Receiver, control

BOOKINGS = f"/api/v1/admin/{NORTH}/bookings"
BASIC = {"basic": {"username": "hook-user", "password": "hook-password-for-tests"}}


def subscribe(base_url: str, receiver: Receiver, fmt: str, path: str = "/hook", **extra: Any) -> None:
    control(
        base_url, "POST", "webhooks", status=201, json={"url": receiver.url + path, "format": fmt, **extra}
    )


def create(jrni: JrniClient, /, **fields: Any) -> Any:
    body = {"datetime": "2026-06-01T09:00:00+01:00", "service_id": LONG_MEETING, "person_id": ALICE, **fields}
    return jrni.ok("POST", BOOKINGS, status=201, json=body)


def test_data_webhook_for_every_change_with_basic_auth(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(base_url, receiver, "data", auth=BASIC)
    booking = create(client, reservation=True, client={"first_name": "Cleo", "last_name": "Client"})
    url = f"{BOOKINGS}/{booking['id']}"
    client.ok("PUT", url, json={"datetime": "2026-06-01T10:00:00+01:00"})
    client.ok("PUT", url, json={"confirm": True})
    client.ok("POST", f"{url}/cancel", json={"notify": False})
    got = receiver.exactly(4)
    assert [r.body["triggerName"] for r in got] == ["create", "modify", "confirmed", "cancelled"]
    expected_auth = "Basic " + base64.b64encode(b"hook-user:hook-password-for-tests").decode()
    assert all(r.headers["Authorization"] == expected_auth for r in got)
    first = got[0].body
    assert first["appointment"]["bookingId"] == booking["id"]
    assert first["appointment"]["status"] == "Reservation"
    assert first["appointment"]["companyStartTime"] == "2026-06-01T09:00:00+01:00"
    assert first["staff"] == {
        "name": "Alice Adviser",
        "email": "alice@example.test",
        "jrniId": ALICE,
        "externalId": None,
        "phoneNumber": None,
        "customStaffFields": [],
    }
    assert first["company"]["jrniId"] == NORTH
    assert first["customer"]["firstName"] == "Cleo"
    assert first["triggerTime"].endswith("Z")
    assert first["appointment"]["bookedBy"] == "Branch Admin"  # a name, as JRNI shows it (jrni-gaps §6)
    assert got[1].body["appointment"]["companyStartTime"] == "2026-06-01T10:00:00+01:00"
    assert got[2].body["appointment"]["status"] == "Booking"
    assert got[3].body["appointment"]["status"] == "Cancelled"


def test_move_and_confirm_in_one_call_sends_two_notifications(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(base_url, receiver, "data", path="/data")
    subscribe(base_url, receiver, "legacy", path="/legacy")
    booking = create(client, reservation=True)
    client.ok(
        "PUT", f"{BOOKINGS}/{booking['id']}", json={"datetime": "2026-06-01T11:00:00+01:00", "confirm": True}
    )
    got = receiver.exactly(6)
    data = [r.body for r in got if r.path == "/data"]
    # the move is sent as it was before the confirmation: still a reservation, at the new time
    assert [
        (d["triggerName"], d["appointment"]["status"], d["appointment"]["companyStartTime"]) for d in data
    ] == [
        ("create", "Reservation", "2026-06-01T09:00:00+01:00"),
        ("modify", "Reservation", "2026-06-01T11:00:00+01:00"),
        ("confirmed", "Booking", "2026-06-01T11:00:00+01:00"),
    ]
    legacy = [r.body["_embedded"]["bookings"][0] for r in got if r.path == "/legacy"]
    assert [(e["booking_type"], e["is_reservation"], e["datetime"]) for e in legacy] == [
        ("Reservation", True, "2026-06-01T09:00:00+01:00"),
        ("Reservation", True, "2026-06-01T11:00:00+01:00"),
        ("Booking", False, "2026-06-01T11:00:00+01:00"),
    ]


def test_legacy_purchase_callback_with_token_auth_and_cancellation_url(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(
        base_url,
        receiver,
        "legacy",
        path="/booking",
        auth={"token": "webhook-token-for-tests"},
        cancellation_url=receiver.url + "/cancellation",
    )
    booking = create(
        client, client={"first_name": "Cleo", "last_name": "Client", "email": "cleo@example.test"}
    )
    client.ok("PUT", f"{BOOKINGS}/{booking['id']}", json={"person_id": BOB})
    client.ok("DELETE", f"{BOOKINGS}/{booking['id']}")
    got = receiver.exactly(3)
    assert [r.path for r in got] == ["/booking", "/booking", "/cancellation"]
    assert all(r.headers["Authorization"] == "Basic webhook-token-for-tests" for r in got)
    purchase = got[0].body
    assert purchase["id"] == booking["purchase_id"]
    assert purchase["client_name"] == "Cleo Client"
    (entry,) = purchase["_embedded"]["bookings"]
    assert (entry["id"], entry["person_name"], entry["email"]) == (
        booking["id"],
        "Alice Adviser",
        "cleo@example.test",
    )
    assert entry["datetime"] == "2026-06-01T09:00:00+01:00"
    assert got[1].body["_embedded"]["bookings"][0]["person_id"] == BOB
    assert got[2].body["_embedded"]["bookings"][0]["is_cancelled"] is True


def test_changes_made_in_jrni_screens_fire_webhooks(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(base_url, receiver, "data")
    booking = control(
        base_url,
        "POST",
        "bookings",
        status=201,
        json={
            "company_id": NORTH,
            "datetime": "2026-06-01T09:00:00Z",
            "service_id": LONG_MEETING,
            "person_id": ALICE,
            "reservation": True,
            "channel": "Client",
        },
    )
    assert booking["booking_type"] == "Reservation"
    control(base_url, "PUT", f"bookings/{booking['id']}", json={"resource_id": ROOM_1})
    control(base_url, "POST", f"bookings/{booking['id']}/confirm")
    control(base_url, "POST", f"bookings/{booking['id']}/cancel", json={"cancel_reason": "No longer needed"})
    control(
        base_url,
        "POST",
        "blocks",
        status=201,
        json={
            "company_id": NORTH,
            "person_id": BOB,
            "start_time": "2026-06-01T13:00:00Z",
            "end_time": "2026-06-01T14:00:00Z",
        },
    )
    got = receiver.exactly(5)
    assert [r.body["triggerName"] for r in got] == ["create", "modify", "confirmed", "cancelled", "create"]
    assert got[0].body["appointment"]["channel"] == "Client"
    assert got[1].body["resource"]["jrniId"] == ROOM_1
    assert got[4].body["appointment"]["status"] == "Blocked"
    # and the API shows what the user did
    shown = client.ok("GET", f"{BOOKINGS}/{booking['id']}")
    assert (shown["is_cancelled"], shown["cancel_reason"], shown["resource_id"]) == (
        True,
        "No longer needed",
        ROOM_1,
    )


def test_receiver_answering_500_twice_gets_it_on_the_third_try(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(base_url, receiver, "data")
    receiver.answers = [500, 500]
    booking = create(client)
    (delivery,) = receiver.exactly(1)
    assert delivery.body["appointment"]["bookingId"] == booking["id"]
    assert receiver.attempts == 3
    stats = control(base_url, "GET", "stats")["webhooks"]
    assert (stats["attempts"], stats["retries"], stats["delivered"]) == (3, 2, 1)
    assert [d["result"] for d in stats["recent"]] == [500, 500, 200]


def test_receiver_timing_out_is_retried(client: JrniClient, base_url: str, receiver: Receiver) -> None:
    subscribe(base_url, receiver, "data")
    receiver.delay_seconds = [1.0]  # the emulator waits 0.5 s in these tests
    create(client)
    receiver.wait_for(1)
    deadline = time.monotonic() + 5
    while control(base_url, "GET", "stats")["webhooks"]["delivered"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = control(base_url, "GET", "stats")["webhooks"]
    assert stats["retries"] >= 1
    assert stats["recent"][0]["result"] != 200
    assert stats["delivered"] == 1


def test_gives_up_after_the_last_attempt(client: JrniClient, base_url: str, receiver: Receiver) -> None:
    subscribe(base_url, receiver, "data")
    receiver.answers = [503] * 5  # FAST allows 5 attempts
    create(client)
    deadline = time.monotonic() + 5
    while control(base_url, "GET", "stats")["webhooks"]["failed"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = control(base_url, "GET", "stats")["webhooks"]
    assert (stats["attempts"], stats["failed"], stats["delivered"]) == (5, 1, 0)
    assert receiver.attempts == 5


def test_duplicate_fault_delivers_twice(client: JrniClient, base_url: str, receiver: Receiver) -> None:
    subscribe(base_url, receiver, "data")
    control(base_url, "POST", "faults", status=201, json={"kind": "duplicate_webhooks", "count": 1})
    booking = create(client)
    client.ok("PUT", f"{BOOKINGS}/{booking['id']}", json={"duration": 30})
    got = receiver.exactly(3)
    assert [r.body["triggerName"] for r in got] == ["create", "create", "modify"]
    assert got[0].body == got[1].body
    assert control(base_url, "GET", "faults")["faults"] == []  # count used up


def test_reorder_fault_delivers_later_change_first(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(base_url, receiver, "data")
    control(base_url, "POST", "faults", status=201, json={"kind": "reorder_webhooks", "count": 1})
    booking = create(client)
    client.ok("PUT", f"{BOOKINGS}/{booking['id']}", json={"duration": 30})
    got = receiver.exactly(2)
    assert [r.body["triggerName"] for r in got] == ["modify", "create"]


def test_several_receivers_listed_and_cleared(client: JrniClient, base_url: str, receiver: Receiver) -> None:
    subscribe(base_url, receiver, "data", path="/data")
    subscribe(base_url, receiver, "legacy", path="/legacy")
    listed = control(base_url, "GET", "webhooks")["webhooks"]
    assert [(w["format"], w["url"].rsplit("/", 1)[1]) for w in listed] == [
        ("data", "data"),
        ("legacy", "legacy"),
    ]
    booking = create(client)
    assert sorted(r.path for r in receiver.exactly(2)) == ["/data", "/legacy"]
    control(base_url, "DELETE", "webhooks")
    assert control(base_url, "GET", "webhooks")["webhooks"] == []
    client.ok("POST", f"{BOOKINGS}/{booking['id']}/cancel", json={})
    time.sleep(0.2)
    assert len(receiver.received) == 2


def test_a_call_that_changes_nothing_sends_nothing(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(base_url, receiver, "data")
    booking = create(client)
    url = f"{BOOKINGS}/{booking['id']}"
    unchanged = client.ok("PUT", url, json={"datetime": booking["datetime"], "person_id": ALICE})
    assert unchanged["updated_at"] == booking["updated_at"]
    client.ok("POST", f"{url}/cancel", json={})
    client.ok("POST", f"{url}/cancel", json={})  # already cancelled: no second notification
    client.ok(
        "PUT",
        f"/api/v1/admin/{NORTH}/people/{BOB}/block",
        status=201,
        json={"start_time": "2026-06-02T09:00:00Z", "end_time": "2026-06-02T10:00:00Z"},
    )
    got = receiver.exactly(3)
    assert [r.body["triggerName"] for r in got] == ["create", "cancelled", "create"]
    assert got[2].body["appointment"]["status"] == "Blocked"


def test_legacy_entry_keeps_the_booking_type_of_reservations_and_blocks(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(base_url, receiver, "legacy")
    reservation = create(client, reservation=True)
    slot = client.ok(
        "PUT",
        f"/api/v1/admin/{NORTH}/people/{BOB}/block",
        status=201,
        json={"start_time": "2026-06-02T09:00:00Z", "end_time": "2026-06-02T10:00:00Z"},
    )
    rejected = client.ok("POST", f"{BOOKINGS}/{reservation['id']}/cancel", json={})
    # a rejected reservation stays a reservation; is_cancelled says it is cancelled
    assert (rejected["booking_type"], rejected["is_reservation"], rejected["is_cancelled"]) == (
        "Reservation",
        True,
        True,
    )
    entries = [r.body["_embedded"]["bookings"][0] for r in receiver.exactly(3)]
    shown = [
        (e["id"], e["booking_type"], e["is_reservation"], e["status"], e["is_cancelled"]) for e in entries
    ]
    assert shown == [
        (reservation["id"], "Reservation", True, 4, False),
        (slot["booking_id"], "Blocked", False, 3, False),
        (reservation["id"], "Reservation", True, 4, True),
    ]


def test_block_moved_and_deleted_through_slots_sends_modify_and_cancelled(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(base_url, receiver, "data")
    slot = client.ok(
        "PUT",
        f"/api/v1/admin/{NORTH}/people/{BOB}/block",
        status=201,
        json={"start_time": "2026-06-02T09:00:00Z", "end_time": "2026-06-02T10:00:00Z"},
    )
    url = slot["_links"]["self"]["href"]
    client.ok("PUT", url, json={"start_time": "2026-06-02T11:00:00Z", "end_time": "2026-06-02T11:30:00Z"})
    client.ok("DELETE", url)
    got = [r.body for r in receiver.exactly(3)]
    assert [
        (
            g["triggerName"],
            g["appointment"]["bookingId"],
            g["appointment"]["status"],
            g["appointment"]["companyStartTime"],
            g["appointment"]["duration"],
        )
        for g in got
    ] == [
        ("create", slot["booking_id"], "Blocked", "2026-06-02T10:00:00+01:00", 60),
        ("modify", slot["booking_id"], "Blocked", "2026-06-02T12:00:00+01:00", 30),
        ("cancelled", slot["booking_id"], "Cancelled", "2026-06-02T12:00:00+01:00", 30),
    ]
