"""The EventBridge publisher on moto: events reach a customer's rule (here one targeting an SQS queue) with the kind
as their detail-type and the event as their detail, in batches of ten; refusals become the domain's errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from calsync.adapters.aws.events import EventBridgePublisher
from calsync.domain import PermanentError, RetryableError
from tests.aws import REGION

BUS = "customer-bus"


@dataclass
class Bus:
    events: Any  # boto3 EventBridge client
    sqs: Any
    queue_url: str

    def received(self) -> list[dict[str, Any]]:
        """Everything the rule delivered to the queue, drained."""
        found: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bus]:
    """A customer's bus with a rule for calsync's events that forwards them to an SQS queue."""
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "pass-for-tests",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        events, sqs = boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)
        events.create_event_bus(Name=BUS)
        queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name="calsync-to-queue", EventBusName=BUS, EventPattern=json.dumps({"source": ["calsync"]})
        )
        events.put_targets(Rule="calsync-to-queue", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}])
        yield Bus(events, sqs, queue_url)


def event(kind: str, booking_id: str = "100001", **more: object) -> dict[str, object]:
    return {"kind": kind, "integration_id": "int-1", "company_id": "11", "booking_id": booking_id, **more}


def test_events_reach_the_customers_rule_with_their_kind_and_detail(bus: Bus) -> None:
    updated = event("booking.updated", at="2026-07-06T09:00:00+00:00")
    confirmed = event("booking.confirmed", at="2026-07-06T09:00:00+00:00")

    EventBridgePublisher(bus.events, BUS).publish([updated, confirmed])

    got = bus.received()
    assert [(e["source"], e["detail-type"], e["detail"]) for e in got] == [
        ("calsync", "booking.updated", updated),
        ("calsync", "booking.confirmed", confirmed),
    ]


def test_more_than_ten_events_are_sent_in_batches_and_all_arrive(bus: Bus) -> None:
    many = [event("booking.updated", str(100001 + n)) for n in range(23)]

    EventBridgePublisher(bus.events, BUS).publish(many)

    got = bus.received()
    assert sorted(e["detail"]["booking_id"] for e in got) == [str(100001 + n) for n in range(23)]


def test_another_source_name_is_what_the_customers_rules_see(bus: Bus) -> None:
    EventBridgePublisher(bus.events, BUS, source="acme.calsync").publish([event("booking.updated")])

    assert bus.received() == []  # the rule above matches "calsync" only


def test_nothing_to_publish_makes_no_call(bus: Bus) -> None:
    with Stubber(bus.events):  # a stub with no expected calls fails on any call
        EventBridgePublisher(bus.events, BUS).publish([])


def test_an_unknown_bus_is_a_permanent_error_that_names_it(bus: Bus) -> None:
    with pytest.raises(PermanentError, match=r"'no-such-bus'.*ResourceNotFoundException"):
        EventBridgePublisher(bus.events, "no-such-bus").publish([event("booking.updated")])


def test_an_event_without_a_kind_is_refused_before_anything_is_sent(bus: Bus) -> None:
    with pytest.raises(PermanentError, match="no kind"):
        EventBridgePublisher(bus.events, BUS).publish([event("booking.updated"), {"booking_id": "1"}])

    assert bus.received() == []


@dataclass(frozen=True)
class Case:
    name: str
    answer: dict[str, Any] | None  # a PutEvents answer, or None for the error below
    error_code: str
    expected: type[Exception]
    words: str


CASES = [
    Case("throttled", None, "ThrottlingException", RetryableError, "ThrottlingException"),
    Case("EventBridge failing", None, "InternalException", RetryableError, "InternalException"),
    Case("not allowed to put events", None, "AccessDeniedException", PermanentError, "may calsync's role"),
    Case(
        "some entries throttled",
        {
            "FailedEntryCount": 1,
            "Entries": [
                {"EventId": "e1"},
                {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"},
            ],
        },
        "",
        RetryableError,
        "refused 1 of 2 event.*ThrottlingException",
    ),
    Case(
        "an entry EventBridge cannot accept",
        {
            "FailedEntryCount": 1,
            "Entries": [
                {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."},
                {"EventId": "e2"},
            ],
        },
        "",
        PermanentError,
        "MalformedDetail",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_refusals_are_translated(bus: Bus, case: Case) -> None:
    publisher = EventBridgePublisher(bus.events, BUS)
    with Stubber(bus.events) as stub:
        if case.answer is None:
            stub.add_client_error("put_events", service_error_code=case.error_code, http_status_code=400)
        else:
            stub.add_response("put_events", case.answer)

        with pytest.raises(case.expected, match=case.words):
            publisher.publish([event("booking.updated"), event("booking.confirmed")])
