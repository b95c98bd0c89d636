"""Acceptance 4: every 4xx the emulator answers, with JRNI's error shape and a message saying what is wrong."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from emulators.jrni.app import _is_loopback

from .conftest import (
    ALICE,
    DAVE,
    LONG_MEETING,
    NORTH,
    OTHER,
    OTHER_SERVICE,
    ROOM_1,
    WEEKDAYS,
    JrniClient,
    control,
)

ADMIN = f"/api/v1/admin/{NORTH}"
GOOD = {"datetime": "2026-06-01T09:00:00Z", "service_id": LONG_MEETING, "person_id": ALICE}


def assert_error(response: requests.Response, status: int, words: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"].startswith(str(status))
    if words:
        assert words in body["message"], body["message"]
    return body


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"service_id": LONG_MEETING}, "datetime is required"),
        ({"datetime": "2026-06-01T09:00:00Z"}, "service_id is required"),
        ({**GOOD, "datetime": "next tuesday"}, "not an ISO-8601"),
        ({**GOOD, "service_id": "four hundred"}, "service_id must be an integer"),
        ({**GOOD, "duration": 0}, "duration must be at least 1"),
        ({**GOOD, "channel": "Carrier pigeon"}, "channel must be one of"),
        ({**GOOD, "client": "Cleo"}, "client must be an object"),
        ({**GOOD, "reservation": "maybe"}, "reservation must be true or false"),
    ],
)
def test_create_booking_bad_fields_400(client: JrniClient, body: dict[str, Any], words: str) -> None:
    assert_error(client.request("POST", f"{ADMIN}/bookings", json=body), 400, words)
    assert client.ok("GET", f"{ADMIN}/bookings")["total_entries"] == 0  # nothing half-applied


def test_bad_json_and_non_object_400(client: JrniClient) -> None:
    headers = {"Content-Type": "application/json"}
    assert_error(
        client.request("POST", f"{ADMIN}/bookings", data="{not json", headers=headers), 400, "not valid JSON"
    )
    assert_error(
        client.request("POST", f"{ADMIN}/bookings", data="[1, 2]", headers=headers), 400, "JSON object"
    )


def test_update_and_cancel_bad_fields_400(client: JrniClient) -> None:
    booking = client.ok("POST", f"{ADMIN}/bookings", status=201, json=GOOD)
    url = f"{ADMIN}/bookings/{booking['id']}"
    assert_error(client.request("PUT", url, json={"datetime": 9}), 400, "datetime")
    assert_error(client.request("PUT", url, json={"date": "2026-06-01"}), 400, "together")
    assert_error(client.request("PUT", url, json={"confirm": "yes please"}), 400, "confirm")
    assert_error(client.request("POST", f"{url}/cancel", json={"notify": "loudly"}), 400, "notify")
    assert_error(client.request("POST", f"{url}/cancel", json={"cancel_reason": 5}), 400, "cancel_reason")
    assert client.ok("GET", url)["datetime"] == "2026-06-01T10:00:00+01:00"


def test_block_bad_fields_400(client: JrniClient) -> None:
    block = f"{ADMIN}/people/{ALICE}/block"
    assert_error(client.request("PUT", block, json={"start_time": "2026-06-01T09:00:00Z"}), 400, "end_time")
    backwards = {"start_time": "2026-06-01T10:00:00Z", "end_time": "2026-06-01T09:00:00Z"}
    assert_error(client.request("PUT", block, json=backwards), 400, "after start_time")
    slot = client.ok(
        "PUT",
        block,
        status=201,
        json={"start_time": "2026-06-01T09:00:00Z", "end_time": "2026-06-01T10:00:00Z"},
    )
    assert_error(
        client.request("PUT", slot["_links"]["self"]["href"], json={"start_time": "2026-06-01T09:00:00Z"}),
        400,
    )


def test_bad_query_parameters_400(client: JrniClient) -> None:
    assert_error(client.get(f"{ADMIN}/bookings", params={"start_date": "01/06/2026"}), 400, "start_date")
    assert_error(client.get(f"{ADMIN}/bookings", params={"per_page": "0"}), 400, "per_page")
    assert_error(client.get(f"{ADMIN}/bookings", params={"page": "first"}), 400, "page")
    assert_error(
        client.get(f"{ADMIN}/bookings", params={"include_cancelled": "perhaps"}), 400, "include_cancelled"
    )
    assert_error(
        client.get(f"{ADMIN}/bookings", params={"modified_since": "yesterday"}), 400, "modified_since"
    )
    assert_error(client.get(f"{ADMIN}/schedules/{WEEKDAYS}/shifts"), 400, "start_date is required")
    assert_error(
        client.get(
            f"{ADMIN}/schedules/{WEEKDAYS}/shifts",
            params={"start_date": "2026-06-09", "end_date": "2026-06-01"},
        ),
        400,
        "before",
    )


def test_login_without_password_400(base_url: str) -> None:
    response = JrniClient(base_url).request("POST", "/api/v1/login", json={"email": "someone@example.test"})
    assert_error(response, 400, "password")


def test_unknown_ids_404(client: JrniClient) -> None:
    for path in (
        f"{ADMIN}/bookings/999999",
        f"{ADMIN}/people/999",
        f"{ADMIN}/resources/999",
        f"{ADMIN}/services/999",
        f"{ADMIN}/schedules/999",
        f"{ADMIN}/slots/999999",
    ):
        assert_error(client.get(path), 404, "not found")
    assert_error(client.request("PUT", f"{ADMIN}/bookings/999999", json={"duration": 5}), 404)
    assert_error(client.request("POST", f"{ADMIN}/bookings/999999/cancel", json={}), 404)
    assert_error(client.request("PUT", f"{ADMIN}/people/999/block", json={}), 404)
    # an id named in the body is checked too
    assert_error(
        client.request("POST", f"{ADMIN}/bookings", json={**GOOD, "person_id": 999}), 404, "person 999"
    )
    # a route that does not exist
    assert_error(client.get(f"{ADMIN}/no-such-thing"), 404)


def test_unknown_company_404_for_a_parent_token(parent_client: JrniClient) -> None:
    assert_error(parent_client.get("/api/v1/admin/999/bookings"), 404, "company 999")


def test_wrong_company_403(client: JrniClient, base_url: str) -> None:
    # an object of another company named in the path or the body
    assert_error(client.get(f"{ADMIN}/people/{DAVE}"), 403, "another company")
    assert_error(client.request("POST", f"{ADMIN}/bookings", json={**GOOD, "service_id": OTHER_SERVICE}), 403)
    theirs = control(
        base_url,
        "POST",
        "bookings",
        status=201,
        json={"company_id": OTHER, "datetime": "2026-06-01T09:00:00Z", "service_id": OTHER_SERVICE},
    )
    assert_error(client.get(f"{ADMIN}/bookings/{theirs['id']}"), 403)
    assert_error(client.request("PUT", f"{ADMIN}/bookings/{theirs['id']}", json={"duration": 5}), 403)
    # a company the token does not reach
    assert_error(client.get(f"/api/v1/admin/{OTHER}/bookings"), 403, "not valid for company")


def test_wrong_media_type_415(client: JrniClient) -> None:
    form = client.request("POST", f"{ADMIN}/bookings", data={"datetime": "2026-06-01T09:00:00Z"})
    assert_error(form, 415, "application/json")
    text = client.request(
        "PUT", f"{ADMIN}/people/{ALICE}/block", data='{"a": 1}', headers={"Content-Type": "text/plain"}
    )
    assert_error(text, 415)


def test_wrong_method_405(client: JrniClient) -> None:
    assert_error(client.request("PATCH", f"{ADMIN}/bookings"), 405)
    assert_error(client.request("POST", f"{ADMIN}/resources/{ROOM_1}"), 405)


HOOK = "http://127.0.0.1:9/hook"
PERSON = {"id": 1, "company_id": NORTH, "name": "X", "email": "x@example.test"}
CONTROL_400: list[tuple[str, Any, int, str]] = [
    # (control path, body, status, words in the message)
    ("seed", {"compnies": []}, 400, "compnies"),
    ("seed", {"people": [{**PERSON, "ews_mail": "y"}]}, 400, "ews_mail"),
    ("seed", {"people": [{**PERSON, "id": ALICE}]}, 400, "duplicate"),
    ("seed", {"companies": [{"id": 77, "name": "Z", "timezone": "Mars/Olympus"}]}, 400, "time zone"),
    ("webhooks", {"url": "ftp://x", "format": "data"}, 400, "url"),
    ("webhooks", {"url": HOOK, "format": "xml"}, 400, "format"),
    ("webhooks", {"url": HOOK, "format": "data", "auth": {"basic": {"username": "u"}}}, 400, "auth"),
    ("faults", {"kind": "gremlins"}, 400, "kind"),
    ("faults", {"kind": "http_500", "probability": 2}, 400, "probability"),
    ("blocks", {"company_id": NORTH, "person_id": ALICE, "resource_id": ROOM_1, "start_time": "x", "end_time": "y"},
     400, "exactly one"),
    ("bookings", GOOD, 400, "company_id"),
    ("bookings/999999/confirm", None, 404, "999999"),
    ("clock", {"advance_seconds": -5}, 400, "advance_seconds"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "status", "words"), CONTROL_400)
def test_control_plane_4xx(base_url: str, path: str, body: Any, status: int, words: str) -> None:
    response = requests.post(f"{base_url}/_emulator/{path}", json=body, timeout=5)
    assert_error(response, status, words)


def test_control_plane_is_loopback_only() -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("::1")
    assert not _is_loopback("192.0.2.10")
    assert not _is_loopback(None)
