"""Configuration read once, at cold start, into a frozen value; a missing variable is a clear error at once."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigurationError(RuntimeError):
    """The function was deployed without something it needs."""


# Where calsync runs when neither AWS_REGION nor AWS_DEFAULT_REGION says (Lambda and ECS always set AWS_REGION).
DEFAULT_REGION = "eu-west-2"


def require(env: Mapping[str, str], *names: str) -> None:
    """ConfigurationError naming every one of ``names`` the environment lacks (all at once, not one per deploy)."""
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")


def region_of(env: Mapping[str, str]) -> str:
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def secret_fingerprint(secret: Mapping[str, str]) -> str:
    """Tells one version of a secret from another (a rotated secret gets fresh clients), without keeping it."""
    return hashlib.sha256(json.dumps(dict(secret), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Settings:
    integrations_table: str
    mappings_table: str
    links_table: str
    cursors_table: str
    outbound_queue_url: str
    outbound_dlq_url: str | None
    secrets_prefix: str
    region: str
    # Inbound (Exchange → JRNI); empty where a function has no part in it.
    block_links_table: str
    streaming_state_table: str
    inbound_queue_url: str
    inbound_dlq_url: str | None
    event_bus_name: str
    # Reconciliation; empty where a function has no part in it.
    reconcile_queue_url: str
    reconcile_dlq_url: str | None
    runs_table: str
    # Only outside AWS (the local stack): where moto answers for every AWS service.
    aws_endpoint_url: str | None
    # The streaming task's heartbeat interval (the template gives the task and the functions the same value), and
    # its ECS service: the admin status shows a mailbox's watch as stale when no task has beaten its heart lately.
    streaming_heartbeat_seconds: float = 30.0
    streaming_service: str = ""
    # The admin function only: where POST /admin/integrations remembers its Idempotency-Keys.
    idempotency_table: str = ""
    # Where each dead letter is recorded for its integration (the SQS-triggered functions write, the admin reads).
    dead_letters_table: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        require(env, "INTEGRATIONS_TABLE", "MAPPINGS_TABLE", "LINKS_TABLE", "OUTBOUND_QUEUE_URL")
        return cls(
            integrations_table=env["INTEGRATIONS_TABLE"],
            mappings_table=env["MAPPINGS_TABLE"],
            links_table=env["LINKS_TABLE"],
            cursors_table=env.get("CURSORS_TABLE", ""),
            outbound_queue_url=env["OUTBOUND_QUEUE_URL"],
            outbound_dlq_url=env.get("OUTBOUND_DLQ_URL") or None,
            secrets_prefix=env.get("SECRETS_PREFIX", ""),
            region=region_of(env),
            block_links_table=env.get("BLOCK_LINKS_TABLE", ""),
            streaming_state_table=env.get("STREAMING_STATE_TABLE", ""),
            inbound_queue_url=env.get("INBOUND_QUEUE_URL", ""),
            inbound_dlq_url=env.get("INBOUND_DLQ_URL") or None,
            event_bus_name=env.get("EVENT_BUS_NAME", ""),
            reconcile_queue_url=env.get("RECONCILE_QUEUE_URL", ""),
            reconcile_dlq_url=env.get("RECONCILE_DLQ_URL") or None,
            runs_table=env.get("RUNS_TABLE", ""),
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            streaming_heartbeat_seconds=float(env.get("STREAMING_HEARTBEAT_SECONDS") or 30),
            streaming_service=env.get("STREAMING_SERVICE", ""),
            idempotency_table=env.get("IDEMPOTENCY_TABLE", ""),
            dead_letters_table=env.get("DEAD_LETTERS_TABLE", ""),
        )
