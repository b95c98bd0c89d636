"""Webhook delivery under stress: a sender that cannot die, one queue per receiver, no redirects, reset drops
what is in flight."""

from __future__ import annotations

import time
from typing import Any

from emulators.common.server import BackgroundServer
from emulators.jrni.context import EMULATOR
from emulators.jrni.webhooks import Endpoint

from .conftest import ALICE, LONG_MEETING, NORTH, JrniClient, Receiver, control

BOOKINGS = f"/api/v1/admin/{NORTH}/bookings"


def subscribe(base_url: str, receiver: Receiver, path: str = "/hook") -> None:
    control(base_url, "POST", "webhooks", status=201, json={"url": receiver.url + path, "format": "data"})


def create(jrni: JrniClient, day: int = 1, **fields: Any) -> Any:
    body = {
        "datetime": f"2026-06-{day:02d}T09:00:00Z",
        "service_id": LONG_MEETING,
        "person_id": ALICE,
        **fields,
    }
    return jrni.ok("POST", BOOKINGS, status=201, json=body)


def stats(base_url: str) -> dict[str, Any]:
    return control(base_url, "GET", "stats")["webhooks"]


def test_a_delivery_that_raises_does_not_stop_the_sender(
    server: BackgroundServer, base_url: str, client: JrniClient, receiver: Receiver
) -> None:
    # An endpoint whose header aiohttp refuses (parse_endpoint now rejects it; put it in behind its back) ...
    assert server.app is not None
    hub = server.app[EMULATOR].hub
    bad = Endpoint(receiver.url + "/bad", "data", {"token": "token\r\nX-Injected: 1"})
    server.call(lambda: hub.endpoints.append(bad))
    subscribe(base_url, receiver, "/good")
    create(client)
    # ... fails its attempts, and the other receiver still gets the change
    assert [r.path for r in receiver.exactly(1)] == ["/good"]
    deadline = time.monotonic() + 5
    while stats(base_url)["failed"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    bad_results = {d["result"] for d in stats(base_url)["recent"] if d["url"].endswith("/bad")}
    assert bad_results and all(isinstance(r, str) for r in bad_results)  # an exception's name, not a status
    # and later changes are still delivered
    create(client, day=2)
    assert [r.path for r in receiver.exactly(2)] == ["/good", "/good"]


def test_control_characters_in_receiver_credentials_are_refused(base_url: str, receiver: Receiver) -> None:
    for auth in (
        {"token": "token\r\nX-Injected: 1"},
        {"basic": {"username": "user\n", "password": "pw"}},
        {"basic": {"username": "user", "password": "pw\r"}},
        {"basic": {"username": "us:er", "password": "pw"}},
    ):
        body = {"url": receiver.url, "format": "data", "auth": auth}
        control(base_url, "POST", "webhooks", status=400, json=body)
    for url in ("http://exa mple.test/", "http://example.test/\r\nX: 1", "http://"):
        control(base_url, "POST", "webhooks", status=400, json={"url": url, "format": "data"})
    assert control(base_url, "GET", "webhooks")["webhooks"] == []


def test_a_slow_receiver_does_not_hold_up_the_others(
    client: JrniClient, base_url: str, receiver: Receiver, second_receiver: Receiver
) -> None:
    slow, fast = receiver, second_receiver
    slow.delay_seconds = [0.4, 0.0]
    subscribe(base_url, slow)
    subscribe(base_url, fast)
    booking = create(client)
    client.ok("PUT", f"{BOOKINGS}/{booking['id']}", json={"duration": 30})
    # the fast one has both while the slow one is still answering the first
    assert [r.body["triggerName"] for r in fast.wait_for(2, timeout=0.3)] == ["create", "modify"]
    # each receiver still gets its deliveries in order
    assert [r.body["triggerName"] for r in slow.exactly(2)] == ["create", "modify"]


def test_a_redirect_is_a_failed_attempt_not_followed(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(base_url, receiver)
    receiver.answers = [302]
    create(client)
    assert [r.path for r in receiver.exactly(1)] == ["/hook"]  # retried at the URL, never at /hook/redirected
    assert [d["result"] for d in stats(base_url)["recent"]] == [302, 200]


def test_reset_drops_a_delivery_in_flight_and_its_retries(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(base_url, receiver)
    receiver.answers = [503] * 5
    receiver.delay_seconds = [0.3]
    create(client)
    time.sleep(0.1)  # the first attempt is in flight
    control(base_url, "POST", "reset")
    time.sleep(0.6)  # longer than the answer and several back-offs
    fresh = stats(base_url)
    assert (fresh["enqueued"], fresh["attempts"], fresh["retries"], fresh["failed"]) == (0, 0, 0, 0)
    assert receiver.attempts == 1  # no retry reached the old receiver


def test_reset_drops_a_delivery_held_by_the_reorder_fault(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    subscribe(base_url, receiver)
    control(base_url, "POST", "faults", status=201, json={"kind": "reorder_webhooks", "count": 1})
    create(client)  # held for up to 0.5 s, waiting for a later delivery
    control(base_url, "POST", "reset")
    time.sleep(0.7)
    assert receiver.attempts == 0
    assert stats(base_url)["attempts"] == 0
