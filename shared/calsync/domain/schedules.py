"""Working schedules and the busy time outside them: what JRNI says a staff member works, what their Outlook calendar
should show as busy (weekly series, their exceptions, single items), and what calsync has written there so far.

Times of day are local to the company's time zone; instants are aware datetimes (UTC in plans). Standard library only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from types import MappingProxyType

from calsync.domain.model import TimeWindow

MINUTES_PER_DAY = 24 * 60


def minute_of_day(value: time | None) -> int:
    """Minutes since midnight; None stands for the midnight that ends the day (24:00)."""
    return MINUTES_PER_DAY if value is None else value.hour * 60 + value.minute


def _time_of(minute: int) -> time:
    return time(minute // 60, minute % 60)


def _whole_minute(value: time, name: str) -> None:
    if value.second or value.microsecond or value.tzinfo is not None:
        raise ValueError(f"{name} must be a naive local time in whole minutes")


@dataclass(frozen=True)
class WorkingDay:
    """The local time ranges a staff member or resource works on one date; ``()``: not working that day.

    Each range is (start, end) with end None for midnight (24:00); ranges are sorted and merged (they neither
    overlap nor touch), in whole minutes.
    """

    day: date
    spans: tuple[tuple[time, time | None], ...] = ()

    def __post_init__(self) -> None:
        previous_end = -1
        for start, end in self.spans:
            _whole_minute(start, "a working span's start")
            if end is not None:
                _whole_minute(end, "a working span's end")
            if minute_of_day(start) >= minute_of_day(end):
                raise ValueError("a working span must end after it starts")
            if minute_of_day(start) <= previous_end:
                raise ValueError("working spans must be sorted and merged")
            previous_end = minute_of_day(end)

    @classmethod
    def of(cls, day: date, spans: Iterable[tuple[time, time | None]]) -> WorkingDay:
        """The working day of ``spans`` in any order, overlapping or touching ones joined, empty ones dropped."""
        merged: list[tuple[int, int]] = []
        for start, end in sorted((minute_of_day(a), minute_of_day(b)) for a, b in spans):
            if start >= end:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return cls(
            day, tuple((_time_of(a), None if b == MINUTES_PER_DAY else _time_of(b)) for a, b in merged)
        )


@dataclass(frozen=True)
class WeeklySeries:
    """A weekly recurring busy item, as Exchange expands it: on each of ``weekdays`` from ``first_day`` on, an
    occurrence starts at the local wall-clock ``start`` and lasts ``minutes`` of local wall-clock time."""

    key: str  # stable identity: the same weekly span has the same key, whatever the window
    weekdays: tuple[int, ...]  # 0 = Monday … 6 = Sunday (date.weekday()): the days an occurrence starts on
    start: time
    minutes: int
    first_day: date  # the first date the series may have an occurrence on (when it was first written)

    def __post_init__(self) -> None:
        _whole_minute(self.start, "a series' start")
        if not self.weekdays or any(not 0 <= day <= 6 for day in self.weekdays):
            raise ValueError("a weekly series starts on one or more weekdays (0 = Monday … 6 = Sunday)")
        if list(self.weekdays) != sorted(set(self.weekdays)):
            raise ValueError("a series' weekdays must be sorted and distinct")
        if not 0 < self.minutes < 7 * MINUTES_PER_DAY:
            raise ValueError("an occurrence lasts at least a minute and less than a week")


def series_key(weekdays: tuple[int, ...], start: time, minutes: int) -> str:
    """The identity of a weekly busy span: its local start minute, length and weekdays (``w:1020+960:0,1,2``)."""
    return f"w:{minute_of_day(start)}+{minutes}:{','.join(str(day) for day in weekdays)}"


def series_of_key(key: str, first_day: date | None) -> WeeklySeries | None:
    """The series ``series_key`` names, from ``first_day`` on; None for a key it does not make (or no first day)."""
    try:
        kind, rest = key.split(":", 1)
        span, days = rest.split(":", 1)
        start, minutes = (int(part) for part in span.split("+", 1))
        weekdays = tuple(int(day) for day in days.split(","))
        if kind != "w" or first_day is None:
            return None
        return WeeklySeries(key, weekdays, time(start // 60, start % 60), minutes, first_day)
    except ValueError:
        return None


@dataclass(frozen=True)
class OccurrenceChange:
    """An exception of a series: the occurrence the pattern puts at ``original_start`` shows ``window`` instead, or
    is deleted (``window`` None)."""

    original_start: datetime  # aware, UTC
    window: TimeWindow | None

    def __post_init__(self) -> None:
        if self.original_start.tzinfo is None:
            raise ValueError("original_start must be timezone-aware")


@dataclass(frozen=True)
class BusyPlan:
    """What the mailbox should show for the schedule: series, their exceptions inside the window, single items."""

    zone: str  # the IANA zone the series are in
    series: tuple[WeeklySeries, ...]
    changes: Mapping[
        str, tuple[OccurrenceChange, ...]
    ]  # by series key (every series has one), by original_start
    singles: tuple[TimeWindow, ...]  # sorted
    fingerprint: str  # of everything above except first_day: equal plans, equal prints
    # The window the plan speaks for: what was written outside it is history (or not yet planned) and left alone.
    # Not part of the fingerprint: a plan rolled forward that shows the same things prints the same.
    window: TimeWindow | None = None

    @classmethod
    def of(
        cls,
        zone: str,
        series: tuple[WeeklySeries, ...],
        changes: Mapping[str, tuple[OccurrenceChange, ...]],
        singles: tuple[TimeWindow, ...],
        window: TimeWindow | None = None,
    ) -> BusyPlan:
        """A plan with its fingerprint computed, its changes frozen."""
        frozen = MappingProxyType(dict(changes))
        return cls(zone, series, frozen, singles, busy_fingerprint(zone, series, frozen, singles), window)


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _window(value: TimeWindow | None) -> list[str] | None:
    return None if value is None else [_instant(value.start), _instant(value.end)]


def busy_fingerprint(
    zone: str,
    series: tuple[WeeklySeries, ...],
    changes: Mapping[str, tuple[OccurrenceChange, ...]],
    singles: tuple[TimeWindow, ...],
) -> str:
    """Stable over equal plans (sha256, 16 hex digits); ``first_day`` is left out, so a plan rolled forward with the
    same series prints the same, and so is a series' empty list of changes."""
    canonical = json.dumps(
        [
            zone,
            sorted([s.key, list(s.weekdays), minute_of_day(s.start), s.minutes] for s in series),
            sorted(
                [key, [[_instant(c.original_start), _window(c.window)] for c in found]]
                for key, found in changes.items()
                if found
            ),
            sorted([_instant(w.start), _instant(w.end)] for w in singles),
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WrittenSeries:
    """A series calsync wrote into the mailbox, and the exceptions it applied to it."""

    key: str
    remote_id: str
    changes: tuple[OccurrenceChange, ...] = ()  # as applied


@dataclass(frozen=True)
class WrittenSingle:
    """A single busy item calsync wrote into the mailbox."""

    window: TimeWindow
    remote_id: str


@dataclass(frozen=True)
class WrittenSchedule:
    """Everything calsync has written into one mailbox for a schedule: the zone its series are in, series, singles."""

    zone: str
    series: tuple[WrittenSeries, ...] = ()
    singles: tuple[WrittenSingle, ...] = ()


@dataclass(frozen=True)
class WorkingSchedule:
    """A staff member's or resource's JRNI schedule over a range of dates: which, in which zone, each date's spans."""

    schedule_id: str
    zone: str  # the company's IANA zone, that the dates and times are in
    days: tuple[WorkingDay, ...]


@dataclass(frozen=True)
class WrittenItem:
    """A schedule item read back from the mailbox: a series (with the exceptions it has) or a single item."""

    item_id: str
    key: str
    is_series: bool
    window: TimeWindow | None = None  # a single's
    modified: tuple[tuple[datetime, TimeWindow], ...] = ()  # a series': (original start, what it shows), UTC
    deleted: tuple[datetime, ...] = ()  # a series': original starts of deleted occurrences, UTC
    zone: str | None = None  # a series': the IANA zone it repeats in
    first_day: date | None = None  # a series': the first date of its pattern
