"""Bookings through the admin API: create, move, reassign, cancel, clashes, listing filters, paging, reservations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .conftest import (
    ALICE,
    BOB,
    CONSULTATION,
    LONG_MEETING,
    NORTH,
    PARENT,
    ROOM_1,
    ROOM_2,
    JrniClient,
    control,
    expand,
)

BOOKINGS = f"/api/v1/admin/{NORTH}/bookings"


def book(jrni: JrniClient, status: int = 201, /, **fields: Any) -> Any:
    body = {"service_id": LONG_MEETING, **fields}
    return jrni.ok("POST", BOOKINGS, status=status, json=body)


def ids(page: dict) -> list[int]:
    return [b["id"] for b in page["_embedded"]["bookings"]]


def test_create_shows_times_in_the_company_offset(client: JrniClient) -> None:
    summer = book(client, datetime="2026-06-01T08:00:00Z", person_id=ALICE, client={"first_name": "Cleo"})
    assert summer["datetime"] == "2026-06-01T09:00:00+01:00"
    assert summer["end_datetime"] == "2026-06-01T10:00:00+01:00"
    assert summer["duration"] == 60
    assert (summer["status"], summer["is_cancelled"], summer["channel"]) == (4, False, "Administrator")
    assert summer["person_name"] == "Alice Adviser"
    assert summer["service_name"] == "Long Meeting"
    assert summer["client_name"] == "Cleo"
    assert summer["updated_at"].endswith("Z")
    # no offset is read as UTC, as JRNI does; winter shows +00:00
    winter = book(client, datetime="2026-01-05T09:00:00", person_id=ALICE)
    assert winter["datetime"] == "2026-01-05T09:00:00+00:00"


def test_create_takes_duration_and_buffers_from_the_service(client: JrniClient) -> None:
    booking = book(client, datetime="2026-06-01T09:00:00+01:00", service_id=CONSULTATION, person_id=ALICE)
    assert (booking["duration"], booking["pre_time"], booking["post_time"]) == (30, 5, 10)
    custom = book(
        client, datetime="2026-06-03T09:00:00+01:00", service_id=CONSULTATION, duration=45, person_id=BOB
    )
    assert custom["end_datetime"] == "2026-06-03T09:45:00+01:00"


def test_move_reassign_change_duration_and_cancel(client: JrniClient, base_url: str) -> None:
    booking = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE, resource_id=ROOM_1)
    url = booking["_links"]["self"]["href"]
    control(base_url, "POST", "clock", json={"advance_seconds": 5})
    moved = client.ok("PUT", url, json={"datetime": "2026-06-01T14:00:00+01:00"})
    assert moved["datetime"] == "2026-06-01T14:00:00+01:00"
    assert moved["updated_at"] > booking["updated_at"]
    assert moved["booking_updated"] is True
    reassigned = client.ok("PUT", url, json={"person_id": BOB, "resource_id": ROOM_2, "duration": 90})
    assert (reassigned["person_id"], reassigned["resource_id"], reassigned["person_name"]) == (
        BOB,
        ROOM_2,
        "Bob Banker",
    )
    assert reassigned["end_datetime"] == "2026-06-01T15:30:00+01:00"
    # BBNG's form: date plus minutes after midnight, in the company's zone
    by_minutes = client.ok("PUT", url, json={"date": "2026-06-02", "time": 600})
    assert by_minutes["datetime"] == "2026-06-02T10:00:00+01:00"

    cancel_href = expand(reassigned["_links"]["cancel"])
    cancelled = client.ok("POST", cancel_href, json={"notify": False, "cancel_reason": "Customer asked"})
    assert cancelled["is_cancelled"] is True
    assert cancelled["cancel_reason"] == "Customer asked"
    assert cancelled["cancelled_by"] == "branch-admin@example.test"
    # still readable, not listed by default, listed with include_cancelled
    assert client.ok("GET", url)["is_cancelled"] is True
    assert booking["id"] not in ids(client.ok("GET", BOOKINGS))
    assert booking["id"] in ids(client.ok("GET", BOOKINGS, params={"include_cancelled": "true"}))


def test_cancel_with_delete_and_notify(client: JrniClient) -> None:
    booking = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE)
    gone = client.ok("DELETE", f"{BOOKINGS}/{booking['id']}", params={"notify": "false"})
    assert gone["is_cancelled"] is True
    # the slot is free again
    book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE)


def test_clash_is_409_for_person_and_resource(client: JrniClient) -> None:
    first = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE, resource_id=ROOM_1)
    same_person = book(client, 409, datetime="2026-06-01T09:30:00+01:00", person_id=ALICE)
    assert same_person["error"] == "409 Conflict"
    assert str(first["id"]) in same_person["message"]
    book(client, 409, datetime="2026-06-01T09:59:00+01:00", person_id=BOB, resource_id=ROOM_1)
    # back to back is fine; another person and room at the same time is fine
    book(client, datetime="2026-06-01T10:00:00+01:00", person_id=ALICE)
    second = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=BOB, resource_id=ROOM_2)
    # moving or reassigning into a clash is 409 and changes nothing
    assert client.ok("PUT", f"{BOOKINGS}/{second['id']}", status=409, json={"person_id": ALICE})
    assert client.ok("GET", f"{BOOKINGS}/{second['id']}")["person_id"] == BOB


def test_buffers_count_towards_clashes(client: JrniClient) -> None:
    # Consultation 09:00-09:30 with 10 min post time occupies until 09:40
    book(client, datetime="2026-06-01T09:00:00+01:00", service_id=CONSULTATION, person_id=ALICE)
    book(client, 409, datetime="2026-06-01T09:35:00+01:00", person_id=ALICE)
    book(client, datetime="2026-06-01T09:40:00+01:00", person_id=ALICE)


def test_cancelled_booking_cannot_be_moved(client: JrniClient) -> None:
    booking = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE)
    client.ok("POST", f"{BOOKINGS}/{booking['id']}/cancel", json={"notify": False})
    refused = client.ok(
        "PUT", f"{BOOKINGS}/{booking['id']}", status=403, json={"datetime": "2026-06-01T11:00:00Z"}
    )
    assert refused["error"] == "403 Forbidden"
    assert "cancelled" in refused["message"]


def test_external_booking_cannot_be_rescheduled_but_can_be_annotated(client: JrniClient) -> None:
    booking = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE, external=True)
    url = f"{BOOKINGS}/{booking['id']}"
    refused = client.ok("PUT", url, status=403, json={"datetime": "2026-06-01T11:00:00+01:00"})
    assert "externally" in refused["message"]
    client.ok("PUT", url, status=403, json={"person_id": BOB})
    annotated = client.ok("PUT", url, json={"external_cal_id": "AAMkAD-fake-item-id"})
    assert annotated["external_cal_id"] == "AAMkAD-fake-item-id"
    assert annotated["datetime"] == "2026-06-01T09:00:00+01:00"


def test_listing_filters(client: JrniClient, base_url: str) -> None:
    a = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE, resource_id=ROOM_1)
    b = book(client, datetime="2026-06-01T11:00:00+01:00", person_id=BOB, resource_id=ROOM_2)
    # 23:30 UTC on 1 June is 2 June in London: dates are the company's
    c = book(client, datetime="2026-06-01T23:30:00Z", person_id=ALICE)
    d = book(client, datetime="2026-06-05T09:00:00+01:00", person_id=BOB, resource_id=ROOM_1)
    client.ok("POST", f"{BOOKINGS}/{d['id']}/cancel", json={})

    def listed(**params: Any) -> list[int]:
        return ids(client.ok("GET", BOOKINGS, params=params))

    assert listed() == [a["id"], b["id"], c["id"]]
    assert listed(start_date="2026-06-01", end_date="2026-06-01") == [a["id"], b["id"]]
    assert listed(start_date="2026-06-02", end_date="2026-06-30") == [c["id"]]
    assert listed(start_date="2026-06-02", end_date="2026-06-30", include_cancelled="true") == [
        c["id"],
        d["id"],
    ]
    assert listed(person_id=ALICE) == [a["id"], c["id"]]
    assert listed(resource_id=ROOM_1, include_cancelled="true") == [a["id"], d["id"]]
    assert listed(service_id=CONSULTATION) == []

    # modified_since: only what changed after the given moment
    now = control(base_url, "POST", "clock", json={"advance_seconds": 60})["now"]
    since = now[:19]  # YYYY-MM-DDTHH:mm:ss, read as UTC
    control(base_url, "POST", "clock", json={"advance_seconds": 60})
    client.ok("PUT", f"{BOOKINGS}/{b['id']}", json={"duration": 30})
    assert listed(modified_since=since) == [b["id"]]
    assert listed(modified_since=since, include_cancelled="true") == [b["id"]]


def test_a_parent_company_lists_its_branches_bookings_with_children_true(
    client: JrniClient, parent_client: JrniClient
) -> None:
    a = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE)
    b = book(client, datetime="2026-06-02T09:00:00+01:00", person_id=BOB)
    parent = f"/api/v1/admin/{PARENT}/bookings"

    assert ids(parent_client.ok("GET", parent)) == []  # the head office has no bookings of its own
    assert ids(parent_client.ok("GET", parent, params={"children": "true"})) == [a["id"], b["id"]]
    assert ids(parent_client.ok("GET", parent, params={"children": "true", "person_id": BOB})) == [b["id"]]
    parent_client.ok("GET", parent, status=400, params={"children": "perhaps"})
    client.ok(
        "GET", parent, status=403, params={"children": "true"}
    )  # a branch's admin sees no other company


def test_250_bookings_in_three_pages_following_next(client: JrniClient) -> None:
    created = set()
    for n in range(250):
        day, slot = divmod(n, 10)
        booking = book(client, datetime=f"2026-07-{day + 1:02d}T{8 + slot:02d}:00:00+01:00", person_id=ALICE)
        created.add(booking["id"])
    company = client.ok("GET", client.login_body["_links"]["company"]["href"])
    href: str | None = expand(
        company["_links"]["bookings"], start_date="2026-07-01", end_date="2026-07-31", per_page=100
    )
    pages = []
    while href:
        page = client.ok("GET", href)
        assert page["total_entries"] == 250
        pages.append(ids(page))
        href = page["_links"].get("next", {}).get("href")
    assert [len(p) for p in pages] == [100, 100, 50]
    seen = [i for p in pages for i in p]
    assert len(seen) == len(set(seen)) == 250
    assert set(seen) == created
    # the filters survive into the next link, and previous goes back
    last = client.ok("GET", BOOKINGS, params={"start_date": "2026-07-01", "per_page": 100, "page": 3})
    assert "start_date=2026-07-01" in last["_links"]["previous"]["href"]
    assert "next" not in last["_links"]
    assert client.ok("GET", BOOKINGS, params={"per_page": 100, "page": 4})["_embedded"]["bookings"] == []


def test_default_page_size_is_100(client: JrniClient) -> None:
    for n in range(101):
        book(
            client,
            datetime=f"2026-08-{1 + n // 40:02d}T{n % 40 // 4:02d}:{(n % 4) * 15:02d}:00Z",
            duration=15,
        )
    first = client.ok("GET", BOOKINGS)
    assert len(first["_embedded"]["bookings"]) == 100
    assert first["total_entries"] == 101
    assert len(client.ok("GET", first["_links"]["next"]["href"])["_embedded"]["bookings"]) == 1


def test_reservation_holds_the_slot_until_confirmed(client: JrniClient) -> None:
    reservation = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE, reservation=True)
    assert reservation["booking_type"] == "Reservation"
    assert reservation["is_reservation"] is True
    # it blocks the slot
    book(client, 409, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE)
    url = reservation["_links"]["self"]["href"]
    confirmed = client.ok("PUT", url, json={"confirm": True})
    assert confirmed["booking_type"] == "Booking"
    assert confirmed["is_reservation"] is False
    assert client.ok("GET", url)["booking_type"] == "Booking"
    # confirming again is harmless
    assert client.ok("PUT", url, json={"confirm": True})["booking_type"] == "Booking"


def test_v5_prefix_serves_the_same_bookings(client: JrniClient) -> None:
    booking = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE)
    v5 = client.ok("GET", f"/api/v5/admin/{NORTH}/bookings/{booking['id']}")
    assert v5["datetime"] == booking["datetime"]
    assert v5["_links"]["self"]["href"] == booking["_links"]["self"]["href"]


def test_modified_since_sees_a_cancellation_and_includes_its_boundary(
    client: JrniClient, base_url: str
) -> None:
    # The polling case: remember when we last looked, then find what was cancelled since.
    booking = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE)
    other = book(client, datetime="2026-06-01T11:00:00+01:00", person_id=ALICE)
    since = control(base_url, "POST", "clock", json={"advance_seconds": 60})["now"][:19]
    cancelled = client.ok("POST", f"{BOOKINGS}/{booking['id']}/cancel", json={})
    polled = client.ok("GET", BOOKINGS, params={"modified_since": since, "include_cancelled": "true"})
    assert ids(polled) == [booking["id"]]
    assert polled["_embedded"]["bookings"][0]["is_cancelled"] is True
    assert other["id"] not in ids(polled)
    # the boundary is included: updated_at == modified_since is listed (updated_at >= value)
    at = cancelled["updated_at"]
    assert ids(client.ok("GET", BOOKINGS, params={"modified_since": at, "include_cancelled": "true"})) == [
        booking["id"]
    ]
    # one second later it is not; an offset in the value is honoured
    shown = datetime.fromisoformat(at.replace("Z", "+00:00"))
    after = (shown + timedelta(seconds=1)).isoformat()
    assert (
        ids(client.ok("GET", BOOKINGS, params={"modified_since": after, "include_cancelled": "true"})) == []
    )
    in_london = shown.astimezone(timezone(timedelta(hours=1))).isoformat()  # the same instant, +01:00
    assert ids(
        client.ok("GET", BOOKINGS, params={"modified_since": in_london, "include_cancelled": "true"})
    ) == [booking["id"]]


def test_dates_outside_the_supported_years_and_huge_lengths_are_400(
    client: JrniClient, base_url: str
) -> None:
    for fields in (
        {"datetime": "9999-12-31T23:00:00Z"},
        {"datetime": "0001-01-01T00:10:00+01:00"},
        {"datetime": "1899-12-31T23:00:00Z"},
        {"datetime": "2200-12-31T23:30:00Z"},  # its end is in 2201
        {"datetime": "2026-06-01T09:00:00Z", "duration": 10**12},
        {"datetime": "2026-06-01T09:00:00Z", "duration": 10**8},
        {"datetime": "2026-06-01T09:00:00Z", "pre_time": 10**9},
        {"datetime": "2026-06-01T09:00:00Z", "post_time": 10**9},
    ):
        refused = book(client, 400, **fields)
        assert refused["error"] == "400 Bad Request", fields
    booking = book(client, datetime="2026-06-01T09:00:00Z", person_id=ALICE)
    url = f"{BOOKINGS}/{booking['id']}"
    for change in (
        {"datetime": "9999-12-31T23:00:00Z"},
        {"duration": 10**12},
        {"date": "9999-12-31", "time": 600},
        {"date": "2026-06-01", "time": 1440},
        {"date": "2026-06-01", "time": 10**12},
    ):
        client.ok("PUT", url, status=400, json=change)
    block = f"/api/v1/admin/{NORTH}/people/{BOB}/block"
    client.ok(
        "PUT",
        block,
        status=400,
        json={"start_time": "2026-06-01T09:00:00Z", "end_time": "9999-12-31T23:59:00Z"},
    )
    # nothing stored: the company's bookings and the control plane's state still answer
    assert ids(client.ok("GET", BOOKINGS)) == [booking["id"]]
    assert [b["id"] for b in control(base_url, "GET", "state")["bookings"]] == [booking["id"]]


def test_fractions_of_a_second_are_dropped(client: JrniClient) -> None:
    first = book(client, datetime="2026-06-01T09:00:00.600Z", person_id=ALICE)
    assert (first["datetime"], first["end_datetime"], first["duration"]) == (
        "2026-06-01T10:00:00+01:00",
        "2026-06-01T11:00:00+01:00",
        60,
    )
    # back to back with the end the client was shown: no clash
    book(client, datetime="2026-06-01T10:00:00Z", person_id=ALICE)
    # sending back the datetime as shown is no change
    same = client.ok("PUT", f"{BOOKINGS}/{first['id']}", json={"datetime": first["datetime"]})
    assert (same["updated_at"], same["booking_updated"]) == (first["updated_at"], False)
    # a 30-second block lasts a whole minute, as JRNI works in minutes
    slot = client.ok(
        "PUT",
        f"/api/v1/admin/{NORTH}/people/{BOB}/block",
        status=201,
        json={"start_time": "2026-06-01T09:00:00.250Z", "end_time": "2026-06-01T09:00:30Z"},
    )
    assert (slot["datetime"], slot["end_datetime"]) == (
        "2026-06-01T10:00:00+01:00",
        "2026-06-01T10:01:00+01:00",
    )
    assert (slot["duration"], slot["duration_span"]) == (1, 60)


def test_booked_by_is_the_administrators_name(client: JrniClient, parent_client: JrniClient) -> None:
    booking = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE)
    assert (booking["booked_by"], booking["booked_by_email"]) == ("Branch Admin", "branch-admin@example.test")
    assert booking["settings"]["who_updated"] == "branch-admin@example.test"
    # an administrator without a name is shown by e-mail
    unnamed = book(parent_client, datetime="2026-06-01T11:00:00+01:00", person_id=ALICE)
    assert unnamed["booked_by"] == unnamed["booked_by_email"] == "parent-admin@example.test"


def test_cancel_takes_the_templated_query_and_an_empty_notify(client: JrniClient) -> None:
    booking = book(client, datetime="2026-06-01T09:00:00+01:00", person_id=ALICE)
    href = expand(booking["_links"]["cancel"], notify="false", cancel_reason="Client rang + left")
    cancelled = client.ok("POST", href)
    assert (cancelled["is_cancelled"], cancelled["cancel_reason"]) == (True, "Client rang + left")
    # the JSON body wins over the query
    other = book(client, datetime="2026-06-01T11:00:00+01:00", person_id=ALICE)
    href = expand(other["_links"]["cancel"], cancel_reason="from the query")
    assert (
        client.ok("POST", href, json={"cancel_reason": "from the body"})["cancel_reason"] == "from the body"
    )
    # DELETE …?notify= (empty) is as if notify were not given
    third = book(client, datetime="2026-06-01T13:00:00+01:00", person_id=ALICE)
    assert client.ok("DELETE", f"{BOOKINGS}/{third['id']}?notify=")["is_cancelled"] is True


def test_service_in_reservation_mode_starts_bookings_as_reservations(
    client: JrniClient, base_url: str
) -> None:
    control(
        base_url,
        "POST",
        "seed",
        status=201,
        json={
            "services": [
                {
                    "id": 4401,
                    "company_id": NORTH,
                    "name": "Mortgage Advice",
                    "duration": 60,
                    "booking_type_public": "booking",
                    "booking_type_member": "reservation",
                }
            ]
        },
    )
    service = client.ok("GET", f"/api/v1/admin/{NORTH}/services/4401")
    assert (service["booking_type_public"], service["booking_type_member"]) == ("booking", "reservation")
    assert (
        client.ok("GET", f"/api/v1/admin/{NORTH}/services/{LONG_MEETING}")["booking_type_member"] == "booking"
    )
    # the admin channel follows booking_type_member ...
    held = book(client, service_id=4401, datetime="2026-06-01T09:00:00+01:00")
    assert (held["booking_type"], held["is_reservation"]) == ("Reservation", True)
    # ... unless the body says otherwise
    direct = book(client, service_id=4401, datetime="2026-06-01T11:00:00+01:00", reservation=False)
    assert (direct["booking_type"], direct["is_reservation"]) == ("Booking", False)
    # the Client channel follows booking_type_public
    public = book(client, service_id=4401, datetime="2026-06-01T13:00:00+01:00", channel="Client")
    assert public["is_reservation"] is False
    # a bad mode in the seed is refused
    bad = {
        "services": [
            {"id": 4402, "company_id": NORTH, "name": "X", "duration": 5, "booking_type_public": "maybe"}
        ]
    }
    control(base_url, "POST", "seed", status=400, json=bad)


def test_client_address_is_kept_and_a_null_channel_is_the_default(client: JrniClient) -> None:
    address = {
        "address1": "1 High Street",
        "address2": "Flat 2",
        "address5": "Shire",
        "postcode": "AB1 2CD",
        "country": "United Kingdom",
    }
    booking = book(
        client, datetime="2026-06-01T09:00:00+01:00", channel=None, client={"first_name": "Cleo", **address}
    )
    embedded = booking["_embedded"]["client"]
    assert {key: embedded[key] for key in address} == address
    assert (embedded["address3"], embedded["address4"]) == (None, None)
    assert booking["channel"] == "Administrator"
