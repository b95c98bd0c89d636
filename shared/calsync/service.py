"""The use cases, each one call from a thin handler: load state through ports, plan with the engine, apply, record.

``Services`` bundles the ports; ``wiring`` builds the real ones, tests build fakes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from collections.abc import Mapping as ReadOnlyMap
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from calsync import parallel
from calsync.domain import (
    UNMAPPED,
    AuthenticationError,
    Booking,
    BookingKind,
    CalsyncError,
    Integration,
    InvalidInputError,
    JrniKey,
    Mapping,
    MappingStatus,
    NotFoundError,
    PermanentError,
    ResourceKind,
    SyncState,
    TooLargeError,
    booking_subject,
    outlook_change_subject,
)
from calsync.engine import (
    Action,
    CreateEvent,
    DeleteEvent,
    RecoverEvent,
    SkipUnmapped,
    UpdateEvent,
    desired_content,
    plan_outbound,
)
from calsync.executor import ExecutionReport, Executor

if TYPE_CHECKING:
    from calsync.rendering import Templates

from calsync.ports import (
    BlockLinkStore,
    BookingSource,
    BookingWriter,
    CalendarFeed,
    CalendarProvider,
    CursorStore,
    EventPublisher,
    IntegrationStore,
    LinkStore,
    MappingStore,
    OutboundMessage,
    OutboundQueue,
    SecretStore,
    StreamingStates,
)


@dataclass(frozen=True)
class Services:
    """The ports a use case may need. Factories take the integration: each has its own JRNI and Exchange."""

    integrations: IntegrationStore
    mappings: MappingStore
    links: LinkStore
    secrets: SecretStore
    outbound_queue: OutboundQueue
    calendar_for: Callable[[Integration], CalendarProvider]
    bookings_for: Callable[[Integration], BookingSource]
    clock: Callable[[], datetime]
    # Inbound (Exchange → JRNI); not every function needs them.
    feed_for: Callable[[Integration], CalendarFeed] | None = None
    writer_for: Callable[[Integration], BookingWriter] | None = None
    block_links: BlockLinkStore | None = None
    cursors: CursorStore | None = None
    events: EventPublisher | None = None
    streaming: StreamingStates | None = None  # how each mailbox is watched (admin status)
    # The streaming task beats its heart this often; the admin status shows a watch as stale after 3 beats missed.
    streaming_heartbeat: timedelta = timedelta(seconds=30)
    streaming_service: str = (
        ""  # the ECS service running the streaming task, named in the stale watch's detail
    )


def integration_or_404(services: Services, integration_id: str) -> Integration:
    integration = services.integrations.get(integration_id)
    if integration is None:
        raise NotFoundError(f"no integration {integration_id!r}")
    return integration


def templates_of(integration: Integration) -> Templates:
    # Imported here: the webhook function never renders, and python-liquid (with babel) is half its import time.
    from calsync.rendering import DEFAULT_BODY, DEFAULT_SUBJECT, Templates

    return Templates(
        integration.subject_template or DEFAULT_SUBJECT, integration.body_template or DEFAULT_BODY
    )


# API Gateway accepts up to 10 MB; no JRNI webhook comes near this, and anything larger is refused unread.
MAX_WEBHOOK_BYTES = 256 * 1024


def accept_jrni_webhook(
    services: Services, integration_id: str, headers: ReadOnlyMap[str, str | Sequence[str]], body: bytes
) -> list[OutboundMessage]:
    """Authenticate and parse a JRNI webhook, then queue one message per booking it names (nothing on any error).

    ``headers``: each name's value, or all its values (API Gateway's ``multiValueHeaders``)."""
    from calsync.adapters.jrni.webhooks import WebhookFormatError, check_webhook_auth, parse_webhook

    if len(body) > MAX_WEBHOOK_BYTES:
        raise TooLargeError(f"the body is {len(body)} bytes; webhooks are limited to {MAX_WEBHOOK_BYTES}")
    integration = integration_or_404(services, integration_id)
    if not check_webhook_auth(headers, services.secrets.get(integration.webhook_secret_name)):
        raise AuthenticationError("the webhook's credentials do not match this integration's")
    try:
        affected = parse_webhook(body)
    except WebhookFormatError as exc:
        raise InvalidInputError(str(exc)) from exc
    messages = list(dict.fromkeys(OutboundMessage(integration.id, a.key, a.trigger) for a in affected))
    if messages:
        # The delivery's own bytes identify it: JRNI's retries of one delivery collapse, new changes never do.
        services.outbound_queue.send(messages, delivery_id=hashlib.sha256(body).hexdigest())
    return messages


@dataclass(frozen=True)
class OutboundResult:
    booking: Booking | None
    actions: list[Action]
    report: ExecutionReport


def sync_outbound(
    services: Services, message: OutboundMessage, *, rewrite: ReadOnlyMap[str, str | None] | None = None
) -> OutboundResult:
    """Bring every mapped calendar in line with the booking as JRNI has it *now* (a webhook may be stale or late).

    ``rewrite``: mailboxes whose item was changed in Outlook and gets JRNI's version back, each with the item version
    that was read; ConflictError when one of them changed again since (read it again and decide again)."""
    # Independent reads at once: the mappings and the links while the integration is read, then the booking from
    # JRNI (reached through the integration).
    mappings_read = parallel.start(services.mappings.mappings, message.integration_id)
    links_read = parallel.start(services.links.links_for, message.integration_id, message.jrni_key)
    integration = services.integrations.get(message.integration_id)
    if integration is None:
        raise PermanentError(f"no integration {message.integration_id!r}: the message cannot be processed")
    source = services.bookings_for(integration)
    reading = parallel.start(source.get_booking, message.jrni_key.company_id, message.jrni_key.booking_id)
    try:
        booking = reading.result()
    except PermanentError as exc:
        record_failure(services, message, str(exc))
        raise
    mappings, links = mappings_read.result(), links_read.result()
    content = None
    if booking is not None:
        company = str(booking.details.get("company_name", ""))
        from calsync.rendering import booking_context

        subject, body = templates_of(integration).render(booking_context(booking, company))
        content = desired_content(booking, integration.id, subject, body, integration.options)
    mirrored = booking is not None and is_our_block(services, integration, booking)
    actions = plan_outbound(
        content,
        booking,
        mappings,
        links,
        integration.options,
        mirrored_from_exchange=mirrored,
        rewrite=rewrite,
    )
    executor = Executor(
        integration.id,
        services.calendar_for(integration),
        services.links,
        recreate_deleted=integration.appointment_lock,
    )
    report = executor.apply(actions)
    _record(services, integration.id, message.jrni_key, mappings, actions, report.failed)
    if report.failed:
        # Every other mailbox is done; this message (for the ones that refused) goes to the dead-letter queue.
        raise PermanentError(
            "; ".join(f"{mailbox}: {reason}" for mailbox, reason in sorted(report.failed.items()))
        )
    return OutboundResult(booking, actions, report)


def block_marker(integration_id: str, remote_id: str) -> str:
    """What calsync writes into the private note of each JRNI block it makes for an Outlook item."""
    return f"calsync:{integration_id}:{hashlib.sha256(remote_id.encode()).hexdigest()[:20]}"


def is_our_block(services: Services, integration: Integration, booking: Booking) -> bool:
    """A JRNI block calsync made for an Outlook item: pushing it back to Outlook would echo."""
    if booking.kind is not BookingKind.BLOCK:
        return False
    if f"calsync:{integration.id}:" in str(booking.details.get("private_note", "")):
        return True  # the marker is written with the block, so even a block made a moment ago is recognised
    return (
        services.block_links is not None
        and services.block_links.by_jrni_key(integration.id, booking.key) is not None
    )


_VERBS = {CreateEvent: "created", UpdateEvent: "updated", RecoverEvent: "recovered", DeleteEvent: "removed"}


def _record(
    services: Services,
    integration_id: str,
    key: JrniKey,
    mappings: list[Mapping],
    actions: list[Action],
    failed: dict[str, str],
) -> None:
    """What each staff member or resource concerned shows in the integration's status."""
    by_mailbox = {m.mailbox: m for m in mappings}
    now = services.clock()
    subject = booking_subject(key)
    statuses: list[MappingStatus] = []
    for action in actions:
        if isinstance(action, SkipUnmapped):
            detail = f"booking {key} not synced: no mailbox is mapped to this {action.kind.value}"
            statuses.append(
                MappingStatus(
                    integration_id, action.kind, action.jrni_id, SyncState.SKIPPED, detail, now, UNMAPPED
                )
            )
            continue
        mapping = by_mailbox.get(action.mailbox)
        if mapping is None:
            continue  # a mailbox no longer mapped: nobody to report it against
        settles: tuple[str, ...] = (UNMAPPED,)
        if action.mailbox in failed:
            state, detail = SyncState.ERROR, f"booking {key} failed: {failed[action.mailbox]}"
        else:
            state, detail = SyncState.OK, f"booking {key} {_VERBS[type(action)]} in {action.mailbox}"
            if isinstance(action, DeleteEvent):
                settles += (outlook_change_subject(key),)  # the booking is gone: nothing left to refuse
        statuses.append(
            MappingStatus(integration_id, mapping.kind, mapping.jrni_id, state, detail, now, subject, settles)
        )
    services.mappings.record_status(*statuses)  # one write for the whole booking


def record_failure(services: Services, message: OutboundMessage, reason: str) -> None:
    """A message given up on (dead-lettered): show it on every mapping of the booking's calendars we know of."""
    links = services.links.links_for(message.integration_id, message.jrni_key)
    mappings = {m.mailbox: m for m in services.mappings.mappings(message.integration_id)}
    now = services.clock()
    reported: set[tuple[ResourceKind, str]] = set()
    for link in links:
        mapping = mappings.get(link.mailbox)
        if mapping is not None and (mapping.kind, mapping.jrni_id) not in reported:
            reported.add((mapping.kind, mapping.jrni_id))
            services.mappings.record_status(
                MappingStatus(
                    message.integration_id,
                    mapping.kind,
                    mapping.jrni_id,
                    SyncState.ERROR,
                    f"booking {message.jrni_key} failed: {reason}",
                    now,
                    booking_subject(message.jrni_key),
                )
            )


__all__ = [
    "MAX_WEBHOOK_BYTES",
    "CalsyncError",
    "OutboundResult",
    "Services",
    "accept_jrni_webhook",
    "integration_or_404",
    "record_failure",
    "sync_outbound",
]
