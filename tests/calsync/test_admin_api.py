"""The admin REST API on in-memory fakes: validation, 1:1 mappings, status, and the generated OpenAPI document."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from calsync.domain import MappingStatus, ResourceKind, SyncState
from calsync.ports import JrniCalendar
from calsync.transport.admin import build_admin_api
from calsync.usecases.admin import AdminDeps
from tests.apigw import LambdaContext, load_event, rest_event
from tests.calsync.builders import ALICE, INTEGRATION, integration
from tests.calsync.fakes import (
    FakeBookingSource,
    FakeIntegrations,
    FakeMappings,
    FakeReconcileQueue,
    FakeRuns,
)

BEN = "bob.banker@bank.example.test"
CALENDARS = [
    JrniCalendar(ResourceKind.PERSON, "11", "100", "Alice Adviser", ews_email=ALICE),
    JrniCalendar(ResourceKind.PERSON, "12", "101", "Bob Banker"),
    JrniCalendar(ResourceKind.RESOURCE, "21", "100", "Room 1"),
]


@pytest.fixture
def services() -> AdminDeps:
    return AdminDeps(
        integrations=FakeIntegrations(integration()),
        mappings=FakeMappings(),
        bookings_for=lambda _: FakeBookingSource(calendars=CALENDARS),
        clock=lambda: datetime(2025, 7, 1, tzinfo=UTC),
        runs=FakeRuns(),
        reconcile_queue=FakeReconcileQueue(),
        streaming=None,
        secrets_prefix="calsync/",
    )


def call(services: AdminDeps, event: dict[str, Any]) -> tuple[int, Any]:
    answer = build_admin_api(lambda: services).resolve(event, LambdaContext())
    body = answer.get("body")
    return answer["statusCode"], json.loads(body) if body else None


def mapping_path(
    kind: str, jrni_id: str, integration_id: str = INTEGRATION
) -> tuple[str, str, dict[str, str]]:
    return (
        f"/admin/integrations/{integration_id}/mappings/{kind}/{jrni_id}",
        "/admin/integrations/{integration_id}/mappings/{kind}/{jrni_id}",
        {"integration_id": integration_id, "kind": kind, "jrni_id": jrni_id},
    )


def put_mapping(services: AdminDeps, kind: str, jrni_id: str, mailbox: Any) -> tuple[int, Any]:
    path, resource, params = mapping_path(kind, jrni_id)
    return call(
        services, rest_event("PUT", path, {"mailbox": mailbox}, resource=resource, path_parameters=params)
    )


def test_create_integration_from_the_sample_event_and_list_it(services: AdminDeps) -> None:
    status, created = call(services, load_event("admin_create_integration.json"))
    assert status == 201
    assert created["id"] == "example-bank" and created["webhook_path"] == "/webhooks/jrni/example-bank"
    assert created["exchange"]["verify_tls"] is True  # TLS verification is on unless turned off

    status, listed = call(services, rest_event("GET", "/admin/integrations"))
    assert status == 200 and {i["id"] for i in listed["integrations"]} == {INTEGRATION, "example-bank"}
    # Names of secrets only; no secret value can be sent or shown.
    assert "password" not in json.dumps(listed)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"name": ""}, 422),
        ({"jrni": {"base_url": "ftp://x", "company_id": "1", "secret_name": "s"}}, 422),
        (
            {
                "exchange": {
                    "endpoint": "https://mail.example.com/EWS/Exchange.asmx",
                    "secret_name": "s",
                    "auth": "kerberos",
                }
            },
            422,
        ),
        (
            {"password": "hunter2"},
            422,
        ),  # unknown fields are refused, so a secret cannot be smuggled into DynamoDB
        ({"id": "example-bank"}, 409),
        ({"body_template": "<p>{{ booking.nope }}</p>"}, 422),
    ],
)
def test_create_integration_refuses_bad_input(
    services: AdminDeps, change: dict[str, Any], status: int
) -> None:
    call(services, load_event("admin_create_integration.json"))
    body = {**json.loads(load_event("admin_create_integration.json")["body"]), **change}
    answer_status, answer = call(services, rest_event("POST", "/admin/integrations", body))
    assert answer_status == status, answer
    assert len(services.integrations.all()) == 2  # nothing half-created


def test_a_bad_template_is_reported_with_line_and_column(services: AdminDeps) -> None:
    sample = json.loads(load_event("admin_create_integration.json")["body"])
    body = {
        **sample,
        "id": "other",
        # The secrets' names follow from the id when left out.
        "jrni": {k: v for k, v in sample["jrni"].items() if k != "secret_name"},
        "exchange": {k: v for k, v in sample["exchange"].items() if k != "secret_name"},
        "webhook_secret_name": None,
        "body_template": "<p>ok</p>\n<p>{{ booking.nope }}</p>",
    }
    status, answer = call(services, rest_event("POST", "/admin/integrations", body))
    assert status == 422 and answer["template"] == "body" and "2:6" in answer["detail"]


def test_mappings_list_every_jrni_staff_member_and_resource_with_its_mailbox(services: AdminDeps) -> None:
    status, mapped = put_mapping(services, "person", "11", "Alice@Example.com")
    assert status == 200
    assert {k: mapped[k] for k in ("kind", "jrni_id", "mailbox")} == {
        "kind": "person",
        "jrni_id": "11",
        "mailbox": ALICE,
    }
    # A new mapping is backfilled at once: one deep reconcile of it, queued.
    [backfill] = services.reconcile_queue.sent  # type: ignore[attr-defined]
    assert (backfill.step.value, backfill.deep, backfill.mailbox) == ("mapping", True, ALICE)
    assert mapped["backfill"] == {"run_id": backfill.run_id}
    assert put_mapping(services, "person", "11", ALICE)[1]["backfill"] is None  # the same mapping again: none
    services.mappings.record_status(
        MappingStatus(
            INTEGRATION,
            ResourceKind.PERSON,
            "12",
            SyncState.SKIPPED,
            "no mailbox",
            datetime(2025, 7, 1, tzinfo=UTC),
        )
    )
    status, answer = call(
        services,
        rest_event(
            "GET",
            f"/admin/integrations/{INTEGRATION}/mappings",
            resource="/admin/integrations/{integration_id}/mappings",
            path_parameters={"integration_id": INTEGRATION},
        ),
    )
    assert status == 200
    rows = {(r["kind"], r["jrni_id"]): r for r in answer["mappings"]}
    assert rows[("person", "11")]["mailbox"] == ALICE
    assert (
        rows[("person", "12")]["mailbox"] is None and rows[("person", "12")]["status"]["state"] == "skipped"
    )
    assert rows[("resource", "21")]["mailbox"] is None


def test_a_mailbox_can_be_mapped_once_per_integration(services: AdminDeps) -> None:
    assert put_mapping(services, "person", "11", ALICE)[0] == 200
    status, answer = put_mapping(services, "resource", "21", ALICE)
    assert status == 409 and "alice@example.com" in answer["message"]
    assert put_mapping(services, "person", "11", ALICE)[0] == 200  # the same mapping again is fine


@pytest.mark.parametrize(
    ("kind", "mailbox", "status"),
    [
        ("person", "not-an-address", 400),
        ("robot", "x@example.com", 422),
        ("person", 42, 422),
    ],
)
def test_mapping_validation(services: AdminDeps, kind: str, mailbox: Any, status: int) -> None:
    assert put_mapping(services, kind, "11", mailbox)[0] == status
    assert services.mappings.mappings(INTEGRATION) == []


def test_unmapping(services: AdminDeps) -> None:
    put_mapping(services, "person", "11", ALICE)
    path, resource, params = mapping_path("person", "11")
    assert call(services, rest_event("DELETE", path, resource=resource, path_parameters=params))[0] == 204
    assert call(services, rest_event("DELETE", path, resource=resource, path_parameters=params))[0] == 404


def test_unknown_integration_is_404(services: AdminDeps) -> None:
    path, resource, params = mapping_path("person", "11", "nope")
    status, answer = call(
        services, rest_event("PUT", path, {"mailbox": ALICE}, resource=resource, path_parameters=params)
    )
    assert status == 404 and "nope" in answer["message"]


def test_status_shows_problems_first(services: AdminDeps) -> None:
    put_mapping(services, "person", "11", ALICE)
    services.mappings.record_status(
        MappingStatus(
            INTEGRATION,
            ResourceKind.PERSON,
            "11",
            SyncState.ERROR,
            "booking 100/501 failed: not granted",
            datetime(2025, 7, 1, tzinfo=UTC),
        )
    )
    status, answer = call(
        services,
        rest_event(
            "GET",
            f"/admin/integrations/{INTEGRATION}/status",
            resource="/admin/integrations/{integration_id}/status",
            path_parameters={"integration_id": INTEGRATION},
        ),
    )
    assert status == 200 and answer["mapped"] == 1 and answer["states"] == {"error": 1}
    assert answer["problems"][0]["detail"] == "booking 100/501 failed: not granted"


def status_of(services: AdminDeps) -> dict[str, Any]:
    status, answer = call(
        services,
        rest_event(
            "GET",
            f"/admin/integrations/{INTEGRATION}/status",
            resource="/admin/integrations/{integration_id}/status",
            path_parameters={"integration_id": INTEGRATION},
        ),
    )
    assert status == 200
    return answer


def test_a_problem_stays_in_the_status_until_its_own_subject_is_settled(services: AdminDeps) -> None:
    put_mapping(services, "person", "11", ALICE)

    def outcome(state: SyncState, detail: str, subject: str, hour: int) -> None:
        services.mappings.record_status(
            MappingStatus(
                INTEGRATION,
                ResourceKind.PERSON,
                "11",
                state,
                detail,
                datetime(2025, 7, 1, hour, tzinfo=UTC),
                subject,
            )
        )

    outcome(
        SyncState.ERROR,
        "booking 100/501: JRNI refused the change made in Outlook",
        "Outlook change to 100/501",
        9,
    )
    outcome(SyncState.OK, "0 blocked, 0 moved", "Outlook changes", 10)  # later syncs of the mailbox go well
    outcome(SyncState.OK, "booking 100/502 created", "booking 100/502", 11)
    answer = status_of(services)
    assert [p["detail"] for p in answer["problems"]] == [
        "booking 100/501: JRNI refused the change made in Outlook"
    ]
    assert answer["states"] == {
        "error": 1
    }  # still a calendar with a problem, although its last outcome was ok

    outcome(SyncState.OK, "1 bookings changed", "Outlook change to 100/501", 12)
    answer = status_of(services)
    assert answer["problems"] == [] and answer["states"] == {"ok": 1}


def test_openapi_document_is_generated_from_the_routes(services: AdminDeps) -> None:
    document = json.loads(build_admin_api(lambda: services).get_openapi_json_schema())
    assert {
        "/admin/integrations",
        "/admin/integrations/{integration_id}/mappings",
        "/admin/integrations/{integration_id}/mappings/{kind}/{jrni_id}",
        "/admin/integrations/{integration_id}/status",
    } <= set(document["paths"])
    assert "IntegrationIn" in document["components"]["schemas"]


def test_the_openapi_document_is_served_to_operators(services: AdminDeps) -> None:
    event = rest_event("GET", "/admin/openapi")
    event["queryStringParameters"] = {"format": "json"}
    event["multiValueQueryStringParameters"] = {"format": ["json"]}
    status, document = call(services, event)
    assert status == 200 and document["info"]["title"] == "calsync admin API"
    assert "/admin/integrations/{integration_id}/status" in document["paths"]


class Watching:
    """The streaming task's reports: how each mailbox is watched, and the task's heartbeats."""

    def __init__(self, states: list[Any], beats: list[Any]) -> None:
        self.states, self.beats = states, beats

    def mailbox_states(self, integration_id: str) -> list[Any]:
        return [s for s in self.states if s.integration_id == integration_id]

    def heartbeats(self) -> list[Any]:
        return list(self.beats)


def _views(services: AdminDeps) -> tuple[dict[tuple[str, str], Any], dict[str, Any]]:
    """The mappings view's rows by (kind, JRNI id), and the status."""
    _, answer = call(
        services,
        rest_event(
            "GET",
            f"/admin/integrations/{INTEGRATION}/mappings",
            resource="/admin/integrations/{integration_id}/mappings",
            path_parameters={"integration_id": INTEGRATION},
        ),
    )
    _, status = call(
        services,
        rest_event(
            "GET",
            f"/admin/integrations/{INTEGRATION}/status",
            resource="/admin/integrations/{integration_id}/status",
            path_parameters={"integration_id": INTEGRATION},
        ),
    )
    return {(r["kind"], r["jrni_id"]): r for r in answer["mappings"]}, status


def test_mappings_and_status_show_how_outlook_changes_are_watched(services: AdminDeps) -> None:
    from dataclasses import replace

    from calsync.domain.inbound import MailboxStreamState, TaskHeartbeat

    at = datetime(2025, 7, 1, tzinfo=UTC)
    watched = replace(
        services,
        streaming=Watching(
            [
                MailboxStreamState(
                    INTEGRATION, ALICE, "timed", "over the 2 connections allowed: synced every 5 min", at
                )
            ],
            [TaskHeartbeat("task-1", at, 1)],
        ),
    )
    put_mapping(watched, "person", "11", ALICE)
    rows, status = _views(watched)
    assert rows[("person", "11")]["outlook_changes"]["mode"] == "timed"
    assert "synced every 5 min" in rows[("person", "11")]["outlook_changes"]["detail"]
    assert rows[("person", "12")]["outlook_changes"] is None  # not mapped: not watched
    assert status["outlook_changes"] == {"timed": 1}
    assert status["streaming_task"]["state"] == "ok"


def test_a_watch_is_stale_once_the_streaming_task_has_missed_three_heartbeats(services: AdminDeps) -> None:
    from dataclasses import replace

    from calsync.domain.inbound import MailboxStreamState, TaskHeartbeat

    now = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
    beat = TaskHeartbeat("task-1", now - timedelta(seconds=46), 2)  # 3 x 15 s ago, and a second more
    states = [
        MailboxStreamState(INTEGRATION, ALICE, "streaming", "subscribed", now - timedelta(hours=1)),
        MailboxStreamState(INTEGRATION, BEN, "error", "impersonation not granted", now - timedelta(hours=1)),
    ]
    stopped = TaskHeartbeat(
        "task-0", now - timedelta(seconds=5), 0
    )  # a task that stopped cleanly watches nothing
    dead = replace(
        services,
        clock=lambda: now,
        streaming=Watching(states, [beat, stopped]),
        streaming_heartbeat=timedelta(seconds=15),
        streaming_service="calsync-streaming",
    )
    put_mapping(dead, "person", "11", ALICE)
    put_mapping(dead, "person", "12", BEN)
    rows, status = _views(dead)
    watch = rows[("person", "11")]["outlook_changes"]
    assert watch["mode"] == "stale" and watch["watched_as"] == "streaming"
    assert watch["last_heartbeat"] == beat.at.isoformat()
    assert f"the streaming task last reported at {beat.at.isoformat()} (46 s ago" in watch["detail"]
    assert "check the ECS service calsync-streaming" in watch["detail"]
    assert rows[("person", "12")]["outlook_changes"]["mode"] == "error"  # an error stays what it is
    assert status["outlook_changes"] == {"stale": 1, "error": 1}
    assert status["streaming_task"] == {
        "state": "stale",
        "last_heartbeat": beat.at.isoformat(),
        "stale_after_seconds": 45.0,
    }

    # Within 3 heartbeats, the same watch is fresh.
    alive = replace(dead, streaming=Watching(states, [replace(beat, at=now - timedelta(seconds=44))]))
    rows, status = _views(alive)
    assert rows[("person", "11")]["outlook_changes"]["mode"] == "streaming"
    assert status["outlook_changes"] == {"streaming": 1, "error": 1}

    # No task has ever reported: stale too, saying so.
    never = replace(dead, streaming=Watching(states, []))
    rows, _ = _views(never)
    assert rows[("person", "11")]["outlook_changes"]["mode"] == "stale"
    assert "no streaming task has reported" in rows[("person", "11")]["outlook_changes"]["detail"]

    # No streaming task deployed (nothing watched, no heartbeat): no task to report on.
    _, status = _views(replace(dead, streaming=Watching([], [])))
    assert status["streaming_task"] is None and status["outlook_changes"] == {}
