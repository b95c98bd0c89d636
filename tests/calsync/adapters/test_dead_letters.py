"""Dead letters on moto: recorded when dead-lettered, found in the shared dead-letter queues per integration, moved
back to their source queues one integration at a time; and the JRNI directory's copy, paged."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from calsync.adapters.aws.dead_letters import QueuePair, SqsDeadLetterQueues
from calsync.adapters.aws.queues import (
    SqsInboundQueue,
    SqsOutboundQueue,
    SqsReconcileQueue,
    encode_inbound,
    encode_outbound,
    encode_reconcile,
    inbound_group,
    outbound_group,
    reconcile_group,
)
from calsync.adapters.dynamo import DynamoMappingStore
from calsync.adapters.dynamo.dead_letters import DynamoDeadLetterStore, DynamoDirectoryStore
from calsync.domain import JrniKey, Mapping, ResourceKind
from calsync.domain.dead_letters import REDRIVEN, DeadLetter, DeadLetterQueue
from calsync.domain.messages import (
    InboundMessage,
    OutboundMessage,
    ReconcileMessage,
    ReconcileStep,
    WakeReason,
)
from calsync.ports import DeadLetterQueues, DeadLetterStore, DirectoryStore, JrniCalendar
from tests.aws import REGION, Resources, create_in_moto

OURS, THEIRS = "bank-a", "bank-b"
PERSON, RESOURCE = ResourceKind.PERSON, ResourceKind.RESOURCE


@dataclass
class World:
    resources: Resources
    sqs: Any
    store: DynamoDeadLetterStore
    queues: SqsDeadLetterQueues
    outbound: SqsOutboundQueue
    inbound: SqsInboundQueue

    def url(self, logical: str) -> str:
        return self.resources.queue_urls[logical]

    def bodies(self, logical: str) -> list[dict[str, Any]]:
        """Receive (and delete) what a queue holds: each message's body, group and attributes."""
        found = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.url(logical),
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                self.sqs.delete_message(QueueUrl=self.url(logical), ReceiptHandle=message["ReceiptHandle"])
                found.append(
                    {
                        "body": json.loads(message["Body"]),
                        "group": message["Attributes"]["MessageGroupId"],
                        "id": message["MessageId"],
                    }
                )


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "pass-for-tests",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        resources = create_in_moto()
        sqs = boto3.client("sqs", region_name=REGION)
        store = DynamoDeadLetterStore(resources.tables["DeadLettersTable"], region=REGION)
        urls = resources.queue_urls
        queues = SqsDeadLetterQueues(
            sqs,
            {
                DeadLetterQueue.OUTBOUND: QueuePair(urls["OutboundQueue"], urls["OutboundDeadLetterQueue"]),
                DeadLetterQueue.INBOUND: QueuePair(urls["InboundQueue"], urls["InboundDeadLetterQueue"]),
            },
        )
        yield World(
            resources,
            sqs,
            store,
            queues,
            SqsOutboundQueue(sqs, urls["OutboundQueue"], urls["OutboundDeadLetterQueue"], store),
            SqsInboundQueue(sqs, urls["InboundQueue"], urls["InboundDeadLetterQueue"], store),
        )


def test_the_adapters_implement_their_ports(world: World) -> None:
    store: DeadLetterStore = world.store
    queues: DeadLetterQueues = world.queues
    assert store is not None and queues is not None


def dead_letter_booking(
    world: World, integration_id: str, booking: str, reason: str, attempts: int = 1
) -> None:
    message = OutboundMessage(integration_id, JrniKey("37001", booking), "create")
    world.outbound.dead_letter(
        encode_outbound(message), outbound_group(message), reason, uuid.uuid4().hex, attempts
    )


def test_a_dead_lettered_booking_is_recorded_for_its_integration_with_its_reason_and_attempts(
    world: World,
) -> None:
    dead_letter_booking(world, OURS, "501", "svc may not impersonate ben@bank.example.test", attempts=2)
    dead_letter_booking(world, THEIRS, "777", "another bank's trouble")

    (letter,) = world.store.letters(OURS)
    assert letter.queue is DeadLetterQueue.OUTBOUND
    assert letter.about == {"booking": "37001/501"}
    assert letter.reason == "svc may not impersonate ben@bank.example.test"
    assert letter.attempts == 2 and letter.at is not None
    # The record names the message as the dead-letter queue holds it: the id a replay takes.
    (held,) = world.queues.held(OURS)
    assert held.id == letter.id and held.reason == letter.reason and held.attempts == 2
    assert [letter.about for letter in world.store.letters(THEIRS)] == [{"booking": "37001/777"}]


def test_a_mailbox_message_is_about_its_mailbox(world: World) -> None:
    message = InboundMessage(OURS, "ben@bank.example.test", WakeReason.NOTIFICATION)
    world.inbound.dead_letter(encode_inbound(message), inbound_group(message), "refused", "m-1")
    (letter,) = world.store.letters(OURS)
    assert (letter.queue, dict(letter.about)) == (
        DeadLetterQueue.INBOUND,
        {"mailbox": "ben@bank.example.test"},
    )


def test_a_message_the_redrive_moved_is_found_in_the_queue_with_a_reason_that_says_so(world: World) -> None:
    message = OutboundMessage(OURS, JrniKey("37001", "601"), "modify")
    # As SQS's redrive moves it: the body alone, no reason, no record.
    world.sqs.send_message(
        QueueUrl=world.url("OutboundDeadLetterQueue"),
        MessageBody=encode_outbound(message),
        MessageGroupId=outbound_group(message),
        MessageDeduplicationId="redriven",
    )
    assert world.store.letters(OURS) == []
    (letter,) = world.queues.held(OURS)
    assert letter.about == {"booking": "37001/601"}
    assert letter.reason.startswith(REDRIVEN) and letter.id in letter.reason
    assert world.queues.held(THEIRS) == []
    # Reading left it where it was, visible to the next reader at once.
    assert [letter.id for letter in world.queues.held(OURS)] == [letter.id]


def test_replay_moves_only_the_integrations_messages_back_keeping_their_groups(world: World) -> None:
    dead_letter_booking(world, OURS, "501", "refused")
    dead_letter_booking(world, OURS, "502", "refused")
    dead_letter_booking(world, THEIRS, "777", "refused")

    moved = world.queues.replay(OURS, None).moved

    assert sorted(letter.about["booking"] for letter in moved) == ["37001/501", "37001/502"]
    back = world.bodies("OutboundQueue")
    assert sorted(m["body"]["booking_id"] for m in back) == ["501", "502"]
    assert {m["group"] for m in back} == {f"{OURS}/37001/501", f"{OURS}/37001/502"}
    # The other integration's message is still there, and visible.
    assert [letter.about["booking"] for letter in world.queues.held(THEIRS)] == ["37001/777"]
    assert world.queues.held(OURS) == []


def test_replay_of_named_ids_moves_those_only_and_never_another_integrations(world: World) -> None:
    dead_letter_booking(world, OURS, "501", "refused")
    dead_letter_booking(world, OURS, "502", "refused")
    dead_letter_booking(world, THEIRS, "777", "refused")
    ours = {letter.about["booking"]: letter.id for letter in world.store.letters(OURS)}
    (theirs,) = world.store.letters(THEIRS)

    moved = world.queues.replay(OURS, [ours["37001/502"], theirs.id]).moved

    assert [letter.id for letter in moved] == [ours["37001/502"]]
    assert [m["body"]["booking_id"] for m in world.bodies("OutboundQueue")] == ["502"]
    assert sorted(letter.about["booking"] for letter in world.queues.held(OURS)) == ["37001/501"]
    assert [letter.id for letter in world.queues.held(THEIRS)] == [theirs.id]


def test_a_replayed_message_is_delivered_again_though_it_was_sent_minutes_ago(world: World) -> None:
    # The first delivery's deduplication id is still in SQS's 5-minute window: a replay must not reuse it.
    message = OutboundMessage(OURS, JrniKey("37001", "501"), "create")
    world.outbound.send([message], delivery_id="delivery-1")
    (first,) = world.bodies("OutboundQueue")
    dead_letter_booking(world, OURS, "501", "refused")
    world.queues.replay(OURS, None)
    (again,) = world.bodies("OutboundQueue")
    assert again["body"] == first["body"] and again["group"] == first["group"]


def test_a_replay_that_cannot_send_back_keeps_the_message_and_reports_what_it_moved(world: World) -> None:
    urls = world.resources.queue_urls
    broken = SqsDeadLetterQueues(
        world.sqs,
        {
            DeadLetterQueue.INBOUND: QueuePair(urls["InboundQueue"], urls["InboundDeadLetterQueue"]),
            # A source queue that is not there (deleted by hand, say): every send back to it is refused.
            DeadLetterQueue.OUTBOUND: QueuePair(
                urls["OutboundQueue"].replace("outbound", "gone"), urls["OutboundDeadLetterQueue"]
            ),
        },
    )
    message = InboundMessage(OURS, "ben@bank.example.test", WakeReason.NOTIFICATION)
    world.inbound.dead_letter(encode_inbound(message), inbound_group(message), "refused", "m-1")
    dead_letter_booking(world, OURS, "501", "refused")

    outcome = broken.replay(OURS, None)

    assert [letter.about for letter in outcome.moved] == [{"mailbox": "ben@bank.example.test"}]
    assert outcome.stopped is not None and "the outbound queue" in outcome.stopped
    assert "refused send_message" in outcome.stopped
    # Not lost: still in its dead-letter queue, and visible again at once.
    assert [letter.about for letter in world.queues.held(OURS)] == [{"booking": "37001/501"}]


def test_records_are_forgotten_per_integration(world: World) -> None:
    dead_letter_booking(world, OURS, "501", "refused")
    dead_letter_booking(world, THEIRS, "777", "refused")
    (ours,) = world.store.letters(OURS)
    (theirs,) = world.store.letters(THEIRS)
    world.store.forget(OURS, [ours.id, theirs.id])  # another integration's id changes nothing of theirs
    assert world.store.letters(OURS) == []
    assert [letter.id for letter in world.store.letters(THEIRS)] == [theirs.id]


def test_a_record_expires_when_sqs_drops_its_message(world: World) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    world.store.record(DeadLetter(OURS, str(uuid.uuid4()), DeadLetterQueue.OUTBOUND, {}, "r", at, 1))
    item = boto3.client("dynamodb", region_name=REGION).scan(
        TableName=world.resources.tables["DeadLettersTable"]
    )["Items"][0]
    assert int(item["expires_at"]["N"]) == int(datetime(2026, 1, 15, tzinfo=UTC).timestamp())


# ---------------------------------------------------------------- the JRNI directory


def calendar(kind: ResourceKind, jrni_id: str, name: str = "") -> JrniCalendar:
    return JrniCalendar(kind, jrni_id, "37001", name or f"{kind.value} {jrni_id}", ews_email=None)


def test_the_directory_pages_in_kind_then_id_order_and_a_refresh_removes_who_left(world: World) -> None:
    table = world.resources.tables["MappingsTable"]
    directory: DirectoryStore = DynamoDirectoryStore(table, region=REGION)
    mappings = DynamoMappingStore(table, region=REGION)
    mappings.put(Mapping(OURS, PERSON, "2", "ben@bank.example.test"))
    assert directory.refreshed_at(OURS) is None
    at = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    listed = [calendar(RESOURCE, "11"), calendar(PERSON, "3"), calendar(PERSON, "1"), calendar(PERSON, "2")]
    directory.replace(OURS, listed, at)
    directory.replace(THEIRS, [calendar(PERSON, "9")], at)

    first, more = directory.page(OURS, after=None, limit=2)
    assert [(c.kind, c.jrni_id) for c in first] == [(PERSON, "1"), (PERSON, "2")] and more
    second, more = directory.page(OURS, after=(PERSON, "2"), limit=2)
    assert [(c.kind, c.jrni_id) for c in second] == [(PERSON, "3"), (RESOURCE, "11")] and not more
    assert directory.refreshed_at(OURS) == at

    later = datetime(2026, 3, 1, 6, 15, tzinfo=UTC)
    directory.replace(OURS, [calendar(PERSON, "1", "Alice Adams"), calendar(RESOURCE, "11")], later)
    page, more = directory.page(OURS, after=None, limit=10)
    assert [(c.jrni_id, c.name) for c in page] == [("1", "Alice Adams"), ("11", "resource 11")] and not more
    assert directory.refreshed_at(OURS) == later
    # A page after someone who has since left starts where they would have been.
    after_gone, _ = directory.page(OURS, after=(PERSON, "2"), limit=10)
    assert [c.jrni_id for c in after_gone] == ["11"]
    # Beside the mappings in the same partition, and touching none of them.
    assert mappings.mappings(OURS) == [Mapping(OURS, PERSON, "2", "ben@bank.example.test")]
    assert [c.jrni_id for c in directory.page(THEIRS, after=None, limit=10)[0]] == ["9"]


def test_a_reconcile_step_is_about_its_run_and_mailbox_and_the_schedules_tick_is_no_integrations(
    world: World,
) -> None:
    urls = world.resources.queue_urls
    queue = SqsReconcileQueue(
        world.sqs, urls["ReconcileQueue"], urls["ReconcileDeadLetterQueue"], world.store
    )
    step = ReconcileMessage(ReconcileStep.MAPPING, True, OURS, "run-7", "ben@bank.example.test")
    tick = ReconcileMessage(ReconcileStep.SCHEDULE, False)
    for message in (step, tick):
        queue.dead_letter(encode_reconcile(message), reconcile_group(message), "refused", uuid.uuid4().hex)

    (letter,) = world.store.letters(OURS)
    assert letter.queue is DeadLetterQueue.RECONCILE
    assert letter.about == {"step": "mapping", "run": "run-7", "mailbox": "ben@bank.example.test"}
    # The tick stays in the dead-letter queue, belonging to no integration's list.
    reconcile_dlq = world.sqs.get_queue_attributes(
        QueueUrl=urls["ReconcileDeadLetterQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert reconcile_dlq["ApproximateNumberOfMessages"] == "2"
