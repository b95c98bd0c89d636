"""The inbound queue adapter on moto: what the inbound function receives from the streaming task."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from calsync.adapters.aws.queues import SqsInboundQueue
from calsync.adapters.aws.queues import decode_inbound as decode
from calsync.adapters.aws.queues import encode_inbound as encode
from calsync.domain import PermanentError
from calsync.domain.messages import MAX_NOTIFIED_ITEMS, InboundMessage, NotifiedItem, WakeReason

REGION = "eu-west-2"


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("sqs", region_name=REGION)
        # No content-based deduplication: each message must bring its own id.
        url = client.create_queue(QueueName="inbound.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        yield client, url


def receive_all(client: Any, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while answer := client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
        "Messages"
    ):
        for message in answer:
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        found.extend(answer)
    return found


def test_one_message_per_wake_grouped_by_mailbox_and_never_deduplicated_away(sqs: tuple[Any, str]) -> None:
    client, url = sqs
    notifier = SqsInboundQueue(client, url)
    wakes = [InboundMessage("int-1", f"m{n:02d}@bank.test", WakeReason.NOTIFICATION) for n in range(23)]
    notifier.send(wakes)
    # The same mailbox woken again later (a new change) is a new message, not a duplicate of the first.
    notifier.send([InboundMessage("int-1", "m00@bank.test", WakeReason.TIMER)])

    messages = receive_all(client, url)
    assert len(messages) == 24
    first = messages[0]
    assert json.loads(first["Body"]) == {
        "integration": "int-1",
        "mailbox": "m00@bank.test",
        "reason": "notification",
    }
    assert first["Attributes"]["MessageGroupId"] == "int-1/m00@bank.test"
    # What the inbound function reads back.
    assert sorted((w.mailbox, w.reason) for w in (decode(m["Body"]) for m in messages))[:2] == [
        ("m00@bank.test", WakeReason.NOTIFICATION),
        ("m00@bank.test", WakeReason.TIMER),
    ]


def test_a_body_that_is_not_ours_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError):
        decode('{"mailbox": "m@bank.test"}')


def test_a_wake_naming_its_notified_items_carries_them_and_one_without_names_none() -> None:
    items = (NotifiedItem("AAMk1=", "DwAA1"), NotifiedItem("AAMk2=", "DwAA2"))
    named = InboundMessage("int-1", "m@bank.test", WakeReason.NOTIFICATION, items)
    assert json.loads(encode(named))["items"] == [["AAMk1=", "DwAA1"], ["AAMk2=", "DwAA2"]]
    assert decode(encode(named)) == named
    plain = InboundMessage("int-1", "m@bank.test", WakeReason.START)
    assert "items" not in json.loads(encode(plain))
    assert decode(encode(plain)).notified is None


def test_a_body_from_before_items_existed_or_naming_too_many_means_read_the_mailbox() -> None:
    assert (
        decode('{"integration": "int-1", "mailbox": "m@bank.test", "reason": "notification"}').notified
        is None
    )
    too_many = [[f"id{n}", "ck"] for n in range(MAX_NOTIFIED_ITEMS + 1)]
    body = json.dumps(
        {"integration": "int-1", "mailbox": "m@bank.test", "reason": "notification", "items": too_many}
    )
    assert decode(body).notified is None
    assert decode(json.dumps({"integration": "i", "mailbox": "m", "items": []})).notified is None
