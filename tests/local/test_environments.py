"""The functions' Lambda environments on the local stack: each invocation runs alone in a copy of the function's
module, as in AWS, so the module-level FIFO batch processor of one invocation is never another's, and each copy's
Powertools Logger keeps keys of its own."""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.events import LambdaContext
from local.lambdas import FunctionEnvironments, forget_log_routing
from local.poller import SqsPoller

FUNCTION = Path(__file__).with_name("fifo_function.py")
GROUPS, PER_GROUP = 40, 5  # every other group's last message fails (and is postponed)


class Ledger:
    """What the copies of the function did, and whether two records of one message group ever ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: Counter[str] = Counter()
        self.overlaps: list[str] = []
        self.successes: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.threads: set[str] = set()

    def started(self, message_id: str, group: str) -> None:
        with self.lock:
            self.threads.add(threading.current_thread().name)
            if self.running[group]:
                self.overlaps.append(group)
            self.running[group] += 1

    def ended(self, group: str) -> None:
        with self.lock:
            self.running[group] -= 1

    def succeeded(self, message_id: str) -> None:
        with self.lock:
            self.successes[message_id] += 1

    def failed(self, message_id: str) -> None:
        with self.lock:
            self.failures[message_id] += 1


@pytest.fixture
def fifo() -> Iterator[tuple[Any, str, str]]:
    with mock_aws():
        sqs = boto3.Session(
            region_name="eu-west-2", aws_access_key_id="testing", aws_secret_access_key="testing"
        ).client("sqs")
        url = sqs.create_queue(
            QueueName="calsync-test.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "60"}
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        yield sqs, url, arn
    forget_log_routing()


def _send_all(sqs: Any, url: str) -> tuple[set[str], set[str]]:
    """GROUPS groups of PER_GROUP messages, sent interleaved; the ids of those that succeed and of those that fail."""
    succeeding, failing = set(), set()
    entries = [(g, n) for n in range(PER_GROUP) for g in range(GROUPS)]
    for start in range(0, len(entries), 10):
        batch = [
            {
                "Id": str(i),
                "MessageGroupId": f"group-{g}",
                "MessageDeduplicationId": f"{g}-{n}",
                "MessageBody": json.dumps(
                    {"group": f"group-{g}", "n": n, "fail": g % 2 == 0 and n == PER_GROUP - 1}
                ),
            }
            for i, (g, n) in enumerate(entries[start : start + 10])
        ]
        answer = sqs.send_message_batch(QueueUrl=url, Entries=batch)
        for sent in answer["Successful"]:
            body = json.loads(batch[int(sent["Id"])]["MessageBody"])
            (failing if body["fail"] else succeeding).add(sent["MessageId"])
    return succeeding, failing


def test_concurrent_pollers_report_every_failing_record_and_never_run_one_group_twice_at_once(
    fifo: tuple[Any, str, str],
) -> None:
    sqs, url, arn = fifo
    ledger = Ledger()
    environments = FunctionEnvironments("fifo", io.StringIO(), source=FUNCTION)

    def wire(module: Any) -> None:
        module.ledger, module.queue = ledger, (sqs, url)

    environments.customise(wire)
    succeeding, failing = _send_all(sqs, url)
    poller = SqsPoller(
        sqs,
        url,
        arn,
        environments.invoke,
        lambda: LambdaContext("calsync-fifo"),
        batch_size=10,
        workers=2,
        name="fifo",
    ).start()
    try:
        deadline = time.monotonic() + 120
        while not (set(ledger.failures) >= failing and poller.deleted >= len(succeeding)):
            assert time.monotonic() < deadline, (
                f"{len(ledger.successes)} of {len(succeeding)} succeeded, "
                f"{len(ledger.failures)} of {len(failing)} failed"
            )
            time.sleep(0.05)
    finally:
        poller.stop()

    assert len(ledger.threads) == 2  # both workers took batches
    assert ledger.overlaps == [], "two records of one message group ran at the same time"
    assert all(count == 1 for count in ledger.successes.values()), "a handled record was handled again"
    assert set(ledger.successes) == succeeding
    assert poller.deleted == len(succeeding), "only the handled records are deleted"
    # Every failing record is back on its queue once its postponement ends: reported, not deleted.
    back: set[str] = set()
    deadline = time.monotonic() + 30
    while back != failing and time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=120
        )
        back |= {m["MessageId"] for m in answer.get("Messages", [])}
    assert back == failing, (
        f"{len(failing - back)} of {len(failing)} failing records were deleted unprocessed"
    )
    assert len(environments.modules) == 2  # one environment per worker: each invocation alone in its copy


def test_each_environment_logs_with_its_own_function_s_keys() -> None:
    streams = {name: io.StringIO() for name in ("calsync-outbound", "calsync-inbound")}
    functions = {
        name: FunctionEnvironments("fifo", stream, source=FUNCTION) for name, stream in streams.items()
    }
    ledger = Ledger()
    for environments in functions.values():
        environments.customise(lambda module: setattr(module, "ledger", ledger))

    def invoke(name: str) -> None:
        for n in range(20):
            record = {
                "messageId": f"{name}-{n}",
                "receiptHandle": "r",
                "body": json.dumps({"group": name, "n": n}),
                "attributes": {"MessageGroupId": name},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-2:1:q.fifo",
                "awsRegion": "eu-west-2",
            }
            functions[name].invoke({"Records": [record]}, LambdaContext(name))

    try:
        threads = [threading.Thread(target=invoke, args=(name,)) for name in functions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        forget_log_routing()
    for name, stream in streams.items():
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert len([line for line in lines if line["message"] == "message handled"]) == 20, name
        assert {line["function_name"] for line in lines} == {name}
