"""Time outside a mapped staff member's or resource's JRNI working schedule, shown as busy items in their calendar.

At each deep reconcile of a mapping: what the mailbox holds (read back from Exchange, so an item an adviser deleted is
written again), what the schedule says over the sync window (read fresh from JRNI, so a schedule change shows), cut
around the calendar's JRNI bookings; ``engine.schedules`` plans the fewest writes between the two. With the option
off, or no schedule, every such item of the integration in the mailbox is removed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from calsync.domain import (
    Booking,
    Integration,
    Mapping,
    OccurrenceDeletedError,
    SeriesGoneError,
    TimeWindow,
)
from calsync.domain.schedules import (
    BusyPlan,
    OccurrenceChange,
    WeeklySeries,
    WrittenItem,
    WrittenSchedule,
    WrittenSeries,
    WrittenSingle,
    series_of_key,
)
from calsync.engine.schedules import (
    ChangeOccurrence,
    CreateSeries,
    CreateSingle,
    RemoveSeries,
    RemoveSingle,
    RestoreOccurrence,
    ScheduleAction,
    busy_plan,
    plan_schedule,
)
from calsync.ports import BookingSource, ScheduleWriter

logger = logging.getLogger(__name__)


def sync_schedule(
    writer: ScheduleWriter,
    source: BookingSource,
    integration: Integration,
    mapping: Mapping,
    company_id: str,
    bookings: Sequence[Booking],
    window: TimeWindow,
) -> int:
    """Bring the mailbox's schedule items to what the schedule says over ``window``; the number of writes."""
    options = integration.options.schedule_busy
    items = writer.written(mapping.mailbox, integration.id)
    written, existing = _written(items)
    desired = BusyPlan.of(written.zone, (), {}, ())  # nothing, everywhere: every item goes
    if options.enabled:
        schedule = source.schedule_of(company_id, mapping.kind, mapping.jrni_id, window)
        if schedule is not None:
            shown = [_shown(b, integration) for b in bookings if b.is_active and b.window.overlaps(window)]
            desired = busy_plan(schedule.days, ZoneInfo(schedule.zone), window, shown, existing)
    actions = plan_schedule(desired, written)
    if not actions:
        return 0
    return _apply(writer, integration, mapping.mailbox, desired, actions)


def _shown(booking: Booking, integration: Integration) -> TimeWindow:
    """The time the booking's own item covers in the calendar (with its buffers when the integration shows them)."""
    if integration.options.include_buffers:
        return booking.window.widened(booking.pre_time, booking.post_time)
    return booking.window


def _apply(
    writer: ScheduleWriter,
    integration: Integration,
    mailbox: str,
    desired: BusyPlan,
    actions: list[ScheduleAction],
) -> int:
    options = integration.options.schedule_busy
    subject, free_busy = options.subject, options.free_busy.value
    series = {s.key: s for s in desired.series}
    ids: dict[str, str] = {}  # series made here, by key
    writes = 0

    def create(made: WeeklySeries) -> str:
        return writer.create_series(
            mailbox,
            integration_id=integration.id,
            key=made.key,
            zone=desired.zone,
            weekdays=made.weekdays,
            start=made.start,
            minutes=made.minutes,
            first_day=made.first_day,
            subject=subject,
            free_busy=free_busy,
        )

    def recreate(key: str, remote_id: str) -> int:
        """A series with a deleted occurrence that is wanted back: written again, with its changes."""
        writer.remove(mailbox, remote_id)
        ids[key] = create(series[key])
        for change in desired.changes.get(key, ()):
            writer.change_occurrence(mailbox, ids[key], change.original_start, change.window)
        return 2 + len(desired.changes.get(key, ()))

    recreated: set[str] = set()
    for action in actions:
        if isinstance(action, RemoveSeries | RemoveSingle):
            writer.remove(mailbox, action.remote_id)
        elif isinstance(action, CreateSeries):
            ids[action.series.key] = create(action.series)
        elif isinstance(action, ChangeOccurrence):
            if action.key in recreated:
                continue
            master = action.remote_id or ids[action.key]
            try:
                writer.change_occurrence(mailbox, master, action.change.original_start, action.change.window)
            except (
                SeriesGoneError
            ):  # deleted in Outlook since it was read: the next reconcile writes it again
                logger.info("schedule series gone while changing it", extra={"mailbox": mailbox})
                continue
        elif isinstance(action, RestoreOccurrence):
            if action.key in recreated:
                continue
            try:
                writer.restore_occurrence(mailbox, action.remote_id, action.original_start)
            except OccurrenceDeletedError:
                writes += recreate(action.key, action.remote_id)
                recreated.add(action.key)
                continue
        elif isinstance(action, CreateSingle):
            writer.create_single(
                mailbox,
                integration_id=integration.id,
                key=f"s:{action.window.start.isoformat()}",
                window=action.window,
                subject=subject,
                free_busy=free_busy,
            )
        writes += 1
    return writes


def _written(items: Sequence[WrittenItem]) -> tuple[WrittenSchedule, list[WeeklySeries]]:
    """What the mailbox holds, as the planner compares it; and its series as the planner keeps them (by key, with
    their first day)."""
    zones = {item.zone for item in items if item.is_series and item.zone}
    series: list[WrittenSeries] = []
    existing: list[WeeklySeries] = []
    singles: list[WrittenSingle] = []
    for item in items:
        if item.is_series:
            changes = [OccurrenceChange(start, shown) for start, shown in item.modified]
            changes += [OccurrenceChange(start, None) for start in item.deleted]
            series.append(
                WrittenSeries(item.key, item.item_id, tuple(sorted(changes, key=lambda c: c.original_start)))
            )
            parsed = series_of_key(item.key, item.first_day)
            if parsed is not None:
                existing.append(parsed)
        elif item.window is not None:
            singles.append(WrittenSingle(item.window, item.item_id))
    # Series in two zones (the company's zone changed mid-way): none is the zone, so every series is rewritten.
    zone = zones.pop() if len(zones) == 1 else ""
    return WrittenSchedule(zone, tuple(series), tuple(singles)), existing
