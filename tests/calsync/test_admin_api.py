"""The admin REST API on in-memory fakes: validation, 1:1 mappings, status, and the generated OpenAPI document."""

from __future__ import annotations

import json
from dataclasses import replace
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
    fake_admin_deps,
)

BEN = "bob.banker@bank.example.test"
CALENDARS = [
    JrniCalendar(ResourceKind.PERSON, "11", "100", "Alice Adviser", ews_email=ALICE),
    JrniCalendar(ResourceKind.PERSON, "12", "101", "Bob Banker"),
    JrniCalendar(ResourceKind.RESOURCE, "21", "100", "Room 1"),
]


@pytest.fixture
def services() -> AdminDeps:
    return fake_admin_deps(
        integration(),
        bookings_for=lambda _: FakeBookingSource(calendars=CALENDARS),
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
        ({"name": "Another Bank"}, 409),  # its id is in use by another configuration
        ({"body_template": "<p>{{ bookings.nope }}</p>"}, 422),
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


def test_a_create_sent_again_with_its_own_id_answers_the_same_and_creates_nothing(
    services: AdminDeps,
) -> None:
    # Given an integration created with a client-chosen id
    first_status, first = call(services, load_event("admin_create_integration.json"))
    # When the same request is sent again (the client never saw the answer)
    again_status, again = call(services, load_event("admin_create_integration.json"))
    # Then it is answered as the first was, and there is still one such integration
    assert (first_status, again_status) == (201, 201) and again == first
    assert [i.id for i in services.integrations.all()] == [INTEGRATION, "example-bank"]

    # But the same id with another body is refused, saying how to change it instead
    body = {**json.loads(load_event("admin_create_integration.json")["body"]), "name": "Other"}
    status, answer = call(services, rest_event("POST", "/admin/integrations", body))
    assert status == 409 and "another configuration" in answer["message"] and "PATCH" in answer["message"]
    assert services.integrations.get("example-bank").name == "Example Bank"  # type: ignore[union-attr]


def test_a_bad_template_is_reported_with_line_and_column(services: AdminDeps) -> None:
    sample = json.loads(load_event("admin_create_integration.json")["body"])
    body = {
        **sample,
        "id": "other",
        # The secrets' names follow from the id when left out.
        "jrni": {k: v for k, v in sample["jrni"].items() if k != "secret_name"},
        "exchange": {k: v for k, v in sample["exchange"].items() if k != "secret_name"},
        "webhook_secret_name": None,
        "body_template": "<p>ok</p>\n<p>{{ bookings.nope }}</p>",
    }
    status, answer = call(services, rest_event("POST", "/admin/integrations", body))
    assert status == 422 and answer["template"] == "body" and "2:7" in answer["detail"]


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


# ---- one integration: read, change (a merge patch guarded by its version), delete


def one(
    services: AdminDeps,
    method: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    raw_body: str | None = None,
    integration_id: str = INTEGRATION,
) -> tuple[int, Any, dict[str, str]]:
    """``method /admin/integrations/{id}``: status, body and headers."""
    event = rest_event(
        method,
        f"/admin/integrations/{integration_id}",
        body,
        headers=headers,
        raw_body=raw_body,
        resource="/admin/integrations/{integration_id}",
        path_parameters={"integration_id": integration_id},
    )
    answer = build_admin_api(lambda: services).resolve(event, LambdaContext())
    text = answer.get("body")
    headers = {name: values[-1] for name, values in answer["multiValueHeaders"].items()}
    return answer["statusCode"], json.loads(text) if text else None, headers


def patch(
    services: AdminDeps, change: Any, etag: str | None, content_type: str = "application/merge-patch+json"
) -> tuple[int, Any, dict[str, str]]:
    headers = {"Content-Type": content_type, **({"If-Match": etag} if etag is not None else {})}
    return one(services, "PATCH", change, headers=headers)


def test_one_integration_is_shown_with_its_version_as_etag(services: AdminDeps) -> None:
    status, shown, headers = one(services, "GET")
    assert (
        status == 200
        and shown["id"] == INTEGRATION
        and shown["webhook_path"] == f"/webhooks/jrni/{INTEGRATION}"
    )
    assert headers["ETag"] == '"0"'
    status, answer, _ = one(services, "GET", integration_id="nope")
    assert status == 404 and "nope" in answer["message"]


def test_a_patch_changes_only_what_it_names_and_answers_the_new_version(services: AdminDeps) -> None:
    before = services.integrations.get(INTEGRATION)
    _, _, headers = one(services, "GET")
    # When only the name and one Exchange setting change
    status, changed, answer_headers = patch(
        services, {"name": "Renamed", "exchange": {"server_version": "Exchange2019"}}, headers["ETag"]
    )
    # Then those change, everything else stays, and the answer carries the new version
    assert status == 200, changed
    assert changed["name"] == "Renamed" and changed["exchange"]["server_version"] == "Exchange2019"
    assert changed["exchange"]["endpoint"] == before.exchange.endpoint  # type: ignore[union-attr]
    assert answer_headers["ETag"] == '"1"'
    stored = services.integrations.get(INTEGRATION)
    assert stored is not None and stored.name == "Renamed" and stored.version == 1
    assert stored.inbound_free_busy == before.inbound_free_busy  # type: ignore[union-attr]  # not in the body: kept
    assert one(services, "GET")[2]["ETag"] == '"1"'


def test_null_in_a_patch_puts_a_field_back_to_its_default(services: AdminDeps) -> None:
    etag = one(services, "GET")[2]["ETag"]
    status, changed, headers = patch(services, {"subject_template": "{{ booking.service_name }}"}, etag)
    assert status == 200 and changed["subject_template"] == "{{ booking.service_name }}", changed
    status, changed, _ = patch(services, {"subject_template": None}, headers["ETag"], "application/json")
    assert status == 200 and changed["subject_template"] is None


def test_a_template_change_is_dated_and_shown_and_other_changes_keep_the_date(
    services: AdminDeps,
) -> None:
    first, later = datetime(2025, 7, 2, 9, 30, tzinfo=UTC), datetime(2025, 7, 3, 10, 0, tzinfo=UTC)
    status, shown, headers = one(services, "GET")
    assert shown["templates_changed_at"] is None  # not changed since the integration was made
    # When the subject template changes
    status, changed, headers = patch(
        replace(services, clock=lambda: first), {"subject_template": "Bank appointment"}, headers["ETag"]
    )
    # Then the change is dated, and shown
    assert status == 200, changed
    assert changed["templates_changed_at"] == first.isoformat()
    stored = services.integrations.get(INTEGRATION)
    assert stored is not None and stored.templates_changed_at == first
    # When something else changes later, the date stays
    status, changed, headers = patch(
        replace(services, clock=lambda: later), {"name": "Renamed"}, headers["ETag"]
    )
    assert status == 200 and changed["templates_changed_at"] == first.isoformat(), changed
    # And a body template change is dated too
    status, changed, headers = patch(
        replace(services, clock=lambda: later), {"body_template": "<p>See you soon</p>"}, headers["ETag"]
    )
    assert status == 200 and changed["templates_changed_at"] == later.isoformat(), changed
    # And the date is calsync's to set, not the operator's
    status, refused, _ = patch(
        services, {"templates_changed_at": "2020-01-01T00:00:00+00:00"}, headers["ETag"]
    )
    assert status == 422 and "templates_changed_at" in json.dumps(refused), refused
    assert services.integrations.get(INTEGRATION).templates_changed_at == later  # type: ignore[union-attr]


def test_a_stored_template_that_no_longer_checks_can_be_mended_by_a_patch(services: AdminDeps) -> None:
    # Given a subject template stored when it still checked (a name the templates may no longer use)
    stored = services.integrations.get(INTEGRATION)
    assert stored is not None
    services.integrations.items[INTEGRATION] = replace(stored, subject_template="{{ no_such_name }}")  # type: ignore[attr-defined]
    etag = one(services, "GET")[2]["ETag"]
    # When the operator replaces it
    status, changed, _ = patch(services, {"subject_template": "Bank appointment"}, etag)
    # Then it is stored and dated
    assert status == 200, changed
    assert changed["subject_template"] == "Bank appointment" and changed["templates_changed_at"] is not None


def test_two_patches_from_the_same_etag_the_second_loses_with_412(services: AdminDeps) -> None:
    # Given two operators who read the same version
    etag = one(services, "GET")[2]["ETag"]
    # When both change it from that version
    first = patch(services, {"name": "First"}, etag)
    second = patch(services, {"name": "Second"}, etag)
    # Then the first wins and the second is refused, saying what to do; the first change is kept
    assert first[0] == 200
    assert second[0] == 412 and "GET" in second[1]["message"] and "version 1" in second[1]["message"]
    assert services.integrations.get(INTEGRATION).name == "First"  # type: ignore[union-attr]


def test_a_patch_that_loses_the_race_at_the_store_is_412_too(services: AdminDeps) -> None:
    # The version moves between the route's read and its write: the store's condition refuses it.
    store = services.integrations
    etag = one(services, "GET")[2]["ETag"]
    real_update = store.update  # type: ignore[attr-defined]

    def someone_else_first(integration: Any, expected_version: int) -> Any:
        current = store.get(INTEGRATION)
        real_update(replace(current, name="Someone else"), expected_version)
        return real_update(integration, expected_version)

    store.update = someone_else_first  # type: ignore[method-assign]
    status, answer, _ = patch(services, {"name": "Mine"}, etag)
    assert status == 412, answer
    assert store.get(INTEGRATION).name == "Someone else"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "etag", "content_type", "status", "says"),
    [
        ({"name": "x"}, None, "application/merge-patch+json", 428, "If-Match is required"),
        ({"name": "x"}, "3", "application/merge-patch+json", 400, "not an ETag"),
        ({"name": "x"}, "*", "application/merge-patch+json", 400, "not an ETag"),
        ({"id": "other"}, '"0"', "application/merge-patch+json", 400, "id cannot change"),
        (["name"], '"0"', "application/merge-patch+json", 400, "JSON object"),
        ({"name": ""}, '"0"', "application/merge-patch+json", 422, None),
        (
            {"name": None},
            '"0"',
            "application/merge-patch+json",
            422,
            None,
        ),  # required: no default to go back to
        ({"exchange": {"auth": "kerberos"}}, '"0"', "application/merge-patch+json", 422, None),
        ({"password": "pass-for-tests"}, '"0"', "application/merge-patch+json", 422, None),
        ({"name": "x"}, '"0"', "text/plain", 415, "merge-patch+json"),
    ],
)
def test_a_patch_is_refused_with_its_reason_and_changes_nothing(
    services: AdminDeps, change: Any, etag: str | None, content_type: str, status: int, says: str | None
) -> None:
    before = services.integrations.get(INTEGRATION)
    answer_status, answer, _ = patch(services, change, etag, content_type)
    assert answer_status == status, answer
    if says is not None:
        assert says in answer["message"]
    assert services.integrations.get(INTEGRATION) == before


def test_a_patch_with_a_template_that_cannot_be_used_names_its_line_and_column(services: AdminDeps) -> None:
    status, answer, _ = patch(services, {"body_template": "<p>ok</p>\n<p>{{ bookings.nope }}</p>"}, '"0"')
    assert status == 422 and answer["template"] == "body" and "2:7" in answer["detail"]
    assert services.integrations.get(INTEGRATION).body_template is None  # type: ignore[union-attr]


def test_a_patch_of_an_unknown_integration_is_404(services: AdminDeps) -> None:
    event = rest_event(
        "PATCH",
        "/admin/integrations/nope",
        {"name": "x"},
        headers={"If-Match": '"0"'},
        resource="/admin/integrations/{integration_id}",
        path_parameters={"integration_id": "nope"},
    )
    answer = build_admin_api(lambda: services).resolve(event, LambdaContext())
    assert answer["statusCode"] == 404


def test_deleting_an_integration_removes_everything_kept_for_it_and_only_that(services: AdminDeps) -> None:
    from calsync.domain import JrniKey, Link, LinkState, TimeWindow
    from calsync.domain.inbound import BlockLink

    # Given an integration with a mapping, a status, a link, a block link, a cursor and a finished run
    other = replace(services.integrations.get(INTEGRATION), id="other")  # type: ignore[type-var]
    services.integrations.create(other)
    put_mapping(services, "person", "11", ALICE)
    services.mappings.record_status(
        MappingStatus(
            INTEGRATION,
            ResourceKind.PERSON,
            "12",
            SyncState.ERROR,
            "refused",
            datetime(2025, 7, 1, tzinfo=UTC),
        )
    )
    links, block_links, cursors, _ = services.integration_state[1:]
    window = TimeWindow(datetime(2025, 7, 2, 9, tzinfo=UTC), datetime(2025, 7, 2, 10, tzinfo=UTC))
    for integration_id in (INTEGRATION, "other"):
        links.save(
            Link(integration_id, JrniKey("100", "501"), ALICE, LinkState.SYNCED, "f", "ews", "item-1", "v1")
        )  # type: ignore[attr-defined]
        block_links.save(BlockLink(integration_id, ALICE, "item-2", None, "", window, "Busy", "v1"))  # type: ignore[attr-defined]
        cursors.put(integration_id, ALICE, "cursor-1")  # type: ignore[attr-defined]
    [backfill] = services.runs.runs_of(INTEGRATION)
    services.runs.start(replace(backfill, mappings_total=1, mappings_done=1))  # the backfill has finished

    # When it is deleted
    status, answer, _ = one(services, "DELETE")

    # Then it and all its state are gone, the other integration's state is untouched, and a second DELETE is 404
    assert status == 204 and answer is None
    assert services.integrations.get(INTEGRATION) is None
    assert services.mappings.mappings(INTEGRATION) == [] and services.mappings.statuses(INTEGRATION) == []
    assert services.mappings.problems(INTEGRATION) == []
    assert links.links_in(INTEGRATION, ALICE) == [] and block_links.blocks(INTEGRATION, ALICE) == []  # type: ignore[attr-defined]
    assert cursors.get(INTEGRATION, ALICE) is None and services.runs.runs_of(INTEGRATION) == []  # type: ignore[attr-defined]
    assert services.runs.mapping_states(INTEGRATION) == []
    assert len(links.links_in("other", ALICE)) == 1 and len(block_links.blocks("other", ALICE)) == 1  # type: ignore[attr-defined]
    assert cursors.get("other", ALICE) == "cursor-1"  # type: ignore[attr-defined]
    assert services.integrations.get("other") is not None
    status, answer, _ = one(services, "DELETE")
    assert status == 404 and INTEGRATION in answer["message"]


def test_an_integration_is_not_deleted_while_it_is_being_reconciled(services: AdminDeps) -> None:
    # Given a mapping whose backfill (a reconcile run) is under way
    put_mapping(services, "person", "11", ALICE)
    [run] = services.runs.runs_of(INTEGRATION)
    # When the integration is deleted, it is refused, naming the run; nothing is removed
    status, answer, _ = one(services, "DELETE")
    assert status == 409 and run.run_id in answer["message"] and "wait until it is done" in answer["message"]
    assert services.integrations.get(INTEGRATION) is not None
    assert len(services.mappings.mappings(INTEGRATION)) == 1
    # Once the run has finished, the delete goes through
    services.runs.start(replace(run, mappings_total=1, mappings_done=1))
    assert one(services, "DELETE")[0] == 204


def test_a_run_that_never_finished_a_day_later_does_not_hold_a_delete_back(services: AdminDeps) -> None:
    put_mapping(services, "person", "11", ALICE)
    later = replace(services, clock=lambda: datetime(2025, 7, 2, 0, 1, tzinfo=UTC))
    assert one(later, "DELETE")[0] == 204


def test_an_idempotency_key_is_refused_where_no_table_keeps_them(services: AdminDeps) -> None:
    body = json.loads(load_event("admin_create_integration.json")["body"])
    event = rest_event("POST", "/admin/integrations", body, headers={"Idempotency-Key": "key-1"})
    status, answer = call(services, event)
    assert (
        status == 400 and "IDEMPOTENCY_TABLE" in answer["message"] and "id of your own" in answer["message"]
    )
    assert services.integrations.get("example-bank") is None


# ---- mappings imported in bulk


def import_file(
    services: AdminDeps, body: str, content_type: str = "text/csv", integration_id: str = INTEGRATION
) -> tuple[int, Any]:
    return call(
        services,
        rest_event(
            "POST",
            f"/admin/integrations/{integration_id}/mappings/import",
            headers={"Content-Type": content_type},
            raw_body=body,
            resource="/admin/integrations/{integration_id}/mappings/import",
            path_parameters={"integration_id": integration_id},
        ),
    )


def mapped(services: AdminDeps) -> dict[tuple[str, str], str]:
    return {(m.kind.value, m.jrni_id): m.mailbox for m in services.mappings.mappings(INTEGRATION)}


GOOD_CSV = "kind,jrni_id,mailbox\nperson,11,Alice@Example.com\nperson,12,bob.banker@bank.example.test\nresource,21,room-1@example.com\n"


def test_a_good_file_maps_every_row_and_backfills_each_and_again_changes_nothing(services: AdminDeps) -> None:
    # When a file of three good rows is imported
    status, answer = import_file(services, GOOD_CSV)
    # Then all three are mapped, each with a backfill started
    assert status == 200, answer
    assert (answer["applied"], answer["unchanged"]) == (3, 0)
    assert mapped(services) == {
        ("person", "11"): ALICE,
        ("person", "12"): BEN,
        ("resource", "21"): "room-1@example.com",
    }
    queued = services.reconcile_queue.sent  # type: ignore[attr-defined]
    assert sorted(m.mailbox for m in queued) == sorted([ALICE, BEN, "room-1@example.com"])
    assert {(b["kind"], b["jrni_id"]) for b in answer["backfills"]} == {
        ("person", "11"),
        ("person", "12"),
        ("resource", "21"),
    }
    assert {b["run_id"] for b in answer["backfills"]} == {m.run_id for m in queued}
    # When the same file is imported again, every row is unchanged and no backfill starts
    status, again = import_file(services, GOOD_CSV)
    assert status == 200 and again == {"applied": 0, "unchanged": 3, "backfills": []}
    assert len(services.reconcile_queue.sent) == 3  # type: ignore[attr-defined]


def test_a_file_with_one_bad_row_applies_nothing_and_names_the_row(services: AdminDeps) -> None:
    body = "kind,jrni_id,mailbox\nperson,11,alice@example.com\nperson,12,not-an-address\nresource,21,room-1@example.com\n"
    status, answer = import_file(services, body)
    assert status == 422, answer
    assert "none was" in answer["message"]
    [row] = answer["errors"]
    assert row["line"] == 3 and "'not-an-address' is not a mailbox address" in row["message"]
    assert mapped(services) == {} and services.reconcile_queue.sent == []  # type: ignore[attr-defined]


def test_every_bad_row_is_reported_with_its_line(services: AdminDeps) -> None:
    put_mapping(services, "resource", "21", "room-1@example.com")
    body = "\n".join(
        [
            "mailbox,kind,jrni_id",  # any order of the three columns
            "alice@example.com,person,11",
            "x@example.com,robot,12",  # 3: no such kind
            "y@example.com,person,99",  # 4: JRNI has no person 99
            "z@example.com,person,11",  # 5: person 11 twice
            "alice@example.com,person,12",  # 6: a mailbox twice
            "",  # 7: blank, skipped
            "room-1@example.com,person,12,extra",  # 8: four fields
            "w@example.com,person,1 2",  # 9: not a JRNI id
            "room-1@example.com,resource,22",  # 10: unknown to JRNI as well
        ]
    )
    status, answer = import_file(services, body)
    assert status == 422
    lines = {row["line"]: row["message"] for row in answer["errors"]}
    assert sorted(lines) == [3, 4, 5, 6, 8, 9, 10]
    assert "'robot' is not one of person, resource" in lines[3]
    assert "JRNI has no person 99" in lines[4]
    assert "person 11 is on line 2 too" in lines[5]
    assert "mailbox alice@example.com is on line 2 too" in lines[6]
    assert "4 fields, expected 3" in lines[8]
    assert "not a JRNI id" in lines[9]
    assert mapped(services) == {("resource", "21"): "room-1@example.com"}


def test_a_mailbox_mapped_to_someone_the_file_leaves_alone_is_refused(services: AdminDeps) -> None:
    put_mapping(services, "resource", "21", "room-1@example.com")
    status, answer = import_file(services, "kind,jrni_id,mailbox\nperson,11,room-1@example.com\n")
    assert status == 422
    [row] = answer["errors"]
    assert row["line"] == 2 and "is mapped to resource 21: unmap it first" in row["message"]


def test_a_mailbox_moved_to_another_in_the_same_file_is_applied_in_an_order_that_works(
    services: AdminDeps,
) -> None:
    # Given the room's mailbox on resource 21, moved in the file to person 11 (and 21 given another mailbox after)
    put_mapping(services, "resource", "21", "room-1@example.com")
    body = "kind,jrni_id,mailbox\nperson,11,room-1@example.com\nresource,21,room-2@example.com\n"
    status, answer = import_file(services, body)
    assert status == 200, answer
    assert mapped(services) == {
        ("person", "11"): "room-1@example.com",
        ("resource", "21"): "room-2@example.com",
    }


def test_mailboxes_swapped_between_two_rows_are_refused(services: AdminDeps) -> None:
    put_mapping(services, "person", "11", ALICE)
    put_mapping(services, "person", "12", BEN)
    body = f"kind,jrni_id,mailbox\nperson,11,{BEN}\nperson,12,{ALICE}\n"
    status, answer = import_file(services, body)
    assert status == 422 and [row["line"] for row in answer["errors"]] == [2, 3]
    assert "unmap one of them first" in answer["errors"][0]["message"]
    assert mapped(services) == {("person", "11"): ALICE, ("person", "12"): BEN}


def test_mappings_are_imported_from_json_too(services: AdminDeps) -> None:
    document = {
        "mappings": [
            {"kind": "person", "jrni_id": 11, "mailbox": ALICE},
            {"kind": "resource", "jrni_id": "21", "mailbox": "room-1@example.com"},
        ]
    }
    status, answer = import_file(services, json.dumps(document), "application/json")
    assert status == 200 and answer["applied"] == 2
    bad = {
        "mappings": [{"kind": "person", "jrni_id": "12", "mailbox": BEN}, {"kind": "person", "jrni_id": "11"}]
    }
    status, answer = import_file(services, json.dumps(bad), "application/json")
    assert status == 422 and [row["line"] for row in answer["errors"]] == [2]
    assert "found jrni_id, kind" in answer["errors"][0]["message"]
    assert ("person", "12") not in mapped(services)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        ("", "text/csv", 422, "expected the header row"),
        ("kind,mailbox\nperson,alice@example.com\n", "text/csv", 422, "expected the columns"),
        ("kind,jrni_id,mailbox\n", "text/csv", 400, "no mappings"),
        ('kind,jrni_id,mailbox\nperson,"11,alice@example.com\n', "text/csv", 422, "cannot be read as CSV"),
        ("[]", "application/json", 400, "expected {"),
        ("{nope", "application/json", 400, "not JSON"),
        ("kind,jrni_id,mailbox\n", "application/xml", 415, "text/csv"),
        ("kind,jrni_id,mailbox\n" + "person,11,alice@example.com\n" * 2001, "text/csv", 413, "at most 2,000"),
        ("kind,jrni_id,mailbox\n" + "person,11," + "a" * 1_000_000 + "\n", "text/csv", 413, "over 1 MB"),
    ],
)
def test_an_import_is_refused_with_its_reason(
    services: AdminDeps, body: str, content_type: str, status: int, says: str
) -> None:
    answer_status, answer = import_file(services, body, content_type)
    assert answer_status == status, answer
    assert says in json.dumps(answer)
    assert mapped(services) == {}


def test_an_import_into_an_unknown_integration_is_404(services: AdminDeps) -> None:
    status, answer = import_file(services, GOOD_CSV, integration_id="nope")
    assert status == 404 and "nope" in answer["message"]


def test_the_openapi_document_describes_the_new_routes_their_answers_and_refusals(
    services: AdminDeps,
) -> None:
    document = json.loads(build_admin_api(lambda: services).get_openapi_json_schema())
    one_path = document["paths"]["/admin/integrations/{integration_id}"]
    assert {"get", "patch", "delete"} <= set(one_path)
    assert {"412", "428", "422"} <= set(one_path["patch"]["responses"])
    assert "ETag" in one_path["get"]["responses"]["200"]["headers"]
    assert "409" in one_path["delete"]["responses"] and "204" in one_path["delete"]["responses"]
    create = document["paths"]["/admin/integrations"]["post"]
    assert "201" in create["responses"] and any(
        p["name"].lower() == "idempotency-key" for p in create["parameters"]
    )
    imported = document["paths"]["/admin/integrations/{integration_id}/mappings/import"]["post"]
    assert {"200", "413", "415", "422"} <= set(imported["responses"])
    assert {"IntegrationOut", "ImportOut", "ImportRefusedOut", "ErrorOut"} <= set(
        document["components"]["schemas"]
    )


def test_a_second_request_with_a_key_still_being_handled_is_told_to_try_again(
    services: AdminDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import boto3
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
    from moto import mock_aws

    from tests.aws import REGION, create_tables

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "pass-for-tests"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        table = create_tables()["IdempotencyTable"]
        layer = DynamoDBPersistenceLayer(table, boto3_client=boto3.client("dynamodb", region_name=REGION))
        # Two function instances (a resolver serves one request at a time), sharing the stores and the keys.
        api, other_instance = (build_admin_api(lambda: services, lambda: layer) for _ in range(2))
        body = json.loads(load_event("admin_create_integration.json")["body"])
        event = rest_event("POST", "/admin/integrations", body, headers={"Idempotency-Key": "key-1"})
        # Given a create that is still storing the integration when its retry arrives
        storing, retried = threading.Event(), threading.Event()
        store = services.integrations
        real_create = store.create

        def slow_create(integration: Any) -> Any:
            storing.set()
            retried.wait(timeout=10)
            return real_create(integration)

        store.create = slow_create  # type: ignore[method-assign]
        answers: list[dict[str, Any]] = []
        first = threading.Thread(target=lambda: answers.append(api.resolve(event, LambdaContext())))
        first.start()
        assert storing.wait(timeout=10)
        # When the retry comes, it is told the first is still under way, and creates nothing itself
        second = other_instance.resolve(event, LambdaContext())
        retried.set()
        first.join(timeout=10)
        assert second["statusCode"] == 409
        assert "still being handled: try again in a few seconds" in json.loads(second["body"])["message"]
        assert answers[0]["statusCode"] == 201
        # And once the first has answered, the retry gets its answer
        again = other_instance.resolve(event, LambdaContext())
        assert again["statusCode"] == 201 and json.loads(again["body"]) == json.loads(answers[0]["body"])
        assert [i.id for i in services.integrations.all()] == [INTEGRATION, "example-bank"]


def test_a_file_that_is_not_utf_8_is_refused(services: AdminDeps) -> None:
    import base64

    event = rest_event(
        "POST",
        f"/admin/integrations/{INTEGRATION}/mappings/import",
        headers={"Content-Type": "text/csv"},
        raw_body=base64.b64encode(
            "kind,jrni_id,mailbox\nperson,11,zoë@example.com\n".encode("latin-1")
        ).decode(),
        resource="/admin/integrations/{integration_id}/mappings/import",
        path_parameters={"integration_id": INTEGRATION},
    )
    event["isBase64Encoded"] = True
    status, answer = call(services, event)
    assert status == 400 and "not UTF-8" in answer["message"]
    assert mapped(services) == {}
