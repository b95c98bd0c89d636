"""The inbound function as SQS invokes it, on moto, with the JRNI and EWS emulators over real HTTP.

Meetings are put in Outlook as the mailbox owner would (the EWS emulator's control plane); records are real SQS
messages shaped as the streaming task sends them; the JRNI emulator's state and request counts are the judge.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests

from calsync.adapters.dynamo import DynamoCursorStore, DynamoMappingStore
from calsync.domain import SyncState
from emulators.ews.testing import EwsEmulator
from tests.apigw import LambdaContext, load_event
from tests.aws import REGION
from tests.functions.conftest import (
    ALICE,
    ALICE_ID,
    INTEGRATION,
    NORTH,
    Aws,
    configure_integration,
    deliver_to,
    load_function,
    sqs_event,
)

# A day inside the sync window (now … now + 90 days), whatever day the tests run.
DAY = (datetime.now(UTC) + timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)


def at(hour: int, minute: int = 0) -> str:
    return (DAY + timedelta(hours=hour, minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def connect(aws: Aws, jrni: str, ews: EwsEmulator) -> Any:
    """Configure the integration (with the given options) and its mappings; returns the inbound handler."""

    def configure(**options: Any) -> Any:
        return configure_integration(aws, jrni, ews, "inbound", **options)

    return configure


@pytest.fixture
def handler(connect: Any) -> Any:
    return connect()


# ---------------------------------------------------------------------------------------------------- helpers


def wake(aws: Aws, *bodies: str, mailbox: str = ALICE) -> dict[str, Any]:
    """Queue messages as the streaming task does, then receive them as Lambda's poller would: a real SQS event."""
    url = aws.queues["InboundQueue"]
    for body in bodies:
        aws.sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageGroupId=f"{INTEGRATION}/{mailbox}/{uuid.uuid4().hex}",
            MessageDeduplicationId=uuid.uuid4().hex,
        )
    event = sqs_event(aws, url)
    assert len(event["Records"]) == len(bodies)
    return event


def record(mailbox: str = ALICE, integration_id: str = INTEGRATION, reason: str = "notification") -> str:
    return json.dumps({"integration": integration_id, "mailbox": mailbox, "reason": reason}, sort_keys=True)


def deliver(aws: Aws, handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    return deliver_to(aws, aws.queues["InboundQueue"], handler, event)


def sync(aws: Aws, handler: Any, mailbox: str = ALICE) -> dict[str, Any]:
    return deliver(aws, handler, wake(aws, record(mailbox), mailbox=mailbox))


def meet(ews: EwsEmulator, mailbox: str = ALICE, **fields: Any) -> dict[str, Any]:
    """A meeting put in Outlook by the mailbox's owner."""
    item = {"subject": "Dentist", "start": at(14), "end": at(15), "legacy_free_busy_status": "Busy", **fields}
    return ews.control("POST", f"mailboxes/{mailbox}/items", item, expect=201)  # type: ignore[no-any-return]


def move_in_outlook(ews: EwsEmulator, item: dict[str, Any], hours: int) -> None:
    start = datetime.fromisoformat(item["start"]) + timedelta(hours=hours)
    end = datetime.fromisoformat(item["end"]) + timedelta(hours=hours)
    ews.control(
        "PATCH",
        f"mailboxes/{ALICE}/items/{item['id']}",
        {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": end.strftime("%Y-%m-%dT%H:%M:%SZ")},
    )


def jrni_state(jrni: str) -> dict[str, Any]:
    answer = requests.get(f"{jrni}/_emulator/state", timeout=10)
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


def live_blocks(jrni: str) -> list[dict[str, Any]]:
    return [b for b in jrni_state(jrni)["blocks"] if not b["is_cancelled"]]


def jrni_booking(jrni: str, booking_id: int) -> dict[str, Any]:
    return next(b for b in jrni_state(jrni)["bookings"] if b["id"] == booking_id)


def jrni_writes(jrni: str) -> dict[str, int]:
    """JRNI API calls that change something (logins aside)."""
    counts = requests.get(f"{jrni}/_emulator/stats", timeout=10).json()["requests"]
    return {k: v for k, v in counts.items() if not k.startswith("GET") and "login" not in k}


def synced_booking(
    aws: Aws, jrni: str, ews: EwsEmulator, **body: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A booking made in JRNI, pushed to Alice's calendar by the outbound function; (booking, Outlook item)."""
    data = {
        "company_id": NORTH,
        "service_id": 401,
        "person_id": ALICE_ID,
        "datetime": at(10),
        "client": {"first_name": "Sam", "last_name": "Sample", "email": "sam@example.com"},
        **body,
    }
    answer = requests.post(f"{jrni}/_emulator/bookings", json=data, timeout=10)
    assert answer.status_code in (200, 201), answer.text
    booking = answer.json()
    message = json.dumps(
        {
            "integration_id": INTEGRATION,
            "company_id": str(NORTH),
            "booking_id": str(booking["id"]),
            "trigger": "create",
        },
        sort_keys=True,
    )
    aws.sqs.send_message(
        QueueUrl=aws.outbound_url,
        MessageBody=message,
        MessageGroupId=f"b/{booking['id']}",
        MessageDeduplicationId=uuid.uuid4().hex,
    )
    [received] = aws.sqs.receive_message(QueueUrl=aws.outbound_url, AttributeNames=["All"])["Messages"]
    event = load_event("outbound_sqs.json")
    event["Records"][0].update(
        {
            "messageId": received["MessageId"],
            "receiptHandle": received["ReceiptHandle"],
            "body": received["Body"],
            "attributes": received["Attributes"],
        }
    )
    assert load_function("outbound").lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}
    aws.sqs.delete_message(QueueUrl=aws.outbound_url, ReceiptHandle=received["ReceiptHandle"])
    [item] = ews.items(ALICE)
    return booking, item


# ---------------------------------------------------------------------------------------------------- tests


def test_a_private_meeting_blocks_the_advisers_time_in_jrni_under_a_neutral_title(
    aws: Aws, handler: Any, jrni: str, ews: EwsEmulator
) -> None:
    meet(ews, subject="Hospital: test results", sensitivity="Private")

    assert sync(aws, handler) == {"batchItemFailures": []}

    [block] = live_blocks(jrni)
    assert block["person_id"] == ALICE_ID and block["company_id"] == NORTH
    assert datetime.fromisoformat(block["datetime"]) == DAY + timedelta(hours=14)
    assert datetime.fromisoformat(block["end_datetime"]) == DAY + timedelta(hours=15)
    assert "Private appointment" in block["private_note"]
    assert "Hospital" not in json.dumps(jrni_state(jrni))  # the subject never left Exchange


def test_a_replayed_record_makes_no_jrni_write(aws: Aws, handler: Any, jrni: str, ews: EwsEmulator) -> None:
    meet(ews)
    event = wake(aws, record())
    assert handler(event, LambdaContext()) == {"batchItemFailures": []}
    writes = jrni_writes(jrni)

    assert handler(event, LambdaContext()) == {"batchItemFailures": []}  # SQS delivers it again
    sync(aws, handler)  # and the streaming task wakes the mailbox once more

    assert jrni_writes(jrni) == writes
    assert len(live_blocks(jrni)) == 1


def test_the_cursor_is_stored_only_after_success_and_the_retry_blocks_exactly_once(
    aws: Aws, handler: Any, jrni: str, ews: EwsEmulator
) -> None:
    meet(ews, subject="Dentist")
    sync(aws, handler)
    cursors = DynamoCursorStore(aws.tables["CursorsTable"], region=REGION)
    cursor = cursors.get(INTEGRATION, ALICE)
    assert cursor
    meet(ews, subject="School run", start=at(16), end=at(17))
    requests.post(
        f"{jrni}/_emulator/faults",
        json={"kind": "http_500", "count": 1, "path": f"/api/v1/admin/{NORTH}/people/{ALICE_ID}/block"},
        timeout=10,
    ).raise_for_status()

    event = wake(aws, record())
    answer = handler(event, LambdaContext())

    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert cursors.get(INTEGRATION, ALICE) == cursor
    assert [b for b in live_blocks(jrni) if "School run" in b["private_note"]] == []

    handler(event, LambdaContext())  # the retry

    assert len([b for b in live_blocks(jrni) if "School run" in b["private_note"]]) == 1
    assert len(live_blocks(jrni)) == 2
    assert cursors.get(INTEGRATION, ALICE) != cursor


def test_lock_on_a_booking_moved_in_outlook_is_put_back(
    aws: Aws, handler: Any, jrni: str, ews: EwsEmulator
) -> None:
    booking, item = synced_booking(aws, jrni, ews)
    sync(aws, handler)  # our own write coming back: nothing to do
    writes = jrni_writes(jrni)
    move_in_outlook(ews, item, hours=2)

    assert sync(aws, handler) == {"batchItemFailures": []}

    [back] = ews.items(ALICE)
    assert (back["start"], back["end"]) == (item["start"], item["end"])
    assert jrni_booking(jrni, booking["id"])["datetime"] == booking["datetime"]
    assert jrni_writes(jrni) == writes and live_blocks(jrni) == []


def test_lock_off_a_booking_moved_in_outlook_moves_in_jrni(
    aws: Aws, connect: Any, jrni: str, ews: EwsEmulator
) -> None:
    handler = connect(appointment_lock=False)
    booking, item = synced_booking(aws, jrni, ews)
    sync(aws, handler)
    move_in_outlook(ews, item, hours=2)

    assert sync(aws, handler) == {"batchItemFailures": []}

    moved = jrni_booking(jrni, booking["id"])
    assert datetime.fromisoformat(moved["datetime"]) == DAY + timedelta(hours=12)  # buffers taken off again
    assert moved["duration"] == 30 and not moved["is_cancelled"]
    assert live_blocks(jrni) == []  # the booking moved; no block was made for our own item


def test_a_reservation_moved_in_outlook_is_confirmed_with_two_events_on_the_bus(
    aws: Aws, connect: Any, jrni: str, ews: EwsEmulator
) -> None:
    handler = connect(auto_confirm=True)
    events, bus = boto3.client("events", region_name=REGION), os.environ["EVENT_BUS_NAME"]
    target = aws.sqs.create_queue(QueueName="customer-notifications")["QueueUrl"]
    target_arn = aws.sqs.get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="calsync-bookings", EventBusName=bus, EventPattern=json.dumps({"source": ["calsync"]})
    )
    events.put_targets(
        Rule="calsync-bookings", EventBusName=bus, Targets=[{"Id": "queue", "Arn": target_arn}]
    )
    booking, item = synced_booking(aws, jrni, ews, reservation=True)
    assert item["legacy_free_busy_status"] == "Tentative"
    sync(aws, handler)
    move_in_outlook(ews, item, hours=1)

    assert sync(aws, handler) == {"batchItemFailures": []}

    assert jrni_booking(jrni, booking["id"])["is_reservation"] is False
    delivered = [json.loads(m["Body"]) for m in aws.drain(target)]
    assert sorted(e["detail-type"] for e in delivered) == ["booking.confirmed", "booking.updated"]
    assert {e["detail"]["booking_id"] for e in delivered} == {str(booking["id"])}
    [now] = ews.items(ALICE)  # the lock is on: JRNI's time back, and now as a confirmed booking
    assert (now["start"], now["legacy_free_busy_status"]) == (item["start"], "Busy")


def test_jrni_refusing_a_move_reverts_outlook_and_the_status_says_why(
    aws: Aws, connect: Any, jrni: str, ews: EwsEmulator
) -> None:
    handler = connect(appointment_lock=False)
    booking, item = synced_booking(aws, jrni, ews, external=True)
    sync(aws, handler)
    move_in_outlook(ews, item, hours=2)

    assert sync(aws, handler) == {"batchItemFailures": []}

    assert jrni_booking(jrni, booking["id"])["datetime"] == booking["datetime"]
    [back] = ews.items(ALICE)
    assert (back["start"], back["end"]) == (item["start"], item["end"])
    [status] = [
        s
        for s in DynamoMappingStore(aws.tables["MappingsTable"], region=REGION).statuses(INTEGRATION)
        if s.jrni_id == str(ALICE_ID)
    ]
    assert status.state is SyncState.ERROR and "made externally" in status.detail


def test_unreadable_and_unknown_integration_records_are_dead_lettered_and_the_others_synced(
    aws: Aws, handler: Any, jrni: str, ews: EwsEmulator
) -> None:
    meet(ews)
    event = wake(aws, "not json", record(integration_id="no-such-bank"), record())

    assert deliver(aws, handler, event) == {"batchItemFailures": []}

    assert len(live_blocks(jrni)) == 1  # the good record did its job
    dead = aws.drain(aws.queues["InboundDeadLetterQueue"])
    reasons = {m["Body"]: m["MessageAttributes"]["reason"]["StringValue"] for m in dead}
    assert set(reasons) == {"not json", record(integration_id="no-such-bank")}
    assert "not an inbound message" in reasons["not json"]
    assert "no-such-bank" in reasons[record(integration_id="no-such-bank")]
    assert aws.drain(aws.queues["InboundQueue"]) == []


def test_throttling_postpones_the_record_by_the_servers_back_off(
    aws: Aws, handler: Any, jrni: str, ews: EwsEmulator
) -> None:
    meet(ews)
    ews.control(
        "POST",
        "faults",
        {"operation": "SyncFolderItems", "kind": "server_busy", "back_off_ms": 30_000, "count": 1},
    )
    event = wake(aws, record())
    [rec] = event["Records"]
    # As if the visibility timeout were running out: only the handler's postponement hides the message now.
    aws.sqs.change_message_visibility(
        QueueUrl=aws.queues["InboundQueue"], ReceiptHandle=rec["receiptHandle"], VisibilityTimeout=0
    )

    answer = handler(event, LambdaContext())

    assert answer == {"batchItemFailures": [{"itemIdentifier": rec["messageId"]}]}
    assert (
        aws.sqs.receive_message(QueueUrl=aws.queues["InboundQueue"], MaxNumberOfMessages=10).get(
            "Messages", []
        )
        == []
    )
    assert live_blocks(jrni) == []
    assert DynamoCursorStore(aws.tables["CursorsTable"], region=REGION).get(INTEGRATION, ALICE) is None
