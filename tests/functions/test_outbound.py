"""The outbound function as SQS invokes it, on moto, with the JRNI and EWS emulators over real HTTP.

Bookings are made in the JRNI emulator as a JRNI user would; the EWS emulator's calendars are the judge.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from calsync.adapters.dynamo import DynamoLinkStore, DynamoMappingStore
from calsync.domain import (
    JrniKey,
    Mapping,
    ResourceKind,
    SyncState,
)
from emulators.ews.testing import EwsEmulator
from tests.apigw import LambdaContext, load_event
from tests.aws import REGION
from tests.functions.conftest import (
    ALICE,
    ALICE_ID,
    BOB,
    BOB_ID,
    NORTH,
    ROOM,
    SERVICE_ACCOUNT,
    Aws,
    configure_integration,
    deliver_to,
    sqs_event,
)


@pytest.fixture
def handler(aws: Aws, jrni: str, ews: EwsEmulator) -> Any:
    return configure_integration(aws, jrni, ews, "outbound")


def book(jrni: str, **body: Any) -> dict[str, Any]:
    """A booking made in JRNI's own screens."""
    data = {
        "company_id": NORTH,
        "service_id": 401,
        "person_id": ALICE_ID,
        "datetime": "2026-07-06T10:00:00+01:00",
        "client": {"first_name": "Sam", "last_name": "Sample", "email": "sam@example.com"},
        **body,
    }
    answer = requests.post(f"{jrni}/_emulator/bookings", json=data, timeout=10)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()  # type: ignore[no-any-return]


def enqueue_and_receive(aws: Aws, booking_ids: list[int]) -> dict[str, Any]:
    """Queue messages as the webhook function does, then receive them as Lambda's poller would: a real SQS event."""
    for booking_id in booking_ids:
        body = json.dumps(
            {
                "integration_id": "example-bank",
                "company_id": str(NORTH),
                "booking_id": str(booking_id),
                "trigger": "create",
            },
            sort_keys=True,
        )
        aws.sqs.send_message(
            QueueUrl=aws.outbound_url,
            MessageBody=body,
            MessageGroupId=f"example-bank/{NORTH}/{booking_id}",
            MessageDeduplicationId=uuid.uuid4().hex,
        )
    return sqs_event(aws, aws.outbound_url)


def deliver(aws: Aws, handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    return deliver_to(aws, aws.outbound_url, handler, event)


def test_a_booking_appears_in_the_advisers_calendar_with_buffers(
    aws: Aws, handler: Any, jrni: str, ews: EwsEmulator
) -> None:
    booking = book(jrni)
    answer = handler(enqueue_and_receive(aws, [booking["id"]]), LambdaContext())

    assert answer == {"batchItemFailures": []}
    [item] = ews.items(ALICE)
    # Consultation: 30 minutes, 5 before and 10 after; 10:00 in London in July is 09:00 UTC.
    assert (item["start"], item["end"]) == ("2026-07-06T08:55:00Z", "2026-07-06T09:40:00Z")
    assert item["subject"] == "Consultation: Sam Sample" and item["legacy_free_busy_status"] == "Busy"
    assert ews.items(BOB) == []


def test_a_replayed_message_changes_nothing(aws: Aws, handler: Any, jrni: str, ews: EwsEmulator) -> None:
    booking = book(jrni)
    deliver(aws, handler, enqueue_and_receive(aws, [booking["id"]]))
    first = ews.items(ALICE)
    before = ews.control("GET", "stats")["operations"]

    deliver(aws, handler, enqueue_and_receive(aws, [booking["id"]]))

    assert ews.items(ALICE) == first
    assert ews.control("GET", "stats")["operations"] == before  # not one EWS request


def test_a_permanently_failing_mailbox_goes_to_the_dead_letter_queue_and_others_are_unaffected(
    aws: Aws, handler: Any, jrni: str, ews: EwsEmulator
) -> None:
    ews.control(
        "POST", "impersonation", {"service_account": SERVICE_ACCOUNT, "mailboxes": [ALICE, ROOM]}
    )  # Bob not granted
    for_bob, for_alice = book(jrni, person_id=BOB_ID), book(jrni, datetime="2026-07-06T12:00:00+01:00")

    answer = handler(enqueue_and_receive(aws, [for_bob["id"], for_alice["id"]]), LambdaContext())

    assert answer == {"batchItemFailures": []}  # neither goes back to the queue
    assert len(ews.items(ALICE)) == 1 and ews.items(BOB) == []
    [dead] = aws.drain(aws.dead_letter_url)
    assert json.loads(dead["Body"])["booking_id"] == str(for_bob["id"])
    assert "impersonat" in dead["MessageAttributes"]["reason"]["StringValue"]
    statuses = DynamoMappingStore(aws.tables["MappingsTable"], region=REGION).statuses("example-bank")
    [bob_status] = [s for s in statuses if s.jrni_id == str(BOB_ID)]
    assert bob_status.state is SyncState.ERROR and BOB in bob_status.detail


def test_throttling_puts_the_message_back_delayed_by_the_servers_back_off(
    aws: Aws, handler: Any, jrni: str, ews: EwsEmulator
) -> None:
    booking = book(jrni)
    ews.control(
        "POST",
        "faults",
        {"operation": "CreateItem", "kind": "server_busy", "back_off_ms": 30_000, "count": 1},
    )
    event = enqueue_and_receive(aws, [booking["id"]])
    [record] = event["Records"]
    # As if the message's visibility timeout were running out: only the handler's postponement hides it now.
    aws.sqs.change_message_visibility(
        QueueUrl=aws.outbound_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
    )

    answer = handler(event, LambdaContext())

    assert answer == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert (
        aws.sqs.receive_message(QueueUrl=aws.outbound_url, MaxNumberOfMessages=10).get("Messages", []) == []
    )
    assert ews.items(ALICE) == []


def test_a_crash_between_the_ews_create_and_the_link_write_leaves_one_item_after_the_retry(
    aws: Aws, handler: Any, jrni: str, ews: EwsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    booking = book(jrni)
    original = DynamoLinkStore.save
    calls = {"n": 0}

    def save_then_crash(self: DynamoLinkStore, link: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the write after the EWS create: the process dies here
            raise SystemError("the function was killed")
        return original(self, link)

    monkeypatch.setattr(DynamoLinkStore, "save", save_then_crash)
    event = enqueue_and_receive(aws, [booking["id"]])
    assert handler(event, LambdaContext())["batchItemFailures"] == [
        {"itemIdentifier": event["Records"][0]["messageId"]}
    ]
    assert len(ews.items(ALICE)) == 1

    handler(event, LambdaContext())  # the retry

    assert len(ews.items(ALICE)) == 1
    [link] = DynamoLinkStore(aws.tables["LinksTable"], region=REGION).links_for(
        "example-bank", JrniKey(str(NORTH), str(booking["id"]))
    )
    assert link.state.value == "synced" and link.remote_id == ews.items(ALICE)[0]["id"]


def test_an_unreadable_message_is_dead_lettered_not_retried_forever(aws: Aws, handler: Any) -> None:
    event = load_event("outbound_sqs.json")
    event["Records"][0]["body"] = "not json"
    assert handler(event, LambdaContext()) == {"batchItemFailures": []}
    [dead] = aws.drain(aws.dead_letter_url)
    assert "not an outbound message" in dead["MessageAttributes"]["reason"]["StringValue"]


def test_a_mailbox_that_is_no_address_is_never_sent_to_exchange_and_the_status_says_why(
    aws: Aws, handler: Any, jrni: str, ews: EwsEmulator
) -> None:
    # Given Alice mapped, by data stored before the admin API checked addresses, to a mailbox with a NUL in it
    hostile = "alice@example.com\x00"
    mappings = DynamoMappingStore(aws.tables["MappingsTable"], region=REGION)
    mappings.put(Mapping("example-bank", ResourceKind.PERSON, str(ALICE_ID), hostile))
    ews.control("POST", "config", {"capture": True})
    before = ews.control("GET", "stats")

    # When a booking with her is synced
    booking = book(jrni)
    answer = handler(enqueue_and_receive(aws, [booking["id"]]), LambdaContext())

    # Then nothing reached Exchange for it, and the message is dead-lettered, not retried
    assert answer == {"batchItemFailures": []}
    after = ews.control("GET", "stats")
    assert after["operations"] == before["operations"] and after["http_statuses"] == before["http_statuses"]
    assert not any(
        b"\x00" in payload for *_, payload, _ in ews.call(lambda: list(ews.emulator.settings.captured))
    )
    [dead] = aws.drain(aws.dead_letter_url)
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert "is not a valid address" in reason and "fix the mapping" in reason
    # And the status of Alice's calendar is an error naming the mailbox and what to do
    [alice] = [s for s in mappings.statuses("example-bank") if s.jrni_id == str(ALICE_ID)]
    assert alice.state is SyncState.ERROR
    assert "'alice@example.com\\x00'" in alice.detail and "fix the mapping" in alice.detail


def test_a_template_failing_on_one_bookings_data_dead_letters_it_at_once_with_the_reason(
    aws: Aws, jrni: str, ews: EwsEmulator
) -> None:
    # Given a subject template that renders the sample booking (it is checked so when saved) but not a client whose
    # first name is a number
    handler = configure_integration(
        aws,
        jrni,
        ews,
        "outbound",
        subject_template="{{ client.first_name | upcase | split: 'x' | first | divided_by: 0 }}",
    )
    booking = book(jrni, client={"first_name": "4", "last_name": "Sample", "email": "four@example.com"})

    # When its message is handled
    answer = handler(enqueue_and_receive(aws, [booking["id"]]), LambdaContext())

    # Then it is not retried: it is in the dead-letter queue now, saying which template failed and why
    assert answer == {"batchItemFailures": []}
    [dead] = aws.drain(aws.dead_letter_url)
    assert json.loads(dead["Body"])["booking_id"] == str(booking["id"])
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert "subject template" in reason and "divided_by" in reason, reason
    # And the staff member's status says so; nothing was written to Outlook
    statuses = DynamoMappingStore(aws.tables["MappingsTable"], region=REGION).statuses("example-bank")
    [alice] = [s for s in statuses if s.jrni_id == str(ALICE_ID)]
    assert alice.state is SyncState.ERROR and "subject template" in alice.detail, alice
    assert ews.items(ALICE) == []
