"""Reconciliation: whatever signal was missed (a webhook JRNI gave up on, a notification Exchange dropped, a stopped
streaming task), calsync converges on a schedule and on request, with the same engines and executors as the event
paths.

A run of one integration, in three steps, each a message on the reconcile queue:

1. ``schedule``: the timer's tick starts a run for every integration (each in its own message: one integration's
   trouble holds up no other);
2. ``run``: JRNI's staff and resources read and stored (the directory the admin API pages over), one JRNI query for
   what changed since the integration's cursor (shared by all its mappings), each changed booking queued for the
   outbound function exactly as a webhook would queue it, then one message per mapping;
3. ``mapping``: the mailbox's change feed from its cursor applied as the inbound function applies it (missing blocks
   made, wrong ones moved, orphans released, the lock and auto-confirm honoured) and, in a deep run, the mailbox
   against JRNI's bookings for that calendar in the window (``engine.reconcile``): a missing item created (found
   again by its stamp first), a wrong one updated, an orphan removed, one item per booking.

A run is deep when asked for, when JRNI's changes were never read, and when the integration's templates changed
since they last were (``Integration.templates_changed_at``): the items of bookings still to come are then rewritten
with the new subject and body (rerendered), in the batches of any update, never moved.

An idle mapping costs one feed request and its share of the one JRNI query; nothing is written when nothing drifted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from calsync import parallel
from calsync.domain import (
    Booking,
    EventContent,
    HeldBackError,
    Integration,
    JrniKey,
    LinkState,
    Mapping,
    MappingStatus,
    PermanentError,
    SyncState,
    TimeWindow,
)
from calsync.domain.markers import block_marker
from calsync.domain.messages import (
    InboundMessage,
    OutboundMessage,
    ReconcileMessage,
    ReconcileStep,
    WakeReason,
)
from calsync.domain.reconcile import ReconcileRun, Repairs
from calsync.engine import CreateEvent, DeleteEvent, RecoverEvent, SkipUnmapped, UpdateEvent, plan_outbound
from calsync.engine.inbound import SYNC_WINDOW_DAYS, InboundOptions, RemoveStrayItem
from calsync.engine.reconcile import Listed, held_back, plan_mailbox
from calsync.ports import (
    BookingSource,
    DirectoryStore,
    Metric,
    OutboundQueue,
    ReconcileQueue,
    RunStore,
    ScheduleWriter,
)
from calsync.usecases.booking_executor import ExecutionReport, Executor
from calsync.usecases.schedule_busy import sync_schedule
from calsync.usecases.sync_booking import content_of, is_our_block, sync_booking
from calsync.usecases.sync_mailbox import MailboxDeps, company_of, sync_mailbox

logger = logging.getLogger(__name__)

# JRNI's changes are read from a little before the cursor: its clock and ours may differ by a few seconds, and a
# booking changed while the last run read may show only now. One read twice costs a JRNI read and writes nothing (its
# fingerprint has not changed).
JRNI_CURSOR_OVERLAP = timedelta(minutes=1)

# The status subject of a mapping's reconcile outcome.
RECONCILE = "reconcile"


@dataclass(frozen=True)
class ReconcileDeps:
    """What reconciling reads and writes: a mailbox's (and, through it, a booking's), the runs, the reconcile queue
    (its own next steps) and the outbound queue (bookings JRNI changed behind a missed webhook)."""

    mailbox: MailboxDeps
    runs: RunStore
    queue: ReconcileQueue
    outbound_queue: OutboundQueue
    # The copy of JRNI's staff and resources the admin API pages over: refreshed by every run. None: not kept.
    directory: DirectoryStore | None = None
    # Writes the time outside working hours into a mailbox (the integration's schedule_busy option). None: never.
    schedules_for: Callable[[Integration], ScheduleWriter] | None = None


def reconcile(deps: ReconcileDeps, message: ReconcileMessage) -> dict[str, object]:
    """Carry out one step; what to log."""
    if message.step is ReconcileStep.SCHEDULE:
        return {"runs": schedule(deps, deep=message.deep)}
    if message.step is ReconcileStep.RUN:
        run = start_run(deps, message)
        return {"run_id": run.run_id, "mappings": run.mappings_total, "bookings": run.bookings_queued}
    repairs = reconcile_mapping(deps, message)
    # Nested: "created" is a name the logging module keeps for itself (a log record's own attribute).
    return {"run_id": message.run_id, "mailbox": message.mailbox, "repaired": repairs.as_dict()}


def request_run(
    runs: RunStore,
    queue: ReconcileQueue,
    now: datetime,
    integration_id: str,
    *,
    deep: bool,
    mapping: Mapping | None = None,
    force: bool = False,
) -> ReconcileRun:
    """A run, recorded at once and carried out by the reconcile function: of the whole integration (the schedule's
    tick, the operator's request), or of one mapping, deeply (a resync, or the backfill of a new mapping)."""
    run_id = uuid.uuid4().hex
    if mapping is None:
        run = ReconcileRun(integration_id, run_id, deep, now)
        message = ReconcileMessage(ReconcileStep.RUN, deep, integration_id, run_id, force=force)
    else:
        run = ReconcileRun(integration_id, run_id, True, now, mappings_total=1)
        message = ReconcileMessage(
            ReconcileStep.MAPPING, True, integration_id, run_id, mapping.mailbox, force
        )
    runs.start(run)
    queue.send([message])
    return run


def schedule(deps: ReconcileDeps, *, deep: bool) -> int:
    """A run for every integration; how many were started."""
    integrations = deps.mailbox.booking.integrations.all()
    now = deps.mailbox.booking.clock()
    for integration in integrations:
        request_run(deps.runs, deps.queue, now, integration.id, deep=deep)
    return len(integrations)


def start_run(deps: ReconcileDeps, message: ReconcileMessage) -> ReconcileRun:
    """Refresh the integration's copy of JRNI's directory, read what JRNI changed since the integration's cursor (one
    query for all its mappings), queue each changed booking for the outbound function, then one message per mapping.
    The cursor moves only once all is queued."""
    booking_deps = deps.mailbox.booking
    integration = booking_deps.integrations.get(message.integration_id)
    if integration is None:
        raise PermanentError(f"no integration {message.integration_id!r}: the run cannot start")
    now = booking_deps.clock()
    run = deps.runs.get(integration.id, message.run_id) or ReconcileRun(
        integration.id, message.run_id, message.deep, now
    )
    mappings = booking_deps.mappings.mappings(integration.id)
    cursor = deps.runs.jrni_cursor(integration.id)
    # Never read, or the templates changed since: every mapping reads its whole window (and rewrites the items of
    # bookings still to come with the new templates).
    changed_at = integration.templates_changed_at
    deep = message.deep or cursor is None or (changed_at is not None and changed_at > cursor)
    queued = 0
    jrni = booking_deps.bookings_for(integration)
    if deps.directory is not None:
        try:
            deps.directory.replace(integration.id, jrni.calendars(), now)
        except PermanentError as exc:
            _fail(
                deps,
                integration,
                mappings,
                run,
                f"JRNI refused the reconcile's read of its staff and resources: {exc}",
            )
            raise
    if not deep and cursor is not None:
        try:
            changed = jrni.changed_since(cursor - JRNI_CURSOR_OVERLAP)
        except PermanentError as exc:
            _fail(
                deps, integration, mappings, run, f"JRNI refused the reconcile's read of its changes: {exc}"
            )
            raise
        keys = list(dict.fromkeys(booking.key for booking in changed))
        if keys:
            deps.outbound_queue.send(
                [OutboundMessage(integration.id, key, "reconcile") for key in keys],
                delivery_id=f"reconcile/{run.run_id}",
                correlation_id=run.run_id,  # the outbound function's log lines for these bookings name the run
            )
        queued = len(keys)
    run = replace(run, deep=deep, mappings_total=len(mappings), bookings_queued=queued)
    deps.runs.start(run)
    deps.queue.send(
        [
            ReconcileMessage(
                ReconcileStep.MAPPING, deep, integration.id, run.run_id, mapping.mailbox, message.force
            )
            for mapping in mappings
        ]
    )
    deps.runs.set_jrni_cursor(integration.id, now)
    return run


def _fail(
    deps: ReconcileDeps, integration: Integration, mappings: list[Mapping], run: ReconcileRun, reason: str
) -> None:
    deps.runs.start(replace(run, mappings_total=len(mappings)))
    deps.runs.failed(integration.id, run.run_id, reason)
    now = deps.mailbox.booking.clock()
    deps.mailbox.booking.mappings.record_status(
        *(
            MappingStatus(integration.id, m.kind, m.jrni_id, SyncState.ERROR, reason, now, RECONCILE)
            for m in mappings
        )
    )


def reconcile_mapping(deps: ReconcileDeps, message: ReconcileMessage) -> Repairs:
    """Reconcile one mapping in both directions; what it repaired (also counted in its run and shown in its status)."""
    booking_deps = deps.mailbox.booking
    integration = booking_deps.integrations.get(message.integration_id)
    if integration is None:
        raise PermanentError(f"no integration {message.integration_id!r}: the mapping cannot be reconciled")
    mailbox = message.mailbox.strip().lower()
    mapping = booking_deps.mappings.mapping_of(integration.id, mailbox)
    if mapping is None:  # unmapped (since the run started, or just now): nothing left to reconcile
        removed = _forget_schedule(deps, integration, mailbox)
        if deps.runs.get(integration.id, message.run_id) is not None:  # not an unmapping's own step
            deps.runs.mapping_done(integration.id, message.run_id, Repairs())
        return Repairs(schedule=removed)
    try:
        # Outlook → JRNI first: an Outlook deletion read here is the adviser's word (the lock decides what it means),
        # and must not be taken below for an item lost behind calsync's back.
        report = sync_mailbox(
            deps.mailbox, InboundMessage(integration.id, mailbox, WakeReason.RECONCILE), force=message.force
        )
        repairs = Repairs(
            updated=len(report.reverted),
            blocked=report.created,
            moved=report.moved,
            released=report.removed,
            bookings_changed=len(report.bookings_changed),
        )
        if message.deep:
            repairs += _reconcile_items(deps, integration, mapping, force=message.force)
    except HeldBackError as exc:
        _record(deps, mapping, SyncState.NEEDS_ATTENTION, str(exc))
        deps.runs.mapping_done(integration.id, message.run_id, Repairs())
        logger.warning("mass delete refused", extra={"mailbox": mailbox, "reason": str(exc)})
        return Repairs()
    except PermanentError as exc:
        _record(deps, mapping, SyncState.ERROR, f"reconcile of {mailbox} failed: {exc}")
        deps.runs.mapping_done(integration.id, message.run_id, Repairs())
        raise
    _record(deps, mapping, SyncState.OK, _described(repairs, message.deep))
    deps.runs.reconciled(integration.id, mailbox, booking_deps.clock(), repairs)
    deps.runs.mapping_done(integration.id, message.run_id, repairs)
    # Drift is what a missed signal left wrong; a re-render follows the operator's own template change.
    drift = repairs.total - repairs.rerendered - repairs.schedule
    if drift:
        booking_deps.telemetry.count(Metric.REPAIRED_BY_RECONCILE, drift, integration_id=integration.id)
    if repairs.total:
        logger.info(
            "reconcile repaired drift" if drift else "reconcile re-rendered items",
            extra={"mailbox": mailbox, "run_id": message.run_id, "repaired": repairs.as_dict()},
        )
    return repairs


def _forget_schedule(deps: ReconcileDeps, integration: Integration, mailbox: str) -> int:
    """Remove the time-outside-working-hours items of the integration from a mailbox no longer mapped; how many."""
    if deps.schedules_for is None:
        return 0
    writer = deps.schedules_for(integration)
    try:
        items = writer.written(mailbox, integration.id)
        for item in items:
            writer.remove(mailbox, item.item_id)
    except PermanentError as exc:  # the mailbox cannot be opened any more: nothing of ours to reach there
        logger.warning(
            "schedule items of an unmapped mailbox not removed",
            extra={"mailbox": mailbox, "reason": str(exc)},
        )
        return 0
    return len(items)


# Updates applied side by side in a deep reconcile (each is one EWS request; Microsoft advises at most 10 at once per
# account, and other mappings of the integration run beside this one).
_UPDATES_AT_ONCE = 4


def _reconcile_items(
    deps: ReconcileDeps, integration: Integration, mapping: Mapping, *, force: bool
) -> Repairs:
    """The mailbox against JRNI's bookings for the mapped calendar in the window (the deep half)."""
    booking_deps = deps.mailbox.booking
    now = booking_deps.clock()
    window = InboundOptions(now=now).window
    source = booking_deps.bookings_for(integration)
    calendar = booking_deps.calendar_for(integration)
    company = company_of(deps.mailbox, integration, mapping)
    # Independent reads at once: JRNI's bookings, the links, and the listing of our items in the mailbox.
    listing = parallel.start(calendar.our_items, mapping.mailbox, integration.id)
    links_read = parallel.start(booking_deps.links.links_in, integration.id, mapping.mailbox)
    bookings = source.bookings_of(company, mapping.kind, mapping.jrni_id, window)
    wanted = {
        booking.key: (booking, content)
        for booking in bookings
        if booking.window.overlaps(window)
        for content in [_wanted_content(deps, integration, mapping, booking, source)]
        if content is not None
    }
    listed = [Listed(item.jrni_key, item.ref.remote_id, item.window) for item in listing.result()]
    plan = plan_mailbox(
        mapping,
        wanted,
        links_read.result(),
        listed,
        window,
        now=now,
        appointment_lock=integration.appointment_lock,
    )
    if not force and held_back(plan.linked_recheck, plan.linked_in_window):
        booking_deps.telemetry.count(Metric.MASS_DELETE_REFUSED, integration_id=integration.id)
        raise HeldBackError(
            f"JRNI lists {plan.linked_in_window - plan.linked_recheck} of the {plan.linked_in_window} bookings calsync "
            f"shows in {mapping.mailbox} for the next {SYNC_WINDOW_DAYS} days, so {plan.linked_recheck} items would be "
            f"removed; nothing was removed. If JRNI is right (bookings really cancelled or moved), resync this "
            f"mapping with force: true; otherwise check the integration's JRNI company and credentials"
        )
    executor = Executor(
        integration.id, calendar, booking_deps.links, booking_deps.clock, booking_deps.telemetry
    )
    creates = [a for a in plan.actions if isinstance(a, CreateEvent)]
    others = [a for a in plan.actions if not isinstance(a, CreateEvent | RemoveStrayItem)]
    writes = [*creates, *others]
    total = len(writes)

    def progress(done: int) -> None:
        deps.runs.progress(integration.id, mapping.mailbox, total, done)

    if total:
        progress(0)
    report = executor.create_all(mapping.mailbox, creates, progress) if creates else ExecutionReport()
    for start in range(0, len(others), _UPDATES_AT_ONCE):
        done = executor.apply(others[start : start + _UPDATES_AT_ONCE])
        report.failed.update(done.failed)
        report.extras_removed += done.extras_removed
        progress(len(creates) + min(len(others), start + _UPDATES_AT_ONCE))
    if report.failed:
        raise PermanentError("; ".join(f"{m}: {why}" for m, why in sorted(report.failed.items())))
    removed = len(report.extras_removed)
    for stray in plan.actions:
        if isinstance(stray, RemoveStrayItem):
            calendar.delete_event(stray.mailbox, stray.remote_id)
            removed += 1
    # What JRNI's list does not explain, read again one by one: the event path decides, for every mailbox.
    by_key: dict[JrniKey, list[Listed]] = {}
    for item in listed:
        by_key.setdefault(item.jrni_key, []).append(item)
    for key in plan.recheck:
        result = sync_booking(booking_deps, OutboundMessage(integration.id, key, "reconcile"))
        mine = [a for a in result.actions if not isinstance(a, SkipUnmapped) and a.mailbox == mapping.mailbox]
        removed += sum(isinstance(a, DeleteEvent) for a in mine)
        booking = result.booking
        owned = (
            booking is not None
            and booking.is_active
            and (mapping.kind, mapping.jrni_id) in booking.calendar_ids()
        )
        if not mine and not owned:
            # Stamped by us, with no link here, for a booking gone from this calendar: removed.
            for item in by_key.get(key, []):
                calendar.delete_event(mapping.mailbox, item.remote_id)
                removed += 1
    created = sum(isinstance(a, CreateEvent) for a in writes)
    rerendered = sum(isinstance(a, UpdateEvent) and a.rerender for a in writes)
    updated = sum(isinstance(a, UpdateEvent | RecoverEvent) for a in writes) - rerendered
    blocked = _reblock(deps, integration, mapping, company, {b.key for b in bookings}, window)
    schedule = 0
    if deps.schedules_for is not None:
        writer = deps.schedules_for(integration)
        schedule = sync_schedule(writer, source, integration, mapping, company, bookings, window)
    return Repairs(
        created=created,
        updated=updated,
        rerendered=rerendered,
        removed=removed,
        blocked=blocked,
        schedule=schedule,
    )


def _reblock(
    deps: ReconcileDeps,
    integration: Integration,
    mapping: Mapping,
    company: str,
    live: set[JrniKey],
    window: TimeWindow,
) -> int:
    """Blocks calsync made for Outlook items still busy, that JRNI no longer has (removed by a JRNI user): made again,
    carrying the same marker. The Outlook item is the adviser's word; JRNI's list is read inside the window only."""
    links = deps.mailbox.booking.block_links
    gone = [
        link
        for link in links.blocks(integration.id, mapping.mailbox)
        if link.state is LinkState.SYNCED
        and link.jrni_key is not None
        and link.jrni_key not in live
        and link.window.overlaps(window)
    ]
    writer = deps.mailbox.writer_for(integration) if gone else None
    for link in gone:
        assert writer is not None
        made = writer.create_block(
            company,
            mapping.kind,
            mapping.jrni_id,
            link.window,
            link.title,
            block_marker(integration.id, link.remote_id),
        )
        links.save(replace(link, jrni_key=made.jrni_key, slot_id=made.slot_id))
        logger.info(
            "block removed in JRNI made again",
            extra={"mailbox": mapping.mailbox, "item": link.remote_id, "block": str(made.jrni_key)},
        )
    return len(gone)


def _wanted_content(
    deps: ReconcileDeps, integration: Integration, mapping: Mapping, booking: Booking, source: BookingSource
) -> EventContent | None:
    """How ``booking`` should show in this mailbox, or None when it should not (the event path's rules); ``source``
    is the JRNI the booking was read from (its company, service and staff for the templates)."""
    content = content_of(integration, booking, source) if booking.is_active else None
    actions = plan_outbound(
        content,
        booking,
        [mapping],
        [],
        integration.options,
        mirrored_from_exchange=is_our_block(deps.mailbox.booking, integration, booking),
    )
    return content if any(isinstance(a, CreateEvent) for a in actions) else None


def _described(repairs: Repairs, deep: bool) -> str:
    what = "deep reconcile" if deep else "reconcile"
    if not repairs.total:
        return f"{what}: nothing had drifted"
    done = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in repairs.as_dict().items() if n)
    return f"{what} repaired: {done}"


def _record(deps: ReconcileDeps, mapping: Mapping, state: SyncState, detail: str) -> None:
    deps.mailbox.booking.mappings.record_status(
        MappingStatus(
            mapping.integration_id,
            mapping.kind,
            mapping.jrni_id,
            state,
            detail,
            deps.mailbox.booking.clock(),
            RECONCILE,
        )
    )


__all__ = [
    "RECONCILE",
    "ReconcileDeps",
    "reconcile",
    "reconcile_mapping",
    "request_run",
    "schedule",
    "start_run",
]
