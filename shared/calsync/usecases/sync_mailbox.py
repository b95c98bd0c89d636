"""The inbound use case: one mailbox's Outlook changes, applied to JRNI.

Streaming notifications (or a timer, or a resync) only say *which mailbox* to look at; this reads the mailbox's change
feed from its stored cursor, plans with the pure inbound engine, applies, and stores the cursor only afterwards.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from calsync.domain import (
    OUTLOOK_CHANGES,
    BookingStatus,
    ConflictError,
    FreeBusy,
    HeldBackError,
    Integration,
    JrniKey,
    LinkState,
    Mapping,
    MappingStatus,
    PermanentError,
    ResourceKind,
    ResyncRequiredError,
    RetryableError,
    SyncState,
    TimeWindow,
    outlook_change_subject,
)
from calsync.domain.inbound import MailboxChanges, OurItem
from calsync.domain.markers import block_marker
from calsync.domain.messages import InboundMessage, OutboundMessage
from calsync.engine import desired_content
from calsync.engine.inbound import (
    CancelBooking,
    CreateBlock,
    InboundAction,
    InboundOptions,
    MoveBlock,
    RemoveBlock,
    RemoveStrayItem,
    RevertItem,
    plan_inbound,
)
from calsync.engine.reconcile import held_back
from calsync.ports import BookingWriter, CalendarFeed, CursorStore, EventPublisher, Metric, Telemetry
from calsync.usecases.mailbox_executor import InboundExecutor, InboundReport
from calsync.usecases.sync_booking import BookingDeps, sync_booking

logger = logging.getLogger(__name__)

# How long a process remembers which JRNI company each staff member or resource belongs to.
_COMPANY_CACHE_SECONDS = 300


@dataclass(frozen=True)
class MailboxDeps:
    """What syncing a mailbox reads and writes: syncing a booking's (a revert is one), and Exchange's change feed,
    JRNI writes, the feed's cursors and the customer's event bus."""

    booking: BookingDeps
    feed_for: Callable[[Integration], CalendarFeed]
    writer_for: Callable[[Integration], BookingWriter]
    cursors: CursorStore
    events: EventPublisher | None  # None: no event bus configured, nothing is published


_companies: dict[str, tuple[float, dict[tuple[ResourceKind, str], str]]] = {}
_companies_lock = threading.Lock()


def company_of(deps: MailboxDeps, integration: Integration, mapping: Mapping) -> str:
    """The JRNI company of a mapped staff member or resource (blocks are made in that company)."""
    with _companies_lock:
        cached = _companies.get(integration.id)
    if cached is None or cached[0] < time.monotonic() or (mapping.kind, mapping.jrni_id) not in cached[1]:
        table = {
            (c.kind, c.jrni_id): c.company_id for c in deps.booking.bookings_for(integration).calendars()
        }
        with _companies_lock:
            _companies[integration.id] = (time.monotonic() + _COMPANY_CACHE_SECONDS, table)
        cached = _companies[integration.id]
    company = cached[1].get((mapping.kind, mapping.jrni_id))
    if company is None:
        raise PermanentError(
            f"JRNI no longer has {mapping.kind.value} {mapping.jrni_id} (mapped to {mapping.mailbox})"
        )
    return company


def _our_items(
    deps: MailboxDeps, integration: Integration, mapping: Mapping, changes: MailboxChanges
) -> dict[str, OurItem]:
    """The items this change touches that are a booking's item in this mailbox, each with what JRNI says it should be
    now (read fresh). An item carrying our stamp that is left out is a stray, to be removed: JRNI has no such booking,
    it is cancelled or no longer in this calendar, or it has another item here already (a write that landed late)."""
    ours: dict[str, OurItem] = {}
    mailbox_links = deps.booking.links.links_in(integration.id, changes.mailbox)
    links = {link.remote_id: link for link in mailbox_links if link.remote_id}
    # Bookings whose link here names one item for certain: any other item stamped for them is a second one.
    settled = {
        link.jrni_key: link.remote_id
        for link in mailbox_links
        if link.state is LinkState.SYNCED and link.remote_id
    }
    touched = {e.remote_id: e for e in changes.upserts}
    candidates = [
        (rid, link.jrni_key, link.version, True)
        for rid, link in links.items()
        if rid in touched or rid in changes.removed
    ]
    for event in changes.upserts:
        stamp = event.stamp
        if event.remote_id in links or stamp is None or stamp.integration_id != integration.id:
            continue
        if settled.get(stamp.jrni_key, event.remote_id) == event.remote_id:
            candidates.append((event.remote_id, stamp.jrni_key, None, False))  # ours, link lost: still ours
    source = deps.booking.bookings_for(integration)
    calendar = (mapping.kind, mapping.jrni_id)
    now = deps.booking.clock()
    for remote_id, key, version, linked in candidates:
        booking = source.get_booking(key.company_id, key.booking_id)
        if booking is None and linked:
            # JRNI does not know the booking (any more?): left to outbound, which removes the item when JRNI's
            # deletion reaches it. Never removed here on JRNI's silence: a JRNI company id changed looks the same.
            seen = touched.get(remote_id)
            window = seen.window if seen is not None else TimeWindow(now, now)
            ours[remote_id] = OurItem(key, window, FreeBusy.BUSY, version, is_cancelled=True)
            continue
        if booking is None or (
            not linked and (not booking.is_active or calendar not in booking.calendar_ids())
        ):
            continue  # no link will ever own this item: a stray
        content = desired_content(booking, integration.id, "", "", integration.options)
        ours[remote_id] = OurItem(
            jrni_key=key,
            expected_window=content.window,
            expected_free_busy=content.free_busy,
            version=version,
            pre_time_seconds=int(booking.pre_time.total_seconds())
            if integration.options.include_buffers
            else 0,
            post_time_seconds=int(booking.post_time.total_seconds())
            if integration.options.include_buffers
            else 0,
            is_reservation=booking.status is BookingStatus.RESERVATION,
            is_cancelled=not booking.is_active,
        )
    return ours


# A notification naming more items than this is read as any other change: one read of the mailbox costs less than a
# lookup per item.
MAX_OWN_WRITE_LOOKUPS = 10


def _only_our_own_writes(deps: MailboxDeps, message: InboundMessage) -> bool:
    """Whether every item the notification named is one calsync wrote in this mailbox, at exactly the change key
    recorded in its link: the notification is our own write coming back, and reading the mailbox's changes would
    find nothing to do. The cursor stays where it is, so the next sync still reads past these items."""
    if not message.notified or len(message.notified) > MAX_OWN_WRITE_LOOKUPS:
        return False
    versions = deps.booking.links.versions_of(
        message.integration_id, message.mailbox.strip().lower(), [item.item_id for item in message.notified]
    )
    return all(versions.get(item.item_id) == item.change_key for item in message.notified)


# How often one message reads the mailbox again because an item changed while calsync answered it.
MAX_READS = 3
RETRY_AFTER_CONFLICT_SECONDS = 2.0


def _integration(deps: MailboxDeps, integration_id: str) -> Integration:
    integration = deps.booking.integrations.get(integration_id)
    if integration is None:
        raise PermanentError(f"no integration {integration_id!r}: the message cannot be processed")
    return integration


def sync_mailbox(deps: MailboxDeps, message: InboundMessage, *, force: bool = False) -> InboundReport:
    """Apply one mailbox's Outlook changes to JRNI.

    An answer written back to Outlook (a revert) is conditional on the item version read; when the item changed
    again meanwhile, the mailbox is read again from the same cursor and the changes decided on afresh.

    The mass-delete guard: when the changes would free or cancel most of what calsync holds in JRNI for the mailbox
    (a mailbox emptied, a permission removed), nothing is applied, the cursor stays, and the mapping shows
    ``needs_attention`` until an operator resyncs it with ``force`` (HeldBackError)."""
    if _only_our_own_writes(deps, message):
        return InboundReport()
    mailbox = message.mailbox.strip().lower()
    feed = deps.feed_for(_integration(deps, message.integration_id))
    cursor = deps.cursors.get(message.integration_id, mailbox)
    for _ in range(MAX_READS):
        now = deps.booking.clock()
        window = InboundOptions(now=now).window
        # Start the window a day back so that an item moved into the past releases its block.
        read_window = replace(window, start=window.start - timedelta(days=1))
        try:
            changes = feed.changes(mailbox, cursor, read_window)
        except ResyncRequiredError:
            changes = feed.changes(mailbox, None, read_window)
        # Read after the changes: a switch (the appointment lock, auto-confirm) or a mapping changed before an Outlook
        # change that is seen here is always seen with it.
        integration = _integration(deps, message.integration_id)
        mapping = deps.booking.mappings.mapping_of(integration.id, mailbox)
        if mapping is None:
            return InboundReport()  # unmapped meanwhile: nothing to block any more
        try:
            report = _apply(deps, integration, mapping, changes, now, force=force)
        except ConflictError as exc:
            logger.info(
                "item changed again while answering it; reading the mailbox again",
                extra={"mailbox": mailbox, "reason": str(exc)},
            )
            continue
        if changes.cursor and changes.cursor != cursor:
            # Only now: a crash before this point replays the same changes, which the links make harmless.
            # Unmoved (nothing changed): no write.
            deps.cursors.put(integration.id, mailbox, changes.cursor)
        detail = (
            f"{report.created} blocked, {report.moved} moved, {report.removed} released, "
            f"{len(report.bookings_changed)} bookings changed, {len(report.reverted)} reverted"
        )
        _status(
            deps,
            mapping,
            SyncState.OK,
            detail,
            settles=tuple(outlook_change_subject(key) for key in report.bookings_changed),
        )
        for key, why in report.refused.items():
            # Open until JRNI accepts a later Outlook change to this booking, or the booking goes.
            _status(
                deps,
                mapping,
                SyncState.ERROR,
                f"booking {key}: JRNI refused the change made in Outlook, which was put back: {why}",
                subject=outlook_change_subject(key),
            )
        return report
    raise RetryableError(
        f"items in {mailbox} kept changing while calsync answered them; trying again shortly",
        delay_seconds=RETRY_AFTER_CONFLICT_SECONDS,
    )


def _apply(
    deps: MailboxDeps,
    integration: Integration,
    mapping: Mapping,
    changes: MailboxChanges,
    now: datetime,
    *,
    force: bool = False,
) -> InboundReport:
    """Plan one read of the mailbox's changes and apply it: JRNI first, then what goes back to Outlook."""
    options = InboundOptions(
        now=now,
        blocking=frozenset(integration.inbound_free_busy),
        appointment_lock=integration.appointment_lock,
        auto_confirm=integration.auto_confirm,
    )
    blocks = deps.booking.block_links.blocks(integration.id, mapping.mailbox)
    ours = _our_items(deps, integration, mapping, changes)
    actions = plan_inbound(changes, mapping, blocks, ours, options)
    # Like with like: blocks freed against the blocks calsync holds, bookings cancelled (or items of ours removed)
    # against its items in the mailbox.
    released = sum(isinstance(a, RemoveBlock) for a in actions)
    cancelled = sum(isinstance(a, CancelBooking | RemoveStrayItem) for a in actions)
    linked = len(deps.booking.links.links_in(integration.id, mapping.mailbox)) if cancelled else 0
    if not force and (held_back(released, len(blocks)) or held_back(cancelled, linked)):
        what = (
            f"free {released} of the {len(blocks)} JRNI blocks"
            if held_back(released, len(blocks))
            else f"cancel or remove {cancelled} of the {linked} bookings"
        )
        reason = (
            f"the Outlook changes read from {mapping.mailbox} would {what} calsync holds for it at once (a mailbox "
            f"emptied, or access to it removed?); nothing was applied. If the mailbox is right, resync this mapping "
            f"with force: true; otherwise restore the mailbox or calsync's access to it"
        )
        _status(deps, mapping, SyncState.NEEDS_ATTENTION, reason)
        deps.booking.telemetry.count(Metric.MASS_DELETE_REFUSED, integration_id=integration.id)
        raise HeldBackError(reason)
    executor = InboundExecutor(
        integration,
        mapping,
        company_of(deps, integration, mapping) if _needs_company(actions) else "",
        deps.writer_for(integration),
        deps.booking.block_links,
        lambda rid: block_marker(integration.id, rid),
    )
    try:
        report = executor.apply(actions)
        _count_jrni_writes(
            deps.booking.telemetry, integration, actions, changes, ours, report, deps.booking.clock()
        )
        if report.notifications and deps.events is not None:
            # Right after the JRNI changes they describe: a failure later (a revert) must not lose them, because
            # the retry will not confirm the reservation a second time.
            deps.events.publish(
                [
                    {
                        "kind": n.kind,
                        "integration_id": integration.id,
                        "company_id": n.jrni_key.company_id,
                        "booking_id": n.jrni_key.booking_id,
                        "at": now.isoformat(),
                        **n.detail,
                    }
                    for n in report.notifications
                ]
            )
        _revert(deps, integration, report.reverted)
        _remove_strays(deps, integration, report.strays)
        for name, value in (
            (Metric.REVERTS, len(report.reverted)),
            (Metric.STRAYS_REMOVED, len(report.strays)),
        ):
            if value:
                deps.booking.telemetry.count(name, value, integration_id=integration.id)
    except PermanentError as exc:
        _status(
            deps,
            mapping,
            SyncState.ERROR,
            f"Outlook changes in {mapping.mailbox} could not be applied: {exc}",
        )
        raise
    return report


def _count_jrni_writes(
    telemetry: Telemetry,
    integration: Integration,
    actions: Sequence[InboundAction],
    changes: MailboxChanges,
    ours: dict[str, OurItem],
    report: InboundReport,
    written_at: datetime,
) -> None:
    """What was written to JRNI, and how long after the Outlook change each write came (where the item says when it
    changed: a deleted item does not)."""
    for name, value in (
        (Metric.BLOCKS_WRITTEN, report.created),
        (Metric.BLOCKS_MOVED, report.moved),
        (Metric.BLOCKS_RELEASED, report.removed),
        (Metric.BOOKINGS_CHANGED, len(report.bookings_changed)),
    ):
        if value:
            telemetry.count(name, value, integration_id=integration.id)
    modified = {event.remote_id: event.modified_at for event in changes.upserts}
    changed = set(report.bookings_changed)
    times = [action.event.modified_at for action in actions if isinstance(action, CreateBlock | MoveBlock)]
    times += [modified.get(remote_id) for remote_id, our in ours.items() if our.jrni_key in changed]
    for at in times:
        if at is not None:
            lag = (written_at - at).total_seconds()
            telemetry.lag(Metric.INBOUND_LAG, max(0.0, lag), integration_id=integration.id)


def _needs_company(actions: Sequence[InboundAction]) -> bool:
    return any(isinstance(a, CreateBlock | MoveBlock | RemoveBlock) for a in actions)


def _revert(deps: MailboxDeps, integration: Integration, reverts: Sequence[RevertItem]) -> None:
    """Put items changed in Outlook back as JRNI has them (re-created when deleted): only the items answered, and
    only over the version read; ConflictError when one changed again since."""
    by_booking: dict[JrniKey, dict[str, str | None]] = {}
    for revert in reverts:
        by_booking.setdefault(revert.jrni_key, {})[revert.mailbox] = revert.version
    for key, rewrite in by_booking.items():
        sync_booking(deps.booking, OutboundMessage(integration.id, key, "revert"), rewrite=rewrite)


def _remove_strays(deps: MailboxDeps, integration: Integration, strays: Sequence[RemoveStrayItem]) -> None:
    """Delete items of ours that no booking owns in their mailbox (an item already gone counts as removed)."""
    if not strays:
        return
    calendar = deps.booking.calendar_for(integration)
    for stray in strays:
        logger.warning(
            "removing an item of ours that no booking owns here",
            extra={"mailbox": stray.mailbox, "booking": str(stray.jrni_key), "item": stray.remote_id},
        )
        calendar.delete_event(stray.mailbox, stray.remote_id)


def _status(
    deps: MailboxDeps,
    mapping: Mapping,
    state: SyncState,
    detail: str,
    *,
    subject: str = OUTLOOK_CHANGES,
    settles: tuple[str, ...] = (),
) -> None:
    deps.booking.mappings.record_status(
        MappingStatus(
            mapping.integration_id,
            mapping.kind,
            mapping.jrni_id,
            state,
            detail,
            deps.booking.clock(),
            subject,
            settles,
        )
    )
