"""The one place that builds concrete adapters from settings: once per cold start, reused while the process lives.

Each function's entry point asks for the services it needs (``webhook_services``, ``outbound_services``,
``admin_services``); imports of heavy adapters happen inside, so the webhook function never loads exchangelib.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from calsync.domain import Integration, PermanentError
from calsync.ports import (
    BookingSource,
    BookingWriter,
    CalendarFeed,
    CalendarProvider,
    EventPublisher,
    SecretStore,
    StreamingStates,
)
from calsync.service import Services
from calsync.settings import Settings

_lock = threading.Lock()


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


def _boto3_client(service: str) -> Any:
    import boto3

    current = settings()
    return boto3.client(service, region_name=current.region, endpoint_url=current.aws_endpoint_url)


@functools.cache
def secrets() -> SecretStore:
    from calsync.adapters.secrets import SecretsManagerStore

    return SecretsManagerStore(_boto3_client("secretsmanager"), prefix=settings().secrets_prefix)


@functools.cache
def outbound_queue() -> Any:
    """The outbound queue with the SQS-only operations the outbound handler needs (postpone, dead-letter)."""
    from calsync.adapters.sqs import SqsOutboundQueue

    current = settings()
    return SqsOutboundQueue(_boto3_client("sqs"), current.outbound_queue_url, current.outbound_dlq_url)


@functools.cache
def _stores() -> tuple[Any, Any, Any]:
    from calsync.adapters.dynamo import DynamoIntegrationStore, DynamoLinkStore, DynamoMappingStore

    current = settings()
    options = {"region": current.region, "endpoint_url": current.aws_endpoint_url}
    return (
        DynamoIntegrationStore(current.integrations_table, **options),
        DynamoMappingStore(current.mappings_table, **options),
        DynamoLinkStore(current.links_table, **options),
    )


def _fingerprint(secret: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(secret, sort_keys=True).encode()).hexdigest()


# Per integration and secret version: a warm function reuses its JRNI login and its Exchange connections, and a
# rotated secret (new values) gets fresh ones.
_jrni_clients: dict[tuple[str, str], Any] = {}


def _jrni_client(integration: Integration) -> Any:
    from calsync.adapters.jrni.client import JrniClient

    secret = secrets().get(integration.jrni.secret_name)
    key = (integration.id, _fingerprint(secret))
    with _lock:
        client = _jrni_clients.get(key)
        if client is None:
            client = JrniClient(integration.jrni, secret)
            _jrni_clients[key] = client
    return client


def bookings_for(integration: Integration) -> BookingSource:
    from calsync.adapters.jrni.bookings import JrniBookingSource

    return JrniBookingSource(_jrni_client(integration))


def writer_for(integration: Integration) -> BookingWriter:
    from calsync.adapters.jrni.writer import JrniBookingWriter

    return JrniBookingWriter(_jrni_client(integration))


def feed_for(integration: Integration) -> CalendarFeed:
    from calsync.adapters.ews.feed import EwsFeed

    return EwsFeed(integration.exchange, secrets().get(integration.exchange.secret_name))


@functools.cache
def inbound_queue() -> Any:
    """The inbound queue's SQS-only operations the inbound handler needs (postpone, dead-letter)."""
    from calsync.adapters.sqs import SqsOutboundQueue

    current = settings()
    return SqsOutboundQueue(_boto3_client("sqs"), current.inbound_queue_url, current.inbound_dlq_url)


@functools.cache
def _inbound_stores() -> tuple[Any, Any]:
    from calsync.adapters.dynamo import DynamoBlockLinkStore, DynamoCursorStore

    current = settings()
    options = {"region": current.region, "endpoint_url": current.aws_endpoint_url}
    blocks = DynamoBlockLinkStore(current.block_links_table, **options) if current.block_links_table else None
    cursors = DynamoCursorStore(current.cursors_table, **options) if current.cursors_table else None
    return blocks, cursors


@functools.cache
def _streaming_states() -> StreamingStates | None:
    from calsync.adapters.dynamo import DynamoStreamingStateStore

    current = settings()
    if not current.streaming_state_table:
        return None
    return DynamoStreamingStateStore(
        current.streaming_state_table, region=current.region, endpoint_url=current.aws_endpoint_url
    )


@functools.cache
def _events() -> EventPublisher | None:
    from calsync.adapters.events import EventBridgePublisher

    name = settings().event_bus_name
    return EventBridgePublisher(_boto3_client("events"), name) if name else None


def calendar_for(integration: Integration) -> CalendarProvider:
    from calsync.adapters.ews.provider import EwsCalendar

    return EwsCalendar(integration.exchange, secrets().get(integration.exchange.secret_name))


def _no_calendar(integration: Integration) -> CalendarProvider:
    raise PermanentError("this function does not talk to Exchange")


def _services(*, calendars: bool, inbound: bool = False, integrations_cached_for: float = 0.0) -> Services:
    integrations, mappings, links = _stores()
    if integrations_cached_for:
        from calsync.cache import CachedIntegrations

        integrations = CachedIntegrations(integrations, integrations_cached_for)
    blocks, cursors = _inbound_stores()
    return Services(
        integrations=integrations,
        mappings=mappings,
        links=links,
        secrets=secrets(),
        outbound_queue=outbound_queue(),
        calendar_for=calendar_for if calendars else _no_calendar,
        bookings_for=bookings_for,
        clock=lambda: datetime.now(UTC),
        feed_for=feed_for if inbound else None,
        writer_for=writer_for if inbound else None,
        block_links=blocks,  # outbound reads it too: it must recognise the blocks inbound made
        cursors=cursors if inbound else None,
        events=_events() if inbound else None,
        streaming=_streaming_states(),
        streaming_heartbeat=timedelta(seconds=settings().streaming_heartbeat_seconds),
        streaming_service=settings().streaming_service,
    )


@functools.cache
def webhook_services() -> Services:
    """For the JRNI webhook function: stores, secrets and the queue; no Exchange. Integrations are read through a
    short cache (``calsync.cache``), as the secrets are."""
    from calsync.cache import WEBHOOK_INTEGRATION_SECONDS

    return _services(calendars=False, integrations_cached_for=WEBHOOK_INTEGRATION_SECONDS)


@functools.cache
def outbound_services() -> Services:
    return _services(calendars=True)


@functools.cache
def admin_services() -> Services:
    return _services(calendars=False)


@functools.cache
def inbound_services() -> Services:
    """For the inbound function: Exchange's change feed and calendars, JRNI writes, block links, cursors, events."""
    return _services(calendars=True, inbound=True)


def reset() -> None:
    """Forget everything built (tests and the local stack change the environment between runs)."""
    for cached in (
        settings,
        secrets,
        outbound_queue,
        inbound_queue,
        _stores,
        _inbound_stores,
        _events,
        _streaming_states,
        webhook_services,
        outbound_services,
        admin_services,
        inbound_services,
    ):
        cached.cache_clear()
    _jrni_clients.clear()
