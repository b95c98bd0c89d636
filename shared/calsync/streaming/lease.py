"""A task's share of the mailboxes when several streaming tasks split them (``STREAMING_SHARDS`` without a fixed
index): claimed at start as a lease in the state table, renewed with each heartbeat, given up when the task ends.
The tasks of one ECS service are identical, so none can be told its share in advance."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from calsync.domain import PermanentError
from calsync.domain.inbound import WatchMode
from calsync.streaming.ports import StreamingStateStore

logger = logging.getLogger(__name__)


class NoShareFreeError(PermanentError):
    """Every share is held by a live task: more tasks run than there are shares."""


class ShareStore(Protocol):
    def claim_shard(self, task_id: str, shards: int, at: datetime, lease: timedelta) -> int | None:
        """A free (or expired) share, now held by ``task_id`` until ``at + lease``; None when all are held."""
        ...

    def renew_shard(self, task_id: str, shards: int, index: int, at: datetime, lease: timedelta) -> bool:
        """Hold the share longer; False when another task took it."""
        ...

    def release_shard(self, task_id: str, shards: int, index: int) -> None:
        """Give the share up."""
        ...


class LeasedStore(StreamingStateStore, ShareStore, Protocol):
    """The streaming state table: heartbeats, mailbox states and share leases."""


class ShareLease:
    """A task's hold on one share of the mailboxes: claimed at start, renewed with each heartbeat, given up at stop."""

    def __init__(
        self,
        store: ShareStore,
        task_id: str,
        shards: int,
        length: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.task_id, self.shards, self.length, self.clock = store, task_id, shards, length, clock
        self.index: int | None = None
        self.on_lost: Callable[[], None] = lambda: None

    def claim(self, wait_seconds: float = 5.0, attempts: int = 120) -> int:
        """A free (or expired) share; waits while every share is held by a live task (e.g. during a deployment)."""
        for _ in range(attempts):
            index = self.store.claim_shard(self.task_id, self.shards, self.clock(), self.length)
            if index is not None:
                self.index = index
                logger.info("holding share %s of %s", index, self.shards)
                return int(index)
            time.sleep(wait_seconds)
        raise NoShareFreeError(
            f"no share of {self.shards} came free: more tasks run than STREAMING_SHARDS allows; lower the ECS "
            f"service's desired count or raise STREAMING_SHARDS"
        )

    def renew(self) -> None:
        if self.index is not None and not self.store.renew_shard(
            self.task_id, self.shards, self.index, self.clock(), self.length
        ):
            # Another task took our share (we were too slow to renew): stop, and let ECS start a fresh task.
            logger.error("lost share %s of %s: stopping", self.index, self.shards)
            self.index = None
            self.on_lost()

    def release(self) -> None:
        if self.index is not None:
            self.store.release_shard(self.task_id, self.shards, self.index)
            self.index = None


class LeasedState:
    """The streaming state store, with the share lease renewed on every heartbeat and released with the last one."""

    def __init__(self, store: LeasedStore, lease: ShareLease) -> None:
        self._store, self._lease = store, lease

    def heartbeat(self, task_id: str, at: datetime, mailboxes: int) -> None:
        self._store.heartbeat(task_id, at, mailboxes)
        self._lease.renew()

    def record_mailbox(
        self, integration_id: str, mailbox: str, mode: WatchMode, detail: str, at: datetime
    ) -> None:
        self._store.record_mailbox(integration_id, mailbox, mode, detail, at)
