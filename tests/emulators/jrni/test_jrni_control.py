"""The control plane: seed, reset, state, stats, and the http_500 / latency faults."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

from emulators.common.server import BackgroundServer
from emulators.jrni.app import create_app
from emulators.jrni.settings import JrniSettings

from .conftest import ALICE, LONG_MEETING, NORTH, SEED, JrniClient, control

ADMIN = f"/api/v1/admin/{NORTH}"


def test_seed_ids_are_the_ones_given_and_a_bad_seed_changes_nothing(base_url: str) -> None:
    extra = {
        "people": [{"id": 4242, "company_id": NORTH, "name": "Newcomer", "email": "new@example.test"}],
        "services": [{"id": 4343, "company_id": 999, "name": "Orphan", "duration": 10}],  # unknown company
    }
    control(base_url, "POST", "seed", status=400, json=extra)
    people = [p["id"] for p in control(base_url, "GET", "state")["people"]]
    assert 4242 not in people
    del extra["services"]
    control(base_url, "POST", "seed", status=201, json=extra)
    assert 4242 in [p["id"] for p in control(base_url, "GET", "state")["people"]]


def test_state_shows_everything_and_reset_forgets_it(client: JrniClient, base_url: str) -> None:
    booking = client.ok(
        "POST",
        f"{ADMIN}/bookings",
        status=201,
        json={"datetime": "2026-06-01T09:00:00Z", "service_id": LONG_MEETING, "person_id": ALICE},
    )
    slot = client.ok(
        "PUT",
        f"{ADMIN}/people/{ALICE}/block",
        status=201,
        json={"start_time": "2026-06-01T12:00:00Z", "end_time": "2026-06-01T13:00:00Z"},
    )
    state = control(base_url, "GET", "state")
    assert {c["id"] for c in state["companies"]} == {c["id"] for c in SEED["companies"]}
    assert [b["id"] for b in state["bookings"]] == [booking["id"]]
    assert [b["slot_id"] for b in state["blocks"]] == [slot["id"]]
    assert [s["id"] for s in state["slots"]] == [slot["id"]]
    assert {"people", "resources", "services", "schedules"} <= set(state)
    control(base_url, "POST", "reset")
    state = control(base_url, "GET", "state")
    assert (state["companies"], state["bookings"], state["slots"]) == ([], [], [])
    # tokens are gone too
    assert client.get(f"{ADMIN}/people").status_code == 401


def test_stats_count_requests_per_endpoint(client: JrniClient, base_url: str) -> None:
    for _ in range(3):
        client.ok("GET", f"{ADMIN}/people")
    client.ok("GET", f"/api/v5/admin/{NORTH}/people")
    requests_seen = control(base_url, "GET", "stats")["requests"]
    assert requests_seen[r"GET /api/v1/admin/{company_id}/people"] == 3
    assert requests_seen[r"GET /api/v5/admin/{company_id}/people"] == 1
    assert requests_seen["POST /api/v1/login"] == 1


def test_http_500_fault_with_count_and_path(client: JrniClient, base_url: str) -> None:
    control(
        base_url,
        "POST",
        "faults",
        status=201,
        json={"kind": "http_500", "count": 2, "path": f"{ADMIN}/bookings"},
    )
    # other paths are untouched
    assert client.get(f"{ADMIN}/people").status_code == 200
    body = {"datetime": "2026-06-01T09:00:00Z", "service_id": LONG_MEETING, "person_id": ALICE}
    for _ in range(2):
        failed = client.request("POST", f"{ADMIN}/bookings", json=body)
        assert failed.status_code == 500
        assert failed.json()["error"] == "500 Internal Server Error"
    # the failed calls created nothing, so the retry does not clash with a ghost booking
    client.ok("POST", f"{ADMIN}/bookings", status=201, json=body)
    assert client.ok("GET", f"{ADMIN}/bookings")["total_entries"] == 1


def test_http_500_fault_until_cleared(client: JrniClient, base_url: str) -> None:
    control(base_url, "POST", "faults", status=201, json={"kind": "http_500"})
    assert [client.get(f"{ADMIN}/people").status_code for _ in range(3)] == [500, 500, 500]
    control(base_url, "DELETE", "faults")
    assert client.get(f"{ADMIN}/people").status_code == 200


def test_latency_fault_slows_requests(client: JrniClient, base_url: str) -> None:
    control(base_url, "POST", "faults", status=201, json={"kind": "latency", "delay_ms": 300, "count": 1})
    started = time.monotonic()
    assert client.get(f"{ADMIN}/people").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    client.get(f"{ADMIN}/people")
    assert time.monotonic() - started < 0.3


def test_latency_setting_applies_to_every_api_call() -> None:
    with BackgroundServer(lambda: create_app(JrniSettings(latency_ms=200), SEED)) as server:
        started = time.monotonic()
        response = requests.get(f"{server.base_url}/api/v1/admin/{NORTH}/people", timeout=5)
        assert response.status_code == 401
        assert time.monotonic() - started >= 0.2
        # the control plane is not slowed
        started = time.monotonic()
        requests.get(f"{server.base_url}/_emulator/stats", timeout=5)
        assert time.monotonic() - started < 0.2


def test_example_seed_file_is_valid(server: BackgroundServer) -> None:
    seed = json.loads((Path(__file__).resolve().parents[3] / "emulators/jrni/example-seed.json").read_text())
    control(server.base_url, "POST", "reset")
    control(server.base_url, "POST", "seed", status=201, json=seed)
    assert len(control(server.base_url, "GET", "state")["people"]) == len(seed["people"])
