"""Builds the streaming task from its environment: settings read once, concrete adapters behind the runner's ports."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from calsync.domain import PermanentError
from calsync.ports import IntegrationStore, MappingStore, SecretStore
from calsync.settings import ConfigurationError
from calsync.streaming.planner import MAX_GROUP_SIZE, MailboxRef, Shard
from calsync.streaming.ports import StreamingExchange
from calsync.streaming.runner import RunnerSettings, StreamingRunner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamingSettings:
    integrations_table: str
    mappings_table: str
    streaming_state_table: str
    inbound_queue_url: str
    secrets_prefix: str
    region: str
    aws_endpoint_url: str | None  # only outside AWS (the local stack)
    runner: RunnerSettings
    claim_share: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamingSettings:
        env = os.environ if env is None else env
        required = ("INTEGRATIONS_TABLE", "MAPPINGS_TABLE", "STREAMING_STATE_TABLE", "INBOUND_QUEUE_URL")
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")
        shards = int(env.get("STREAMING_SHARDS") or 1)
        # Without an index, a task of several claims a free share at start (a lease in the state table): the tasks
        # of one ECS service are identical, so none can be told its share in advance.
        fixed_index = env.get("STREAMING_SHARD_INDEX")
        runner = RunnerSettings(
            task_id=env.get("STREAMING_TASK_ID") or f"{socket.gethostname()}:{os.getpid()}",
            shard=Shard(int(fixed_index or 0), shards),
            connection_limit=int(env.get("STREAMING_CONNECTION_LIMIT") or 10),
            group_size=int(env.get("STREAMING_GROUP_SIZE") or MAX_GROUP_SIZE),
            connection_minutes=int(env.get("STREAMING_CONNECTION_MINUTES") or 29),
            refresh_seconds=float(env.get("STREAMING_REFRESH_SECONDS") or 60),
            heartbeat_seconds=float(env.get("STREAMING_HEARTBEAT_SECONDS") or 30),
            timed_interval_seconds=float(env.get("STREAMING_TIMED_SYNC_SECONDS") or 300),
            coalesce_seconds=float(env.get("STREAMING_COALESCE_SECONDS") or 1),
        )
        return cls(
            integrations_table=env["INTEGRATIONS_TABLE"],
            mappings_table=env["MAPPINGS_TABLE"],
            streaming_state_table=env["STREAMING_STATE_TABLE"],
            inbound_queue_url=env["INBOUND_QUEUE_URL"],
            secrets_prefix=env.get("SECRETS_PREFIX", ""),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "eu-west-2",
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            runner=runner,
            claim_share=shards > 1 and not fixed_index,
        )


class StoreMailboxDirectory:
    """``MailboxDirectory`` over the integrations and mappings stores."""

    def __init__(self, integrations: IntegrationStore, mappings: MappingStore) -> None:
        self._integrations = integrations
        self._mappings = mappings

    def mailboxes(self) -> list[MailboxRef]:
        return [
            MailboxRef(integration.id, mapping.mailbox)
            for integration in self._integrations.all()
            for mapping in self._mappings.mappings(integration.id)
        ]


class EwsExchanges:
    """``exchange_for``: one EwsStreamingExchange per integration and secret version (a rotated secret gets a new
    one at the next group started)."""

    def __init__(self, integrations: IntegrationStore, secrets: SecretStore, *, sessions: int) -> None:
        from calsync.adapters.ews.connection import AccountCache

        self._integrations = integrations
        self._secrets = secrets
        self._sessions = sessions
        self._accounts = AccountCache(max_accounts=100_000)  # one Account per mailbox: they are small
        self._built: dict[tuple[str, str], StreamingExchange] = {}
        self._lock = threading.Lock()

    def __call__(self, integration_id: str) -> StreamingExchange:
        from calsync.streaming.ews import EwsStreamingExchange

        integration = self._integrations.get(integration_id)
        if integration is None:
            raise PermanentError(f"integration {integration_id} does not exist")
        secret = self._secrets.get(integration.exchange.secret_name)
        key = (integration_id, hashlib.sha256(json.dumps(secret, sort_keys=True).encode()).hexdigest())
        with self._lock:
            exchange = self._built.get(key)
            if exchange is None:
                exchange = EwsStreamingExchange(
                    integration.exchange, secret, accounts=self._accounts, sessions=self._sessions
                )
                self._built[key] = exchange
            return exchange


def build_runner(settings: StreamingSettings, boto3_session: Any = None) -> StreamingRunner:
    """The runner wired to DynamoDB, Secrets Manager, SQS and Exchange."""
    import boto3

    from calsync.adapters.dynamo import DynamoIntegrationStore, DynamoMappingStore, DynamoStreamingStateStore
    from calsync.adapters.secrets import SecretsManagerStore
    from calsync.streaming.sqs import SqsInboundNotifier

    session = boto3_session or boto3.Session(region_name=settings.region)
    options = {"region": settings.region, "endpoint_url": settings.aws_endpoint_url}
    integrations = DynamoIntegrationStore(settings.integrations_table, **options)
    mappings = DynamoMappingStore(settings.mappings_table, **options)
    secrets = SecretsManagerStore(
        session.client("secretsmanager", endpoint_url=settings.aws_endpoint_url),
        prefix=settings.secrets_prefix,
    )
    notifier = SqsInboundNotifier(
        session.client("sqs", endpoint_url=settings.aws_endpoint_url), settings.inbound_queue_url
    )
    # Each open stream holds a pooled session; subscribing needs one more per group beside it.
    sessions = 2 * settings.runner.connection_limit + 2
    state: Any = DynamoStreamingStateStore(settings.streaming_state_table, **options)
    runner_settings = settings.runner
    lease: ShareLease | None = None
    if settings.claim_share:
        lease = ShareLease(
            state,
            runner_settings.task_id,
            runner_settings.shard.count,
            timedelta(seconds=3 * runner_settings.heartbeat_seconds),
        )
        runner_settings = replace(runner_settings, shard=Shard(lease.claim(), runner_settings.shard.count))
        state = LeasedState(state, lease)
    runner = StreamingRunner(
        runner_settings,
        directory=StoreMailboxDirectory(integrations, mappings),
        exchange_for=EwsExchanges(integrations, secrets, sessions=sessions),
        notifier=notifier,
        state=state,
    )
    if lease is not None:
        lease.on_lost = runner.stop
        runner.share_lease = lease  # type: ignore[attr-defined]  # released by the entry point after the run
    return runner


def release_share(runner: StreamingRunner) -> None:
    """Give up the share a task claimed, so the task replacing it takes it over at once (not after the lease)."""
    lease = getattr(runner, "share_lease", None)
    if lease is not None:
        lease.release()


class ShareLease:
    """A task's hold on one share of the mailboxes: claimed at start, renewed with each heartbeat, given up at stop."""

    def __init__(
        self,
        store: Any,
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
        raise ConfigurationError(
            f"no share of {self.shards} came free: more tasks run than STREAMING_SHARDS allows"
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

    def __init__(self, store: Any, lease: ShareLease) -> None:
        self._store, self._lease = store, lease

    def heartbeat(self, task_id: str, at: datetime, mailboxes: int) -> None:
        self._store.heartbeat(task_id, at, mailboxes)
        self._lease.renew()

    def record_mailbox(self, integration_id: str, mailbox: str, mode: str, detail: str, at: datetime) -> None:
        self._store.record_mailbox(integration_id, mailbox, mode, detail, at)
