"""Several identical streaming tasks (one ECS service) each take their own share of the mailboxes through a lease."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from moto import mock_aws

from calsync.adapters.dynamo import DynamoStreamingStateStore
from calsync.bootstrap.streaming import StreamingSettings
from calsync.streaming.lease import LeasedState, NoShareFreeError, ShareLease
from tests.aws import REGION, create_in_moto

LEASE = timedelta(seconds=90)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStreamingStateStore]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        tables = create_in_moto().tables
        yield DynamoStreamingStateStore(tables["StreamingStateTable"], region=REGION)


def test_each_task_takes_its_own_share_and_a_surplus_task_finds_none(
    store: DynamoStreamingStateStore,
) -> None:
    clock = Clock()
    first = ShareLease(store, "task-a", 2, LEASE, clock)
    second = ShareLease(store, "task-b", 2, LEASE, clock)
    assert {first.claim(), second.claim()} == {0, 1}
    with pytest.raises(NoShareFreeError, match="no share of 2 came free"):
        ShareLease(store, "task-c", 2, LEASE, clock).claim(wait_seconds=0, attempts=2)


def test_a_task_that_stops_renewing_loses_its_share_and_stops(store: DynamoStreamingStateStore) -> None:
    clock = Clock()
    slow = ShareLease(store, "task-a", 1, LEASE, clock)
    assert slow.claim() == 0
    stopped: list[bool] = []
    slow.on_lost = lambda: stopped.append(True)

    clock.now += LEASE + timedelta(seconds=1)  # task-a hung past its lease: a replacement takes the share
    assert ShareLease(store, "task-b", 1, LEASE, clock).claim(wait_seconds=0, attempts=1) == 0

    LeasedState(store, slow).heartbeat("task-a", clock(), 10)  # its next heartbeat finds the share gone
    assert stopped == [True]


def test_a_released_share_is_taken_over_at_once(store: DynamoStreamingStateStore) -> None:
    clock = Clock()
    leaving = ShareLease(store, "task-a", 1, LEASE, clock)
    leaving.claim()
    leaving.release()
    assert ShareLease(store, "task-b", 1, LEASE, clock).claim(wait_seconds=0, attempts=1) == 0


def test_several_shards_without_an_index_claim_a_share() -> None:
    env = {
        "INTEGRATIONS_TABLE": "i",
        "MAPPINGS_TABLE": "m",
        "STREAMING_STATE_TABLE": "s",
        "INBOUND_QUEUE_URL": "q",
        "STREAMING_SHARDS": "3",
    }
    assert StreamingSettings.from_env(env).claim_share is True
    assert StreamingSettings.from_env({**env, "STREAMING_SHARD_INDEX": "2"}).claim_share is False
    assert StreamingSettings.from_env({**env, "STREAMING_SHARDS": "1"}).claim_share is False
