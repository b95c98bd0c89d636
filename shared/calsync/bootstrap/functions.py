"""The one place that builds concrete adapters from settings: once per cold start, reused while the process lives.

Each function's entry point asks for the dependencies of its use case (``webhook_deps``, ``outbound_deps``,
``inbound_deps``, ``reconcile_deps``, ``admin_deps``); imports of heavy adapters happen inside, so the webhook function never loads
exchangelib. The calendar provider is picked per integration here (``calendar_for``, ``feed_for``, and the connection
test's ``checks_for``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from calsync.bootstrap.settings import ConfigurationError, Settings, secret_fingerprint
from calsync.domain import ExchangeApi, Integration, PermanentError
from calsync.ports import (
    AvailabilityReader,
    BlockLinkStore,
    BookingSource,
    BookingWriter,
    CalendarFeed,
    CalendarProvider,
    ConnectionChecks,
    CursorStore,
    DeadLetterQueues,
    DeadLetterStore,
    DirectoryStore,
    EventPublisher,
    IntegrationState,
    RunStore,
    ScheduleWriter,
    SecretStore,
    StreamingStates,
    Telemetry,
)
from calsync.usecases.accept_webhook import WebhookDeps
from calsync.usecases.admin import AdminDeps
from calsync.usecases.reconcile import ReconcileDeps
from calsync.usecases.sync_booking import BookingDeps
from calsync.usecases.sync_mailbox import MailboxDeps

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

_lock = threading.Lock()
_T = TypeVar("_T")


class _once(Generic[_T]):
    """``functools.cache`` for a builder without arguments, and built once when threads ask at the same moment
    (the local stack runs many invocations in one process; each would otherwise build its own clients)."""

    def __init__(self, build: Callable[[], _T]) -> None:
        functools.update_wrapper(self, build)
        self._build = build
        self._building = threading.Lock()
        self._value: tuple[_T] | None = None

    def __call__(self) -> _T:
        with self._building:
            if self._value is None:
                self._value = (self._build(),)
            return self._value[0]

    def cache_clear(self) -> None:
        with self._building:
            self._value = None


@_once
def settings() -> Settings:
    return Settings.from_env()


def _boto3_client(service: str) -> Any:
    import boto3

    current = settings()
    return boto3.client(service, region_name=current.region, endpoint_url=current.aws_endpoint_url)


@_once
def secrets() -> SecretStore:
    from calsync.adapters.aws.secrets import SecretsManagerStore

    return SecretsManagerStore(_boto3_client("secretsmanager"), prefix=settings().secrets_prefix)


@_once
def outbound_queue() -> Any:
    """The outbound queue with the SQS-only operations the outbound handler needs (postpone, dead-letter)."""
    from calsync.adapters.aws.queues import SqsOutboundQueue

    current = settings()
    return SqsOutboundQueue(
        _boto3_client("sqs"), current.outbound_queue_url, current.outbound_dlq_url, _dead_letters()
    )


@_once
def _dead_letters() -> DeadLetterStore | None:
    """Where dead letters are recorded; None where the environment names no table (nothing is recorded then)."""
    from calsync.adapters.dynamo.dead_letters import DynamoDeadLetterStore

    table = settings().dead_letters_table
    return _on_table(DynamoDeadLetterStore, table, "DEAD_LETTERS_TABLE") if table else None


@_once
def _dead_letter_queues() -> DeadLetterQueues:
    """The dead-letter queues the environment names, each with its source queue (for the admin function)."""
    from calsync.adapters.aws.dead_letters import QueuePair, SqsDeadLetterQueues
    from calsync.domain.dead_letters import DeadLetterQueue

    current = settings()
    urls = {
        DeadLetterQueue.OUTBOUND: (current.outbound_queue_url, current.outbound_dlq_url),
        DeadLetterQueue.INBOUND: (current.inbound_queue_url, current.inbound_dlq_url),
        DeadLetterQueue.RECONCILE: (current.reconcile_queue_url, current.reconcile_dlq_url),
    }
    return SqsDeadLetterQueues(
        _boto3_client("sqs"),
        {kind: QueuePair(source, dead) for kind, (source, dead) in urls.items() if source and dead},
    )


@_once
def _directory() -> DirectoryStore:
    from calsync.adapters.dynamo.dead_letters import DynamoDirectoryStore

    return _on_table(DynamoDirectoryStore, settings().mappings_table, "MAPPINGS_TABLE")


@_once
def _stores() -> tuple[Any, Any, Any]:
    from calsync.adapters.dynamo import DynamoIntegrationStore, DynamoLinkStore, DynamoMappingStore

    current = settings()
    options = {"region": current.region, "endpoint_url": current.aws_endpoint_url}
    return (
        DynamoIntegrationStore(current.integrations_table, **options),
        DynamoMappingStore(current.mappings_table, **options),
        DynamoLinkStore(current.links_table, **options),
    )


# Per integration and secret version: a warm function reuses its JRNI login and its Exchange connections, and a
# rotated secret (new values) gets fresh ones.
_jrni_clients: dict[tuple[str, str], Any] = {}


def _jrni_client(integration: Integration) -> Any:
    from calsync.adapters.jrni.client import JrniClient

    secret = secrets().get(integration.jrni.secret_name)
    key = (integration.id, secret_fingerprint(secret))
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
    """The integration's change feed, for the Exchange API it speaks."""
    if integration.exchange.api is ExchangeApi.EWS:
        from calsync.adapters.ews.feed import EwsFeed

        return EwsFeed(integration.exchange, secrets().get(integration.exchange.secret_name))
    raise _unsupported(integration)


def _unsupported(integration: Integration) -> PermanentError:
    return PermanentError(
        f"integration {integration.id} speaks {integration.exchange.api.value}, which this version of calsync "
        f"does not support; set its Exchange API to ews"
    )


@_once
def inbound_queue() -> Any:
    """The inbound queue's SQS-only operations the inbound handler needs (postpone, dead-letter)."""
    from calsync.adapters.aws.queues import SqsInboundQueue

    current = settings()
    return SqsInboundQueue(
        _boto3_client("sqs"), current.inbound_queue_url, current.inbound_dlq_url, _dead_letters()
    )


def _required(value: str, variable: str) -> str:
    if not value:
        raise ConfigurationError(f"this function needs the environment variable {variable}")
    return value


def _on_table(store: Callable[..., _T], table: str, variable: str) -> _T:
    """A DynamoDB store on the table the function's environment names (``variable``, required)."""
    current = settings()
    return store(_required(table, variable), region=current.region, endpoint_url=current.aws_endpoint_url)


@_once
def _block_links() -> BlockLinkStore:
    from calsync.adapters.dynamo import DynamoBlockLinkStore

    return _on_table(DynamoBlockLinkStore, settings().block_links_table, "BLOCK_LINKS_TABLE")


@_once
def _cursors() -> CursorStore:
    from calsync.adapters.dynamo import DynamoCursorStore

    return _on_table(DynamoCursorStore, settings().cursors_table, "CURSORS_TABLE")


@_once
def _streaming_states() -> StreamingStates | None:
    from calsync.adapters.dynamo import DynamoStreamingStateStore

    current = settings()
    if not current.streaming_state_table:
        return None
    return DynamoStreamingStateStore(
        current.streaming_state_table, region=current.region, endpoint_url=current.aws_endpoint_url
    )


@_once
def _events() -> EventPublisher | None:
    from calsync.adapters.aws.events import EventBridgePublisher

    name = settings().event_bus_name
    return EventBridgePublisher(_boto3_client("events"), name) if name else None


def calendar_for(integration: Integration) -> CalendarProvider:
    """The integration's calendars, for the Exchange API it speaks."""
    if integration.exchange.api is ExchangeApi.EWS:
        from calsync.adapters.ews.provider import EwsCalendar

        return EwsCalendar(integration.exchange, secrets().get(integration.exchange.secret_name))
    raise _unsupported(integration)


def _booking_deps() -> BookingDeps:
    integrations, mappings, links = _stores()
    return BookingDeps(
        integrations=integrations,
        mappings=mappings,
        links=links,
        block_links=_block_links(),
        calendar_for=calendar_for,
        bookings_for=bookings_for,
        clock=_now,
        telemetry=telemetry(),
    )


def function_metrics(service: str) -> Any:
    """A function's metrics (``FunctionMetrics``), ``service`` its dimension: the entry point keeps one and decorates
    its handler with its ``log_metrics``, which writes them at the end of each invocation."""
    from calsync.adapters.aws.metrics import FunctionMetrics

    return FunctionMetrics(service=service)


@_once
def telemetry() -> Telemetry:
    """What the use cases and the queue triggers count, into the metrics of the invocation under way."""
    from calsync.adapters.aws.metrics import EmfTelemetry

    return EmfTelemetry()


def _now() -> datetime:
    return datetime.now(UTC)


@_once
def webhook_deps() -> WebhookDeps:
    """For the JRNI webhook function: no Exchange, no JRNI calls. Integrations are read through a short cache
    (``calsync.adapters.cache``), as the secrets are."""
    from calsync.adapters.cache import WEBHOOK_INTEGRATION_SECONDS, CachedIntegrations
    from calsync.adapters.jrni.webhooks import JrniWebhooks

    integrations, _, _ = _stores()
    return WebhookDeps(
        integrations=CachedIntegrations(integrations, WEBHOOK_INTEGRATION_SECONDS),
        secrets=secrets(),
        webhooks=JrniWebhooks(),
        outbound_queue=outbound_queue(),
    )


@_once
def outbound_deps() -> BookingDeps:
    return _booking_deps()


@_once
def inbound_deps() -> MailboxDeps:
    """For the inbound function: Exchange's change feed and calendars, JRNI writes, block links, cursors, events."""
    return MailboxDeps(
        booking=_booking_deps(),
        feed_for=feed_for,
        writer_for=writer_for,
        cursors=_cursors(),
        events=_events(),
    )


@_once
def reconcile_queue() -> Any:
    """The reconcile queue, with the SQS-only operations its handler needs (postpone, dead-letter)."""
    from calsync.adapters.aws.queues import SqsReconcileQueue

    current = settings()
    url = _required(current.reconcile_queue_url, "RECONCILE_QUEUE_URL")
    return SqsReconcileQueue(_boto3_client("sqs"), url, current.reconcile_dlq_url, _dead_letters())


@_once
def _runs() -> RunStore:
    from calsync.adapters.dynamo import DynamoRunStore

    return _on_table(DynamoRunStore, settings().runs_table, "RUNS_TABLE")


@_once
def reconcile_deps() -> ReconcileDeps:
    """For the reconcile function: everything the inbound function has, the runs and both queues it sends to."""
    return ReconcileDeps(
        mailbox=inbound_deps(),
        runs=_runs(),
        queue=reconcile_queue(),
        outbound_queue=outbound_queue(),
        directory=_directory(),
        schedules_for=schedules_for,
    )


def schedules_for(integration: Integration) -> ScheduleWriter:
    """The integration's writer of time outside working hours, for the Exchange API it speaks."""
    if integration.exchange.api is ExchangeApi.EWS:
        from calsync.adapters.ews.schedules import EwsScheduleWriter

        return EwsScheduleWriter(integration.exchange, secrets().get(integration.exchange.secret_name))
    raise _unsupported(integration)


def availability_for(integration: Integration) -> AvailabilityReader:
    """A mailbox's free/busy, for the integration's Exchange API (the admin API's merged availability view)."""
    if integration.exchange.api is ExchangeApi.EWS:
        from calsync.adapters.ews.availability import EwsAvailability

        return EwsAvailability(integration.exchange, secrets().get(integration.exchange.secret_name))
    raise _unsupported(integration)


def checks_for(integration: Integration) -> ConnectionChecks:
    """The connection test's checks of the integration's JRNI and Exchange; secrets are read when the test runs."""
    from calsync.adapters.jrni.diagnosis import JrniDiagnosis

    jrni = JrniDiagnosis(integration.jrni, lambda: secrets().get(integration.jrni.secret_name))
    if integration.exchange.api is ExchangeApi.EWS:
        from calsync.adapters.ews.diagnosis import EwsDiagnosis

        exchange = EwsDiagnosis(integration.exchange, lambda: secrets().get(integration.exchange.secret_name))
        return ConnectionChecks(jrni=jrni, exchange=exchange)
    raise _unsupported(integration)


def _integration_state(mappings: IntegrationState, links: IntegrationState) -> tuple[IntegrationState, ...]:
    """Every store keeping items per integration, mappings first (what deleting an integration empties)."""
    from calsync.adapters.dynamo import (
        DynamoBlockLinkStore,
        DynamoCursorStore,
        DynamoRunStore,
        DynamoStreamingStateStore,
    )

    current = settings()
    stores: list[IntegrationState] = [
        mappings,
        links,
        _on_table(DynamoBlockLinkStore, current.block_links_table, "BLOCK_LINKS_TABLE"),
        _on_table(DynamoCursorStore, current.cursors_table, "CURSORS_TABLE"),
    ]
    if current.streaming_state_table:
        stores.append(
            _on_table(DynamoStreamingStateStore, current.streaming_state_table, "STREAMING_STATE_TABLE")
        )
    stores.append(_on_table(DynamoRunStore, current.runs_table, "RUNS_TABLE"))
    dead_letters = _dead_letters()
    if dead_letters is not None:
        stores.append(dead_letters)
    return tuple(stores)


@_once
def admin_deps() -> AdminDeps:
    integrations, mappings, links = _stores()
    return AdminDeps(
        integrations=integrations,
        mappings=mappings,
        bookings_for=bookings_for,
        clock=_now,
        runs=_runs(),
        reconcile_queue=reconcile_queue(),
        streaming=_streaming_states(),
        integration_state=_integration_state(mappings, links),
        streaming_heartbeat=timedelta(seconds=settings().streaming_heartbeat_seconds),
        streaming_service=settings().streaming_service,
        checks_for=checks_for,
        secrets_prefix=settings().secrets_prefix,
        directory=_directory(),
        dead_letters=_dead_letters(),
        dead_letter_queues=_dead_letter_queues(),
        availability_for=availability_for,
    )


@_once
def admin_idempotency() -> BasePersistenceLayer | None:
    """Where the admin API remembers its Idempotency-Keys: Powertools' DynamoDB persistence layer on the idempotency
    table (None without one: the header is then refused)."""
    import boto3
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    current = settings()
    if not current.idempotency_table:
        return None
    client = boto3.session.Session().client(
        "dynamodb", region_name=current.region, endpoint_url=current.aws_endpoint_url
    )
    return DynamoDBPersistenceLayer(
        table_name=current.idempotency_table, key_attr="id", expiry_attr="expiration", boto3_client=client
    )


def reset() -> None:
    """Forget everything built (tests and the local stack change the environment between runs)."""
    for cached in (
        settings,
        secrets,
        outbound_queue,
        inbound_queue,
        _stores,
        _block_links,
        _cursors,
        _events,
        _streaming_states,
        webhook_deps,
        outbound_deps,
        admin_deps,
        admin_idempotency,
        inbound_deps,
        reconcile_queue,
        _runs,
        reconcile_deps,
        telemetry,
        _dead_letters,
        _dead_letter_queues,
        _directory,
    ):
        cached.cache_clear()
    _jrni_clients.clear()
