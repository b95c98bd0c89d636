"""The one place that builds concrete adapters from settings: once per cold start, reused while the process lives.

Each function's entry point asks for the services it needs (``webhook_services``, ``outbound_services``,
``admin_services``); imports of heavy adapters happen inside, so the webhook function never loads exchangelib.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from datetime import UTC, datetime
from typing import Any

from calsync.domain import Integration, PermanentError
from calsync.ports import BookingSource, CalendarProvider, SecretStore
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
_jrni_sources: dict[tuple[str, str], BookingSource] = {}


def bookings_for(integration: Integration) -> BookingSource:
    from calsync.adapters.jrni.bookings import JrniBookingSource
    from calsync.adapters.jrni.client import JrniClient

    secret = secrets().get(integration.jrni.secret_name)
    key = (integration.id, _fingerprint(secret))
    with _lock:
        source = _jrni_sources.get(key)
        if source is None:
            source = JrniBookingSource(JrniClient(integration.jrni, secret))
            _jrni_sources[key] = source
    return source


def calendar_for(integration: Integration) -> CalendarProvider:
    from calsync.adapters.ews.provider import EwsCalendar

    return EwsCalendar(integration.exchange, secrets().get(integration.exchange.secret_name))


def _no_calendar(integration: Integration) -> CalendarProvider:
    raise PermanentError("this function does not talk to Exchange")


def _services(*, calendars: bool) -> Services:
    integrations, mappings, links = _stores()
    return Services(
        integrations=integrations,
        mappings=mappings,
        links=links,
        secrets=secrets(),
        outbound_queue=outbound_queue(),
        calendar_for=calendar_for if calendars else _no_calendar,
        bookings_for=bookings_for,
        clock=lambda: datetime.now(UTC),
    )


@functools.cache
def webhook_services() -> Services:
    """For the JRNI webhook function: stores, secrets and the queue; no Exchange."""
    return _services(calendars=False)


@functools.cache
def outbound_services() -> Services:
    return _services(calendars=True)


@functools.cache
def admin_services() -> Services:
    return _services(calendars=False)


def reset() -> None:
    """Forget everything built (tests and the local stack change the environment between runs)."""
    for cached in (settings, secrets, outbound_queue, _stores, webhook_services, outbound_services, admin_services):
        cached.cache_clear()
    _jrni_sources.clear()
