"""Builds the streaming task from its environment: settings read once, concrete adapters behind the runner's ports."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from calsync.bootstrap.settings import region_of, require, secret_fingerprint
from calsync.domain import ExchangeApi, PermanentError
from calsync.domain.inbound import WatchMode
from calsync.ports import IntegrationStore, MappingStore, Metric, SecretStore, Telemetry
from calsync.streaming.lease import LeasedState, ShareLease
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
        require(env, "INTEGRATIONS_TABLE", "MAPPINGS_TABLE", "STREAMING_STATE_TABLE", "INBOUND_QUEUE_URL")
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
            region=region_of(env),
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
        from calsync.adapters.ews.streaming import EwsStreamingExchange

        integration = self._integrations.get(integration_id)
        if integration is None:
            raise PermanentError(f"integration {integration_id} does not exist")
        if integration.exchange.api is not ExchangeApi.EWS:
            raise PermanentError(
                f"integration {integration_id} speaks {integration.exchange.api.value}: not streamed over EWS"
            )
        secret = self._secrets.get(integration.exchange.secret_name)
        key = (integration_id, secret_fingerprint(secret))
        with self._lock:
            exchange = self._built.get(key)
            if exchange is None:
                exchange = EwsStreamingExchange(
                    integration.exchange, secret, accounts=self._accounts, sessions=self._sessions
                )
                self._built[key] = exchange
            return exchange


def build_task(settings: StreamingSettings, boto3_session: Any = None) -> StreamingTask:
    """The runner wired to DynamoDB, Secrets Manager, SQS and Exchange, with its share lease when it needs one."""
    import boto3

    from calsync.adapters.aws.queues import SqsInboundQueue
    from calsync.adapters.aws.secrets import SecretsManagerStore
    from calsync.adapters.dynamo import DynamoIntegrationStore, DynamoMappingStore, DynamoStreamingStateStore

    session = boto3_session or boto3.Session(region_name=settings.region)
    options = {"region": settings.region, "endpoint_url": settings.aws_endpoint_url}
    integrations = DynamoIntegrationStore(settings.integrations_table, **options)
    mappings = DynamoMappingStore(settings.mappings_table, **options)
    secrets = SecretsManagerStore(
        session.client("secretsmanager", endpoint_url=settings.aws_endpoint_url),
        prefix=settings.secrets_prefix,
    )
    notifier = SqsInboundQueue(
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
        state=HeartbeatsCounted(state, streaming_telemetry()),
    )
    if lease is not None:
        lease.on_lost = runner.stop
    return StreamingTask(runner, lease)


def streaming_telemetry() -> Telemetry:
    """The task's metrics, each written to its log (EMF) at once: a long-running process has no invocation to end."""
    from calsync.adapters.aws.metrics import EmfTelemetry, FunctionMetrics

    return EmfTelemetry(FunctionMetrics(service="streaming"))


class HeartbeatsCounted:
    """The streaming state store, with a ``StreamingHeartbeat`` metric for each heartbeat recorded: the alarm on the
    task going quiet watches it."""

    def __init__(self, state: Any, telemetry: Telemetry) -> None:
        self._state, self._telemetry = state, telemetry

    def heartbeat(self, task_id: str, at: datetime, mailboxes: int) -> None:
        self._state.heartbeat(task_id, at, mailboxes)
        self._telemetry.count(Metric.STREAMING_HEARTBEAT)

    def record_mailbox(
        self, integration_id: str, mailbox: str, mode: WatchMode, detail: str, at: datetime
    ) -> None:
        self._state.record_mailbox(integration_id, mailbox, mode, detail, at)


@dataclass
class StreamingTask:
    """The runner, and the share of the mailboxes it holds when several tasks split them (given up when it ends, so
    the task replacing it takes the share over at once, not after the lease runs out)."""

    runner: StreamingRunner
    lease: ShareLease | None = None

    def run(self) -> None:
        try:
            self.runner.run()
        finally:
            if self.lease is not None:
                self.lease.release()

    def stop(self) -> None:
        self.runner.stop()
