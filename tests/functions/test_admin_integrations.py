"""The admin function as AWS runs it, on moto: an idempotent create (a client's own id, or an Idempotency-Key kept by
Powertools' idempotency utility in the template's table), a change guarded by the version, and a delete that leaves
nothing of the integration in any table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from calsync.adapters.dynamo import (
    DynamoBlockLinkStore,
    DynamoCursorStore,
    DynamoLinkStore,
    DynamoMappingStore,
    DynamoRunStore,
    DynamoStreamingStateStore,
)
from calsync.adapters.dynamo.dead_letters import DynamoDeadLetterStore
from calsync.domain import (
    JrniKey,
    Link,
    LinkState,
    Mapping,
    MappingStatus,
    ResourceKind,
    SyncState,
    TimeWindow,
)
from calsync.domain.dead_letters import DeadLetter, DeadLetterQueue
from calsync.domain.inbound import BlockLink
from calsync.domain.reconcile import ReconcileRun, Repairs
from tests.apigw import LambdaContext, load_event, rest_event
from tests.functions.conftest import REGION, Aws, load_function


def _without_secret_names(body: dict[str, Any]) -> dict[str, Any]:
    """A creation body naming no secrets: calsync names them from the integration's id."""
    del body["jrni"]["secret_name"], body["exchange"]["secret_name"], body["webhook_secret_name"]
    return body


BODY: dict[str, Any] = _without_secret_names(json.loads(load_event("admin_create_integration.json")["body"]))


def body_of(integration_id: str) -> dict[str, Any]:
    """The sample creation body for another id."""
    body: dict[str, Any] = json.loads(json.dumps(BODY).replace("example-bank", integration_id))
    return body


ALICE = "alice@example.com"


def invoke(event: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    answer = load_function("admin").lambda_handler(event, LambdaContext())
    headers = {name: values[-1] for name, values in (answer.get("multiValueHeaders") or {}).items()}
    return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None, headers


def create(body: dict[str, Any], key: str | None = None) -> tuple[int, Any, dict[str, str]]:
    headers = {"Idempotency-Key": key} if key else None
    return invoke(rest_event("POST", "/admin/integrations", body, headers=headers))


def on_one(
    method: str, integration_id: str, body: Any = None, **headers: str
) -> tuple[int, Any, dict[str, str]]:
    return invoke(
        rest_event(
            method,
            f"/admin/integrations/{integration_id}",
            body,
            headers=headers,
            resource="/admin/integrations/{integration_id}",
            path_parameters={"integration_id": integration_id},
        )
    )


def stored_ids(aws: Aws) -> list[str]:
    items = aws.dynamodb.scan(TableName=aws.tables["IntegrationsTable"])["Items"]
    return sorted(item["integration_id"]["S"] for item in items)


def test_a_retried_create_with_the_same_idempotency_key_creates_one_integration(aws: Aws) -> None:
    # Given a create without an id of its own (calsync chooses it), sent with an Idempotency-Key
    body = {k: v for k, v in BODY.items() if k != "id"}
    status, first, headers = create(body, key="3f0c9a2e-key-1")
    assert status == 201 and headers["ETag"] == '"1"'
    # When the client, never having seen the answer, sends it again
    status, again, again_headers = create(body, key="3f0c9a2e-key-1")
    # Then it gets the first answer, and there is one integration, not two
    assert status == 201 and again == first and again_headers["ETag"] == '"1"'
    assert stored_ids(aws) == [first["id"]]
    # A new key is a new integration
    status, other, _ = create(body, key="3f0c9a2e-key-2")
    assert status == 201 and other["id"] != first["id"] and len(stored_ids(aws)) == 2


def test_the_same_idempotency_key_with_another_body_is_refused_and_creates_nothing(aws: Aws) -> None:
    body = {k: v for k, v in BODY.items() if k != "id"}
    assert create(body, key="key-a")[0] == 201
    status, answer, _ = create({**body, "name": "Another Bank"}, key="key-a")
    assert status == 422, answer
    assert "Idempotency-Key 'key-a' was used" in answer["message"] and "new key" in answer["message"]
    assert len(stored_ids(aws)) == 1


def test_a_refused_create_leaves_its_idempotency_key_free_for_a_corrected_body(aws: Aws) -> None:
    # A template that cannot be used is refused; the key is not spent on the refusal.
    bad = {**BODY, "body_template": "<p>{{ bookings.nope }}</p>"}
    assert create(bad, key="key-b")[0] == 422
    assert create(BODY, key="key-b")[0] == 201
    assert stored_ids(aws) == ["example-bank"]


def test_a_retried_create_with_its_own_id_answers_the_same_and_another_body_is_409(aws: Aws) -> None:
    status, first, _ = create(BODY)
    assert status == 201
    assert create(BODY)[:2] == (201, first)
    status, answer, _ = create({**BODY, "name": "Another Bank"})
    assert status == 409 and "PATCH /admin/integrations/example-bank" in answer["message"]
    assert stored_ids(aws) == ["example-bank"]


def test_two_changes_from_the_same_version_the_second_gets_412(aws: Aws) -> None:
    create(BODY)
    status, _, headers = on_one("GET", "example-bank")
    assert status == 200 and headers["ETag"] == '"1"'
    first = on_one("PATCH", "example-bank", {"name": "First"}, **{"If-Match": headers["ETag"]})
    second = on_one("PATCH", "example-bank", {"name": "Second"}, **{"If-Match": headers["ETag"]})
    assert first[0] == 200 and first[2]["ETag"] == '"2"' and first[1]["name"] == "First"
    assert second[0] == 412 and "version 2, not 1" in second[1]["message"]
    assert on_one("GET", "example-bank")[1]["name"] == "First"


@pytest.fixture
def two_integrations(aws: Aws) -> None:
    """example-bank and other-bank, each with an item in every table the functions write."""
    at = datetime.now(UTC) - timedelta(days=2)
    window = TimeWindow(at, at + timedelta(hours=1))
    options = {"region": REGION}
    mappings = DynamoMappingStore(aws.tables["MappingsTable"], **options)
    links = DynamoLinkStore(aws.tables["LinksTable"], **options)
    block_links = DynamoBlockLinkStore(aws.tables["BlockLinksTable"], **options)
    cursors = DynamoCursorStore(aws.tables["CursorsTable"], **options)
    streaming = DynamoStreamingStateStore(aws.tables["StreamingStateTable"], **options)
    runs = DynamoRunStore(aws.tables["RunsTable"], **options)
    dead_letters = DynamoDeadLetterStore(aws.tables["DeadLettersTable"], **options)
    for integration_id in ("example-bank", "other-bank"):
        assert create(body_of(integration_id))[0] == 201
        mappings.put(Mapping(integration_id, ResourceKind.PERSON, "101", ALICE))
        mappings.record_status(
            MappingStatus(integration_id, ResourceKind.PERSON, "101", SyncState.ERROR, "refused", at, "b")
        )
        key = JrniKey("10", "501")
        links.save(Link(integration_id, key, ALICE, LinkState.SYNCED, "fp", "ews", "item-1", "ck-1"))
        block_links.save(BlockLink(integration_id, ALICE, "item-2", key, "7001", window, "Busy", "ck-2"))
        cursors.put(integration_id, ALICE, "sync-state")
        streaming.record_mailbox(integration_id, ALICE, "streaming", "subscribed", at)
        runs.start(
            ReconcileRun(integration_id, "run-1", deep=True, started_at=at, mappings_total=1, mappings_done=1)
        )
        runs.set_jrni_cursor(integration_id, at)
        runs.reconciled(integration_id, ALICE, at, Repairs(created=1))
        dead_letters.record(
            DeadLetter(
                integration_id, f"m-{integration_id}", DeadLetterQueue.OUTBOUND, {"mailbox": ALICE}, "no", at
            )
        )


def holding(aws: Aws, integration_id: str) -> dict[str, int]:
    """How many items of each table mention the integration."""
    counts = {}
    for name, table in aws.tables.items():
        items = aws.dynamodb.scan(TableName=table)["Items"]
        counts[name] = sum(1 for item in items if integration_id in json.dumps(item))
    return counts


def test_deleting_an_integration_leaves_nothing_of_it_in_any_table(aws: Aws, two_integrations: None) -> None:
    before = holding(aws, "other-bank")
    assert all(before[name] for name in aws.tables if name != "IdempotencyTable"), before

    status, answer, _ = on_one("DELETE", "example-bank")

    assert (status, answer) == (204, None)
    assert holding(aws, "example-bank") == dict.fromkeys(aws.tables, 0)
    assert holding(aws, "other-bank") == before  # the other integration keeps everything
    assert on_one("DELETE", "example-bank")[0] == 404
    assert on_one("GET", "example-bank")[0] == 404


def test_an_integration_being_reconciled_is_not_deleted(aws: Aws, two_integrations: None) -> None:
    runs = DynamoRunStore(aws.tables["RunsTable"], region=REGION)
    runs.start(
        ReconcileRun("example-bank", "run-2", deep=False, started_at=datetime.now(UTC), mappings_total=3)
    )
    status, answer, _ = on_one("DELETE", "example-bank")
    assert status == 409 and "run-2" in answer["message"]
    assert stored_ids(aws) == ["example-bank", "other-bank"]
    assert holding(aws, "example-bank")["MappingsTable"] > 0
