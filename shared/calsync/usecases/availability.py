"""The merged availability of one mapped staff member or resource ("why can't customers book Alice at 10:00?"): their
JRNI bookings and blocks, the busy time their Outlook calendar publishes, and the hours their JRNI schedule says they
work, over at most 7 days, as one timeline sorted by start.

What calsync wrote into Outlook itself is said so in an interval's ``detail``, as far as free/busy lets it be told: an
item with the subject of the integration's time-outside-working-hours items (``options.schedule_busy.subject``, while
they are on), and an item whose times are exactly those of one of the calendar's JRNI bookings or blocks (with its
buffers when the integration shows them), which is how calsync writes them. A look-alike an adviser made by hand at
the very same times is reported so too; without subjects (free/busy-only access) only the times can tell.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from calsync import parallel
from calsync.domain import (
    Booking,
    BookingKind,
    BookingStatus,
    FreeBusy,
    Integration,
    InvalidInputError,
    Mapping,
    NotFoundError,
    PermanentError,
    ResourceKind,
    TimeWindow,
    validation,
)
from calsync.domain.availability import Availability, AvailabilityInterval, BusyTime, IntervalSource
from calsync.domain.markers import has_marker
from calsync.domain.schedules import WorkingSchedule
from calsync.ports import BookingSource
from calsync.usecases.admin import AdminDeps, find_integration

MAX_WINDOW = timedelta(days=7)
WRITTEN_BY_CALSYNC = "written by calsync"
_BUSY_LABELS = {
    FreeBusy.BUSY: "Busy",
    FreeBusy.TENTATIVE: "Tentative",
    FreeBusy.OOF: "Out of office",
    FreeBusy.WORKING_ELSEWHERE: "Working elsewhere",
}
# Intervals starting together: JRNI's first, then Outlook's, the working hours last.
_ORDER = {
    IntervalSource.JRNI_BOOKING: 0,
    IntervalSource.JRNI_BLOCK: 1,
    IntervalSource.OUTLOOK: 2,
    IntervalSource.WORKING_HOURS: 3,
}


def availability_window(start: str, end: str) -> TimeWindow:
    """The window an operator asks for: two ISO 8601 instants with their offsets, start before end, at most 7 days
    apart; InvalidInputError otherwise."""
    window = TimeWindow(_instant(start, "start"), _instant(end, "end")) if start and end else None
    if window is None:
        raise InvalidInputError("start and end are both required (ISO 8601 with an offset)")
    if window.start >= window.end:
        raise InvalidInputError(f"start ({start}) must be before end ({end})")
    if window.end - window.start > MAX_WINDOW:
        raise InvalidInputError(
            f"the window may span at most {MAX_WINDOW.days} days: ask for {start} to {end} in parts"
        )
    return window


def _instant(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{name} {text[:40]!r} is not an ISO 8601 instant, e.g. 2026-12-10T00:00:00+00:00"
        ) from None
    if value.tzinfo is None:
        raise InvalidInputError(f"{name} {text[:40]!r} has no offset: add one (Z, +00:00, +01:00)")
    return value


def resource_kind(text: str) -> ResourceKind:
    """``person`` or ``resource``; InvalidInputError otherwise."""
    try:
        return ResourceKind(text)
    except ValueError:
        raise InvalidInputError(f"kind {text[:40]!r} is not person or resource") from None


def availability(
    deps: AdminDeps, integration_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow
) -> Availability:
    """The merged timeline of the staff member or resource mapped in this integration (NotFoundError when it is not,
    or there is no such integration): JRNI and Exchange are read at once, within the request's deadline."""
    integration = find_integration(deps.integrations, integration_id)
    jrni_id = validation.jrni_id(jrni_id)
    mapping = next(
        (m for m in deps.mappings.mappings(integration.id) if (m.kind, m.jrni_id) == (kind, jrni_id)), None
    )
    if mapping is None:
        raise NotFoundError(f"{kind.value} {jrni_id} is not mapped in integration {integration.id!r}")
    if deps.availability_for is None:
        raise PermanentError(
            "this deployment cannot read Outlook's availability: its admin function was built without it"
        )
    source = deps.bookings_for(integration)
    reader = deps.availability_for(integration)
    outlook = parallel.start(reader.busy_times, mapping.mailbox, window)
    company = _company_of(source, mapping)
    bookings = parallel.start(source.bookings_of, company, kind, jrni_id, window)
    schedule = source.schedule_of(company, kind, jrni_id, window)
    return merged(integration, mapping, window, bookings.result(), schedule, outlook.result())


def _company_of(source: BookingSource, mapping: Mapping) -> str:
    """The JRNI company of the mapped staff member or resource (its bookings and schedule are read there)."""
    for calendar in source.calendars():
        if (calendar.kind, calendar.jrni_id) == (mapping.kind, mapping.jrni_id):
            return calendar.company_id
    raise NotFoundError(
        f"JRNI no longer has {mapping.kind.value} {mapping.jrni_id} (mapped to {mapping.mailbox}): unmap it"
    )


def merged(
    integration: Integration,
    mapping: Mapping,
    window: TimeWindow,
    bookings: list[Booking],
    schedule: WorkingSchedule | None,
    busy: list[BusyTime],
) -> Availability:
    """The three sources as one timeline over ``window``, sorted by start (then by source, then end)."""
    live = [b for b in bookings if b.is_active and b.window.overlaps(window)]
    intervals = [
        *(_booking_interval(integration, booking) for booking in live),
        *(_outlook_interval(integration, live, time) for time in busy if time.window.overlaps(window)),
        *(_working_hours(schedule, window) if schedule is not None else ()),
    ]
    intervals.sort(key=lambda i: (i.window.start, _ORDER[i.source], i.window.end, i.label))
    return Availability(
        kind=mapping.kind,
        jrni_id=mapping.jrni_id,
        mailbox=mapping.mailbox,
        zone=_zone(schedule, live),
        window=window,
        intervals=tuple(intervals),
    )


def _booking_interval(integration: Integration, booking: Booking) -> AvailabilityInterval:
    """A JRNI booking by its service and client; a block as blocked, said so when calsync made it from Outlook."""
    booking_id = booking.key.booking_id
    if booking.kind is BookingKind.BLOCK:
        note = str(booking.details.get("private_note") or "")
        made = has_marker([note], integration.id)
        detail = f"JRNI block {booking_id}" + (", made by calsync from an Outlook item" if made else "")
        return AvailabilityInterval(booking.window, IntervalSource.JRNI_BLOCK, "Blocked", detail)
    service = str(booking.details.get("service_name") or "") or "Booking"
    client = str(booking.details.get("client_name") or "")
    label = f"{service}: {client}" if client else service
    pending = booking.status is not BookingStatus.CONFIRMED
    detail = f"JRNI booking {booking_id}" + (f" ({booking.status.value})" if pending else "")
    return AvailabilityInterval(booking.window, IntervalSource.JRNI_BOOKING, label, detail)


def _outlook_interval(
    integration: Integration, bookings: list[Booking], busy: BusyTime
) -> AvailabilityInterval:
    """Outlook's busy time: its subject when Exchange gave it, else what it shows as; and whether calsync wrote it."""
    shows = _BUSY_LABELS.get(busy.busy_type, "Busy")
    notes: list[str] = []
    if busy.private:
        label = "Private appointment"
        notes.append("private in Outlook: its subject is not shown")
    elif busy.detailed:
        label = busy.subject or "(no subject)"
        if busy.busy_type is not FreeBusy.BUSY:
            notes.append(shows)
    else:
        label = shows
        notes.append("Exchange gives only free/busy for this mailbox: no subjects")
    written = _written_by_calsync(integration, bookings, busy)
    if written:
        notes.insert(0, written)
    return AvailabilityInterval(busy.window, IntervalSource.OUTLOOK, label, "; ".join(notes) or None)


def _written_by_calsync(integration: Integration, bookings: list[Booking], busy: BusyTime) -> str | None:
    schedule_busy = integration.options.schedule_busy
    if schedule_busy.enabled and busy.subject == schedule_busy.subject:
        return f"{WRITTEN_BY_CALSYNC} (outside working hours)"
    for booking in bookings:
        if booking.kind is BookingKind.BLOCK and not integration.options.sync_jrni_blocks:
            continue
        shown = (
            booking.window.widened(booking.pre_time, booking.post_time)
            if integration.options.include_buffers
            else booking.window
        )
        if shown.utc() == busy.window.utc():
            what = "block" if booking.kind is BookingKind.BLOCK else "booking"
            return f"{WRITTEN_BY_CALSYNC} (JRNI {what} {booking.key.booking_id})"
    return None


def _working_hours(schedule: WorkingSchedule, window: TimeWindow) -> list[AvailabilityInterval]:
    """Each working span of the schedule, in the company's zone, the part of it inside ``window``."""
    zone = _zone_info(schedule.zone)
    found = []
    for day in schedule.days:
        for start, end in day.spans:
            begins = datetime.combine(day.day, start, zone)
            ends = (
                datetime.combine(day.day + timedelta(days=1), time(0), zone)
                if end is None
                else datetime.combine(day.day, end, zone)
            )
            # JRNI answers whole dates in the company's zone: the window may start or end inside them.
            if begins < window.end and window.start < ends:
                span = TimeWindow(max(begins, window.start), min(ends, window.end))
                found.append(AvailabilityInterval(span, IntervalSource.WORKING_HOURS, "Working hours"))
    return found


def _zone_info(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise PermanentError(f"JRNI's schedule names a time zone calsync does not know: {zone!r}") from None


def _zone(schedule: WorkingSchedule | None, bookings: list[Booking]) -> str | None:
    """The company's zone: the schedule's, else the one JRNI gives with a booking."""
    if schedule is not None:
        return schedule.zone
    return next((str(b.details["time_zone"]) for b in bookings if b.details.get("time_zone")), None)
