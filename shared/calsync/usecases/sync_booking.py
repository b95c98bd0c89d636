"""Sync one booking (JRNI → Exchange): bring every mapped calendar in line with the booking as JRNI has it now.

Loads state through ports, plans with the pure outbound engine, applies (``booking_executor``), records the status.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as ReadOnlyMap
from dataclasses import dataclass
from datetime import datetime

from calsync import parallel
from calsync.domain import (
    UNMAPPED,
    Booking,
    BookingKind,
    EventContent,
    Integration,
    JrniKey,
    Mapping,
    MappingStatus,
    PermanentError,
    SyncState,
    booking_subject,
    outlook_change_subject,
)
from calsync.domain.markers import has_any_marker
from calsync.domain.messages import OutboundMessage
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
from calsync.ports import (
    NO_TELEMETRY,
    BlockLinkStore,
    BookingSource,
    CalendarProvider,
    IntegrationStore,
    LinkStore,
    MappingStore,
    Metric,
    Telemetry,
)
from calsync.rendering import About, for_booking, kind_of, templates_of
from calsync.usecases.booking_executor import ExecutionReport, Executor


@dataclass(frozen=True)
class BookingDeps:
    """What syncing a booking reads and writes. Factories take the integration: each has its own JRNI and Exchange."""

    integrations: IntegrationStore
    mappings: MappingStore
    links: LinkStore
    block_links: BlockLinkStore  # to recognise the JRNI blocks inbound made (never pushed back to Outlook)
    calendar_for: Callable[[Integration], CalendarProvider]
    bookings_for: Callable[[Integration], BookingSource]
    clock: Callable[[], datetime]
    telemetry: Telemetry = NO_TELEMETRY


@dataclass(frozen=True)
class OutboundResult:
    booking: Booking | None
    actions: list[Action]
    report: ExecutionReport


def sync_booking(
    deps: BookingDeps, message: OutboundMessage, *, rewrite: ReadOnlyMap[str, str | None] | None = None
) -> OutboundResult:
    """Bring every mapped calendar in line with the booking as JRNI has it *now* (a webhook may be stale or late).

    ``rewrite``: mailboxes whose item was changed in Outlook and gets JRNI's version back, each with the item version
    that was read; ConflictError when one of them changed again since (read it again and decide again)."""
    # Independent reads at once: the mappings and the links while the integration is read, then the booking from
    # JRNI (reached through the integration).
    mappings_read = parallel.start(deps.mappings.mappings, message.integration_id)
    links_read = parallel.start(deps.links.links_for, message.integration_id, message.jrni_key)
    integration = deps.integrations.get(message.integration_id)
    if integration is None:
        raise PermanentError(f"no integration {message.integration_id!r}: the message cannot be processed")
    source = deps.bookings_for(integration)
    reading = parallel.start(source.get_booking, message.jrni_key.company_id, message.jrni_key.booking_id)
    try:
        booking = reading.result()
    except PermanentError as exc:  # JRNI refuses us (credentials, access)
        record_failure(deps, message, str(exc))
        raise
    try:
        content = None if booking is None else content_of(integration, booking, source)
    except PermanentError as exc:  # a template that cannot render this booking: retrying would not help
        record_failure(deps, message, str(exc), booking)
        raise
    mappings, links = mappings_read.result(), links_read.result()
    mirrored = booking is not None and is_our_block(deps, integration, booking)
    actions = plan_outbound(
        content,
        booking,
        mappings,
        links,
        integration.options,
        mirrored_from_exchange=mirrored,
        rewrite=rewrite,
        appointment_lock=integration.appointment_lock,
    )
    executor = Executor(
        integration.id, deps.calendar_for(integration), deps.links, deps.clock, deps.telemetry
    )
    report = executor.apply(actions)
    if rewrite is None and booking is not None and booking.updated_at is not None and _wrote(report):
        # A revert (``rewrite``) answers an Outlook edit, not a JRNI change: no lag of JRNI's to speak of.
        lag = (deps.clock() - booking.updated_at).total_seconds()
        deps.telemetry.lag(Metric.OUTBOUND_LAG, max(0.0, lag), integration_id=integration.id)
    _record(deps, integration.id, message.jrni_key, mappings, actions, report.failed)
    if report.failed:
        # Every other mailbox is done; this message (for the ones that refused) goes to the dead-letter queue.
        raise PermanentError(
            "; ".join(f"{mailbox}: {reason}" for mailbox, reason in sorted(report.failed.items()))
        )
    return OutboundResult(booking, actions, report)


def _wrote(report: ExecutionReport) -> bool:
    return bool(report.created or report.updated or report.recovered or report.deleted)


def content_of(integration: Integration, booking: Booking, source: BookingSource) -> EventContent:
    """How the booking should look in Outlook, templates rendered with JRNI's drops (TemplateError when this
    booking's data makes a template fail: a permanent failure, named in the mapping's status)."""
    templates = templates_of(integration)
    context = for_booking(
        booking,
        source.records(booking),
        About(integration.name, integration.id, kind_of(booking), integration.options.block_subject),
    )
    subject, body = templates.render(context)
    return desired_content(
        booking,
        integration.id,
        subject,
        body,
        integration.options,
        is_html=not templates.plain_text_body,
        templates=templates.fingerprint,
    )


def is_our_block(deps: BookingDeps, integration: Integration, booking: Booking) -> bool:
    """A JRNI block calsync made for an Outlook item: pushing it back to Outlook would echo. A block another
    integration made counts too: two integrations on one JRNI company sharing a mailbox would otherwise mirror each
    other's blocks back and forth for ever (an Outlook item of one becomes a block of the other, and so on)."""
    if booking.kind is not BookingKind.BLOCK:
        return False
    if has_any_marker([str(booking.details.get("private_note", ""))]):
        return True  # the marker is written with the block, so even a block made a moment ago is recognised
    return (
        deps.block_links is not None and deps.block_links.by_jrni_key(integration.id, booking.key) is not None
    )


_VERBS = {CreateEvent: "created", UpdateEvent: "updated", RecoverEvent: "recovered", DeleteEvent: "removed"}


def _record(
    deps: BookingDeps,
    integration_id: str,
    key: JrniKey,
    mappings: list[Mapping],
    actions: list[Action],
    failed: dict[str, str],
) -> None:
    """What each staff member or resource concerned shows in the integration's status."""
    by_mailbox = {m.mailbox: m for m in mappings}
    now = deps.clock()
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
    deps.mappings.record_status(*statuses)  # one write for the whole booking


def record_failure(
    deps: BookingDeps, message: OutboundMessage, reason: str, booking: Booking | None = None
) -> None:
    """A message given up on (dead-lettered): show why on every mapped calendar of the booking calsync knows of, those
    it has items in and, when the booking was read, those it belongs in."""
    by_mailbox = {m.mailbox: m for m in deps.mappings.mappings(message.integration_id)}
    by_calendar = {(m.kind, m.jrni_id): m for m in by_mailbox.values()}
    concerned = [
        by_mailbox.get(link.mailbox)
        for link in deps.links.links_for(message.integration_id, message.jrni_key)
    ]
    if booking is not None:
        concerned += [by_calendar.get(calendar) for calendar in booking.calendar_ids()]
    calendars = dict.fromkeys((m.kind, m.jrni_id) for m in concerned if m is not None)
    now = deps.clock()
    statuses = [
        MappingStatus(
            message.integration_id,
            kind,
            jrni_id,
            SyncState.ERROR,
            f"booking {message.jrni_key} failed: {reason}",
            now,
            booking_subject(message.jrni_key),
        )
        for kind, jrni_id in calendars
    ]
    if statuses:
        deps.mappings.record_status(*statuses)


__all__ = ["BookingDeps", "OutboundResult", "content_of", "is_our_block", "record_failure", "sync_booking"]
