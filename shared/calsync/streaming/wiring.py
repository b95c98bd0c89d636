"""Builds the streaming task from its environment: settings read once, concrete adapters behind the runner's ports."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from calsync.domain import PermanentError
from calsync.ports import IntegrationStore, MappingStore, SecretStore
from calsync.settings import ConfigurationError
from calsync.streaming.planner import MAX_GROUP_SIZE, MailboxRef, Shard
from calsync.streaming.ports import StreamingExchange
from calsync.streaming.runner import RunnerSettings, StreamingRunner


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamingSettings:
        env = os.environ if env is None else env
        required = ("INTEGRATIONS_TABLE", "MAPPINGS_TABLE", "STREAMING_STATE_TABLE", "INBOUND_QUEUE_URL")
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")
        shards = int(env.get("STREAMING_SHARDS") or 1)
        if shards > 1 and not env.get("STREAMING_SHARD_INDEX"):
            # Two tasks guessing the same share would leave the other shares unwatched: refuse to guess.
            raise ConfigurationError(f"STREAMING_SHARDS is {shards}: set STREAMING_SHARD_INDEX (0 to {shards - 1})")
        runner = RunnerSettings(
            task_id=env.get("STREAMING_TASK_ID") or f"{socket.gethostname()}:{os.getpid()}",
            shard=Shard(int(env.get("STREAMING_SHARD_INDEX") or 0), shards),
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
        )


class StoreMailboxDirectory:
    """``MailboxDirectory`` over the integrations and mappings stores."""

    def __init__(self, integrations: IntegrationStore, mappings: MappingStore) -> None:
        self._integrations = integrations
        self._mappings = mappings

    def mailboxes(self) -> list[MailboxRef]:
        return [MailboxRef(integration.id, mapping.mailbox)
                for integration in self._integrations.all()
                for mapping in self._mappings.mappings(integration.id)]  # fmt: skip


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
                exchange = EwsStreamingExchange(integration.exchange, secret, accounts=self._accounts,
                                                sessions=self._sessions)  # fmt: skip
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
    secrets = SecretsManagerStore(session.client("secretsmanager", endpoint_url=settings.aws_endpoint_url),
                                  prefix=settings.secrets_prefix)  # fmt: skip
    notifier = SqsInboundNotifier(session.client("sqs", endpoint_url=settings.aws_endpoint_url),
                                  settings.inbound_queue_url)  # fmt: skip
    # Each open stream holds a pooled session; subscribing needs one more per group beside it.
    sessions = 2 * settings.runner.connection_limit + 2
    return StreamingRunner(
        settings.runner,
        directory=StoreMailboxDirectory(integrations, mappings),
        exchange_for=EwsExchanges(integrations, secrets, sessions=sessions),
        notifier=notifier,
        state=DynamoStreamingStateStore(settings.streaming_state_table, **options),
    )
