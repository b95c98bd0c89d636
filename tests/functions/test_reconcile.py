"""The reconcile function as SQS invokes it, on moto, with the JRNI and EWS emulators over real HTTP, logging at INFO
as deployed (what it logs must never make a step fail)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from calsync.adapters.dynamo import DynamoRunStore
from calsync.domain.reconcile import ReconcileRun
from emulators.ews.testing import EwsEmulator
from tests.apigw import LambdaContext
from tests.aws import REGION
from tests.functions.conftest import (
    ALICE,
    ALICE_ID,
    INTEGRATION,
    NORTH,
    Aws,
    configure_integration,
    sqs_event,
)

DAY = (datetime.now(UTC) + timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)


def received(aws: Aws, *bodies: dict[str, Any]) -> dict[str, Any]:
    """Queue messages on the reconcile queue, then receive every message there as Lambda's poller would."""
    url = aws.queues["ReconcileQueue"]
    for body in bodies:
        aws.sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps(body),
            MessageGroupId=uuid.uuid4().hex,
            MessageDeduplicationId=uuid.uuid4().hex,
        )
    return sqs_event(aws, url, receive_all=True)


def test_a_deep_run_through_the_function_writes_jrnis_bookings_to_outlook_and_counts_them(
    aws: Aws, jrni: str, ews: EwsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    handler = configure_integration(aws, jrni, ews, "reconcile")
    for hour in (10, 12):
        answer = requests.post(
            f"{jrni}/_emulator/bookings",
            json={
                "company_id": NORTH,
                "service_id": 401,
                "person_id": ALICE_ID,
                "datetime": (DAY + timedelta(hours=hour)).isoformat(),
                "client": {"first_name": "Sam", "last_name": "Sample", "email": "sam@example.com"},
            },
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
    runs = DynamoRunStore(aws.tables["RunsTable"], region=REGION)
    runs.start(ReconcileRun(INTEGRATION, "run-1", True, datetime.now(UTC)))

    ran = handler(
        received(aws, {"kind": "run", "deep": True, "integration": INTEGRATION, "run": "run-1"}),
        LambdaContext(),
    )
    assert ran == {"batchItemFailures": []}
    mapping_steps = received(aws)
    assert len(mapping_steps["Records"]) == 3  # one per mapping
    assert handler(mapping_steps, LambdaContext()) == {"batchItemFailures": []}

    assert len(ews.items(ALICE)) == 2
    run = runs.get(INTEGRATION, "run-1")
    assert run is not None and run.state.value == "done" and run.repaired.created == 2
    [alice] = [m for m in runs.mapping_states(INTEGRATION) if m.mailbox == ALICE]
    assert (
        alice.last_reconciled_at is not None and alice.repaired.created == 2 and alice.backfill_total is None
    )


def test_a_message_that_is_not_a_reconcile_step_is_dead_lettered_with_its_reason(
    aws: Aws, jrni: str, ews: EwsEmulator
) -> None:
    handler = configure_integration(aws, jrni, ews, "reconcile")
    answer = handler(received(aws, {"kind": "mapping", "integration": INTEGRATION}), LambdaContext())
    assert answer == {"batchItemFailures": []}  # handled: it can never succeed
    [dead] = aws.drain(aws.queues["ReconcileDeadLetterQueue"])
    assert "names no integration and run" in dead["MessageAttributes"]["reason"]["StringValue"]
