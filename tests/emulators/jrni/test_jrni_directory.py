"""People, resources, services, schedules and shifts, reached by following HAL links from the login."""

from __future__ import annotations

from .conftest import ALICE, CAROL, CONSULTATION, NORTH, ROOM_1, WEEKDAYS, JrniClient, expand


def _company(client: JrniClient) -> dict:
    return client.ok("GET", client.login_body["_links"]["company"]["href"])


def test_people_with_mailbox_mapping_and_schedule(client: JrniClient) -> None:
    company = _company(client)
    people = client.ok("GET", expand(company["_links"]["people"]))
    assert people["total_entries"] == 3
    by_id = {p["id"]: p for p in people["_embedded"]["people"]}
    alice = by_id[ALICE]
    assert alice["name"] == "Alice Adviser"
    assert alice["email"] == "alice@example.test"
    assert alice["ews_email"] == "alice@exchange.example.test"
    assert alice["schedule_id"] == WEEKDAYS
    assert (alice["disabled"], alice["deleted"]) == (False, False)
    assert by_id[CAROL]["disabled"] is True
    # the self link reads the same person
    assert client.ok("GET", alice["_links"]["self"]["href"])["ews_email"] == "alice@exchange.example.test"
    # include_disabled=false hides Carol
    enabled = client.ok("GET", expand(company["_links"]["people"], include_disabled="false"))
    assert CAROL not in {p["id"] for p in enabled["_embedded"]["people"]}


def test_resources_and_services(client: JrniClient) -> None:
    company = _company(client)
    resources = client.ok("GET", expand(company["_links"]["resources"]))["_embedded"]["resources"]
    room = next(r for r in resources if r["id"] == ROOM_1)
    assert room["ews_email"] == "room1@exchange.example.test"
    assert room["type"] == "resource"
    assert client.ok("GET", room["_links"]["self"]["href"])["name"] == "Room 1"
    services = client.ok("GET", expand(company["_links"]["services"]))["_embedded"]["services"]
    consultation = next(s for s in services if s["id"] == CONSULTATION)
    assert (consultation["duration"], consultation["pre_time"], consultation["post_time"]) == (30, 5, 10)
    assert client.ok("GET", f"/api/v1/admin/{NORTH}/services/{CONSULTATION}")["name"] == "Consultation"


def test_schedule_rules_and_working_dates(client: JrniClient) -> None:
    alice = client.ok("GET", f"/api/v1/admin/{NORTH}/people/{ALICE}")
    schedule = client.ok("GET", expand(alice["_links"]["schedule"]))
    assert schedule["rules"]["1"] == "0900-1700"
    # Sun 2026-05-31 off, Mon 06-01 weekday rule, Tue 06-02 the date rule beats the weekday rule
    ranged = client.ok(
        "GET", expand(alice["_links"]["schedule"], start_date="2026-05-31", end_date="2026-06-02")
    )
    assert ranged["dates"] == {
        "2026-05-31": "None",
        "2026-06-01": ["0900-1700"],
        "2026-06-02": ["1000-1400"],
    }


def test_shifts_expand_the_rules(client: JrniClient) -> None:
    schedule = client.ok("GET", f"/api/v1/admin/{NORTH}/schedules/{WEEKDAYS}")
    shifts = client.ok(
        "GET", expand(schedule["_links"]["shifts"], start_date="2026-06-07", end_date="2026-06-09")
    )["_embedded"]["shifts"]
    # Sunday: nothing; Monday: one shift; Tuesday 06-09: the split weekday rule
    assert [(s["date"], s["start"], s["end"]) for s in shifts] == [
        ("2026-06-08", "2026-06-08T09:00", "2026-06-08T17:00"),
        ("2026-06-09", "2026-06-09T09:00", "2026-06-09T12:00"),
        ("2026-06-09", "2026-06-09T13:00", "2026-06-09T17:00"),
    ]
    assert all(s["schedule_id"] == WEEKDAYS for s in shifts)
