"""Acceptance 4: every 4xx the emulator answers, with JRNI's error shape and a message saying what is wrong."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from emulators.common.server import BackgroundServer
from emulators.jrni.app import _is_loopback, create_app, error_middleware
from emulators.jrni.settings import JrniSettings

from .conftest import (
    ALICE,
    DAVE,
    LONG_MEETING,
    NORTH,
    OTHER,
    OTHER_SERVICE,
    ROOM_1,
    SEED,
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
    (
        "blocks",
        {"company_id": NORTH, "person_id": ALICE, "resource_id": ROOM_1, "start_time": "x", "end_time": "y"},
        400,
        "exactly one",
    ),
    ("bookings", GOOD, 400, "company_id"),
    ("bookings/999999/confirm", None, 404, "999999"),
    ("clock", {"advance_seconds": -5}, 400, "advance_seconds"),
    ("clock", {"advance_seconds": 10**20}, 400, "advance_seconds"),
    ("webhooks", {"url": HOOK, "format": "data", "auth": {"token": "t\r\nX-Injected: 1"}}, 400, "control"),
    (
        "blocks",
        {
            "company_id": NORTH,
            "person_id": ALICE,
            "start_time": "2026-06-01T09:00:00Z",
            "end_time": "2026-06-01T10:00:00Z",
            "booking": "yes",
        },
        400,
        "booking",
    ),
]


@pytest.mark.parametrize(("path", "body", "status", "words"), CONTROL_400)
def test_control_plane_4xx(base_url: str, path: str, body: Any, status: int, words: str) -> None:
    response = requests.post(f"{base_url}/_emulator/{path}", json=body, timeout=5)
    assert_error(response, status, words)


def test_control_plane_is_loopback_only() -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("::1")
    assert not _is_loopback("192.0.2.10")
    assert not _is_loopback(None)


@pytest.mark.parametrize(
    "params",
    [{"per_page": "²"}, {"page": "--2"}, {"person_id": "---1"}, {"page": "\u0661"}, {"per_page": "1" * 400}],
)
def test_odd_digits_in_the_query_are_400(client: JrniClient, params: dict[str, str]) -> None:
    assert_error(client.get(f"{ADMIN}/bookings", params=params), 400, "must be an integer")


def test_odd_digits_in_the_body_are_400(client: JrniClient) -> None:
    assert_error(
        client.request("POST", f"{ADMIN}/bookings", json={**GOOD, "service_id": "²"}), 400, "service_id"
    )
    assert_error(
        client.request("POST", f"{ADMIN}/bookings", json={**GOOD, "person_id": "--101"}), 400, "person_id"
    )
    # plain digit strings (with spaces around) are still ids, as JRNI accepts them
    booking = client.ok(
        "POST", f"{ADMIN}/bookings", status=201, json={**GOOD, "service_id": f" {LONG_MEETING} "}
    )
    assert booking["service_id"] == LONG_MEETING


def test_deeply_nested_json_and_nan_are_400(client: JrniClient, base_url: str) -> None:
    headers = {"Content-Type": "application/json"}
    deep = "[" * 100000 + "]" * 100000
    assert_error(client.request("POST", f"{ADMIN}/bookings", data=deep, headers=headers), 400, "JSON")
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"datetime": "2026-06-01T09:00:00Z", "service_id": {LONG_MEETING}, "settings": {{"x": {constant}}}}}'
        assert_error(client.request("POST", f"{ADMIN}/bookings", data=body, headers=headers), 400, "JSON")
    assert client.ok("GET", f"{ADMIN}/bookings")["total_entries"] == 0
    for raw in ('{"advance_seconds": NaN}', '{"advance_seconds": Infinity}', '{"advance_seconds": 1e300}'):
        response = requests.post(f"{base_url}/_emulator/clock", data=raw, headers=headers, timeout=5)
        assert_error(response, 400)
    # the clock still works
    assert control(base_url, "POST", "clock", json={"advance_seconds": 1})["now"]


def test_links_do_not_follow_a_forged_host_header(client: JrniClient, base_url: str) -> None:
    port = base_url.rsplit(":", 1)[1]
    company = f"{ADMIN}/company"
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1", "user@127.0.0.1", ""):
        links = client.ok("GET", company, headers={"Host": host})["_links"]
        assert links["self"]["href"] == f"{base_url}{company}", host
    # a Host that names this server (loopback, same port) is kept, so "localhost" clients get "localhost" links
    links = client.ok("GET", company, headers={"Host": f"localhost:{port}"})["_links"]
    assert links["self"]["href"] == f"http://localhost:{port}{company}"
    shifts = client.ok(
        "GET",
        f"{ADMIN}/schedules/{WEEKDAYS}/shifts",
        params={"start_date": "2026-06-01", "end_date": "2026-06-01"},
        headers={"Host": "evil.example"},
    )
    assert shifts["_links"]["self"]["href"].startswith(
        f"{base_url}/api/v1/admin/{NORTH}/schedules/{WEEKDAYS}/shifts?"
    )


def test_the_control_plane_refuses_a_non_loopback_client_over_http() -> None:
    # The emulator's own middlewares, over real HTTP; only the peer address is forged (we cannot connect from a
    # non-loopback address in a test), by a first middleware that clones the request with another remote.
    @web.middleware
    async def forge_remote(request: web.Request, handler: Any) -> web.StreamResponse:
        remote = request.headers.get("X-Test-Remote")
        return await handler(request.clone(remote=remote) if remote else request)

    def app() -> web.Application:
        application = create_app(JrniSettings(), copy.deepcopy(SEED))
        application.middlewares.insert(0, forge_remote)
        return application

    with BackgroundServer(app) as running:

        def state(remote: str) -> requests.Response:
            return requests.get(
                f"{running.base_url}/_emulator/state", headers={"X-Test-Remote": remote}, timeout=5
            )

        refused = state("192.0.2.10")
        assert_error(refused, 403, "loopback")
        assert_error(state("2001:db8::1"), 403)
        for loopback in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
            assert state(loopback).status_code == 200, loopback


def test_ipv4_mapped_loopback_is_loopback() -> None:
    assert _is_loopback("::ffff:127.0.0.1")
    assert not _is_loopback("::ffff:192.0.2.10")


def test_an_overflow_that_slips_through_is_a_400_not_a_500() -> None:
    # The last guard behind the year and length bounds: OverflowError is the client's value out of range.
    async def overflowing(request: web.Request) -> web.StreamResponse:
        raise OverflowError("date value out of range")

    response = asyncio.run(error_middleware(make_mocked_request("GET", "/api/v1/anything"), overflowing))
    assert response.status == 400
    assert isinstance(response, web.Response) and response.text is not None
    assert json.loads(response.text)["error"] == "400 Bad Request"
