"""The time outside a working schedule, shown as busy in Outlook: what the mailbox should show (``busy_plan``) and
what must be written for it to show that (``plan_schedule``).

**What the mailbox should show.** The weekly pattern (per weekday, what most of its dates in the window work) leaves
busy spans in the week; each distinct (local start, length) becomes one weekly series on the weekdays it starts on
("weekday evenings" Mon 17:00 → Tue 09:00 on Mon, Tue, Wed; "the long weekend" Thu 17:00 → Mon 09:00 on Thu).
A week without any working time has no series: all its busy time is single items (one occurrence a day cannot be
weekly, and a daily series of 24 hours would have occurrences touching). The actual busy time, date by date, cut
around JRNI bookings (pieces under a minute dropped), is then matched with the series' occurrences:

| an occurrence overlapping the window                            | becomes                                           |
|-----------------------------------------------------------------|---------------------------------------------------|
| covers exactly its part of an actual busy span                  | nothing (as the pattern predicts)                 |
| overlaps busy spans                                             | assigned to the one it overlaps most (ties: the   |
|                                                                 | earliest), where it shows a piece of that span    |
| shows a piece other than itself                                 | OccurrenceChange to that piece (modified)         |
| overlaps no busy span, or its span is shown by others without it| OccurrenceChange to None (deleted)                |
| (a busy span no occurrence is assigned to)                      | a single item                                     |

A busy span assigned several occurrences is shared between them, in order, each showing one piece; the time between
two of them goes to whichever side leaves more occurrences as they are (on a tie, the later one starts earlier), so
that a day off costs one change: the Tuesday-evening occurrence starts at Tuesday 09:00 instead of 17:00. A piece may
not start on or before the previous occurrence's original start nor end after the next one's (Exchange refuses an
occurrence moved onto or past its neighbour); an occurrence that cannot take its piece is deleted and the span shared
again without it.

Occurrences are Exchange's expansion of a weekly series: the local wall-clock start on each weekday date, lasting the
local wall-clock length, each end put in the zone (zoneinfo, fold 0), so no exception is needed across DST.
Outside the window an occurrence keeps the pattern's shape: one reaching into the window from before it keeps its
original start, one reaching past the window's end keeps the pattern's end; only its part inside the window is
planned.

**What must be written** (``plan_schedule``), desired plan against what calsync wrote:

| series (by key)             | exceptions (by original start) / singles (by exact window) | actions                    |
|-----------------------------|------------------------------------------------------------|----------------------------|
| wanted, not written         | its changes                                                | CreateSeries, then ChangeOccurrence (no remote id) |
| written, not wanted         | -                                                          | RemoveSeries               |
| both, other zone            | -                                                          | RemoveSeries, CreateSeries (all of them) |
| both                        | wanted, not applied or applied otherwise                   | ChangeOccurrence           |
| both                        | applied, no longer wanted                                  | RestoreOccurrence          |
| both                        | applied as wanted                                          | nothing                    |
| -                           | single wanted, not written / written, not wanted           | CreateSingle / RemoveSingle |
| -                           | written twice                                              | RemoveSingle of the extra  |

What was written outside the plan's window (exceptions of occurrences starting after it or ending before it, singles
not overlapping it) is history or not yet planned, and left alone: rolling the window forward rewrites nothing already
right. An occurrence begun before the window and a single reaching into it are compared by their part inside it.
Order: removals (by key, then singles by time), then new series, then exceptions (in the plan's order of series, by
original start), then new singles (by time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from calsync.domain.model import TimeWindow
from calsync.domain.schedules import (
    MINUTES_PER_DAY,
    BusyPlan,
    OccurrenceChange,
    WeeklySeries,
    WorkingDay,
    WrittenSchedule,
    WrittenSeries,
    minute_of_day,
    series_key,
)

MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
# Busy time shorter than this (a booking ending a few seconds before working time) is not worth an item.
SHORTEST_BUSY = timedelta(minutes=1)

Span = tuple[datetime, datetime]  # [start, end) in UTC
Spans = tuple[tuple[time, time | None], ...]


# ---- actions ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateSeries:
    """Write a new weekly series in ``zone``; its exceptions follow as ChangeOccurrence actions."""

    series: WeeklySeries
    zone: str


@dataclass(frozen=True)
class RemoveSeries:
    key: str
    remote_id: str


@dataclass(frozen=True)
class ChangeOccurrence:
    """Modify or delete one occurrence; ``remote_id`` None: the series is created by this same plan."""

    key: str
    change: OccurrenceChange
    remote_id: str | None


@dataclass(frozen=True)
class RestoreOccurrence:
    """An applied exception no longer wanted: the occurrence shows as the pattern predicts again."""

    key: str
    original_start: datetime
    remote_id: str


@dataclass(frozen=True)
class CreateSingle:
    window: TimeWindow


@dataclass(frozen=True)
class RemoveSingle:
    remote_id: str
    window: TimeWindow


ScheduleAction = (
    CreateSeries | RemoveSeries | ChangeOccurrence | RestoreOccurrence | CreateSingle | RemoveSingle
)


# ---- interval arithmetic (UTC) ---------------------------------------------------------------------------------------


def _merged(spans: Iterable[Span]) -> list[Span]:
    """Sorted, with overlapping and touching spans joined; empty ones dropped."""
    out: list[Span] = []
    for start, end in sorted(s for s in spans if s[0] < s[1]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _without(spans: list[Span], cuts: list[Span]) -> list[Span]:
    """``spans`` minus ``cuts`` (both sorted and disjoint)."""
    out: list[Span] = []
    for start, end in spans:
        cursor = start
        for cut_start, cut_end in cuts:
            if cut_end <= cursor or cut_start >= end:
                continue
            if cut_start > cursor:
                out.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
        if cursor < end:
            out.append((cursor, end))
    return out


def _overlap(a: Span, b: Span) -> timedelta:
    return max(timedelta(0), min(a[1], b[1]) - max(a[0], b[0]))


# ---- local time ------------------------------------------------------------------------------------------------------


def _instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time (minutes past ``day``'s midnight, may pass into later days), read in
    ``zone`` with fold 0, as Exchange and the EWS emulator read it."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    return wall.replace(tzinfo=zone).astimezone(UTC)


def local_dates(window: TimeWindow, zone: ZoneInfo) -> list[date]:
    """The local dates the window touches, in order."""
    if window.end <= window.start:
        return []
    first = window.start.astimezone(zone).date()
    last = (window.end - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# ---- the weekly pattern ----------------------------------------------------------------------------------------------


def weekly_pattern(schedule: dict[date, Spans], dates: Sequence[date]) -> dict[int, Spans]:
    """Per weekday, the spans most of its dates have (ties: the earliest date's); a weekday without dates: none."""
    votes: dict[int, Counter[Spans]] = {weekday: Counter() for weekday in range(7)}
    first_seen: dict[tuple[int, Spans], date] = {}
    for day in sorted(dates):
        spans = schedule.get(day, ())
        votes[day.weekday()][spans] += 1
        first_seen.setdefault((day.weekday(), spans), day)
    pattern: dict[int, Spans] = {}
    for weekday, counted in votes.items():
        if counted:
            pattern[weekday] = max(
                counted, key=lambda spans: (counted[spans], -first_seen[weekday, spans].toordinal())
            )
        else:
            pattern[weekday] = ()
    return pattern


def weekly_busy(pattern: dict[int, Spans]) -> list[tuple[int, int]]:
    """The busy spans of the pattern week as (start minute of the week, length in minutes): the complement of the
    working spans around the week, merged across midnights and across the Sunday → Monday wrap. A week without any
    working time has none (it is not a weekly series: every busy span becomes a single item)."""
    working: list[tuple[int, int]] = []
    for weekday in range(7):
        for start, end in pattern.get(weekday, ()):
            offset = weekday * MINUTES_PER_DAY
            span = (offset + minute_of_day(start), offset + minute_of_day(end))
            if working and span[0] <= working[-1][1]:
                working[-1] = (working[-1][0], max(working[-1][1], span[1]))
            else:
                working.append(span)
    if not working:
        return []
    wrapped = [*working, (working[0][0] + MINUTES_PER_WEEK, working[0][1] + MINUTES_PER_WEEK)]
    return [(a[1] % MINUTES_PER_WEEK, b[0] - a[1]) for a, b in pairwise(wrapped) if b[0] > a[1]]


def weekly_series(
    pattern: dict[int, Spans], first_day: date, existing: Sequence[WeeklySeries]
) -> list[WeeklySeries]:
    """One series per distinct (local start, length) of the pattern's busy spans, on the weekdays they start on; a
    series already written (same key) keeps its ``first_day``."""
    groups: dict[tuple[int, int], list[int]] = {}
    for week_minute, minutes in weekly_busy(pattern):
        groups.setdefault((week_minute % MINUTES_PER_DAY, minutes), []).append(week_minute // MINUTES_PER_DAY)
    known = {s.key: s for s in existing}
    found: list[WeeklySeries] = []
    for (start_minute, minutes), weekdays in groups.items():
        days = tuple(sorted(weekdays))
        start = time(start_minute // 60, start_minute % 60)
        key = series_key(days, start, minutes)
        kept = known.get(key)
        found.append(WeeklySeries(key, days, start, minutes, kept.first_day if kept else first_day))
    return sorted(found, key=lambda s: (s.weekdays[0], minute_of_day(s.start), s.key))


# ---- occurrences -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a series as Exchange expands it (UTC), with its neighbours' original starts."""

    key: str
    start: datetime  # the original start
    end: datetime
    previous_start: datetime | None  # the series' occurrence before it, None when it is the first
    next_start: datetime

    @property
    def span(self) -> Span:
        return (self.start, self.end)


def occurrences(series: WeeklySeries, zone: ZoneInfo, window: TimeWindow) -> list[Occurrence]:
    """The occurrences of ``series`` that overlap ``window``, in order."""
    dates = local_dates(window, zone)
    if not dates:
        return []
    # An occurrence lasts less than a week: any that reaches into the window starts at most 7 days before it; two
    # weeks more on each side hold its neighbours.
    first, last = dates[0] - timedelta(days=14), dates[-1] + timedelta(days=14)
    start_minute = minute_of_day(series.start)
    starts = [
        first + timedelta(days=n)
        for n in range((last - first).days + 1)
        if (first + timedelta(days=n)).weekday() in series.weekdays
        and first + timedelta(days=n) >= series.first_day
    ]
    found: list[Occurrence] = []
    for index, day in enumerate(starts):
        start = _instant(day, start_minute, zone)
        end = _instant(day, start_minute + series.minutes, zone)
        if start < window.end and end > window.start and index + 1 < len(starts):
            previous = _instant(starts[index - 1], start_minute, zone) if index else None
            found.append(
                Occurrence(series.key, start, end, previous, _instant(starts[index + 1], start_minute, zone))
            )
    return found


# ---- the busy time ---------------------------------------------------------------------------------------------------


def actual_busy(
    schedule: dict[date, Spans], zone: ZoneInfo, window: TimeWindow, bookings: Sequence[TimeWindow]
) -> list[Span]:
    """The window's time outside the working spans of its dates, merged, minus the bookings (UTC)."""
    working = _merged(
        (_instant(day, minute_of_day(start), zone), _instant(day, minute_of_day(end), zone))
        for day in local_dates(window, zone)
        for start, end in schedule.get(day, ())
    )
    busy = _without([(window.start.astimezone(UTC), window.end.astimezone(UTC))], working)
    booked = _merged((b.start.astimezone(UTC), b.end.astimezone(UTC)) for b in bookings)
    return [s for s in _without(busy, booked) if s[1] - s[0] >= SHORTEST_BUSY]


def _shown(occurrence: Occurrence, piece: Span, window: TimeWindow) -> Span | None:
    """What ``occurrence`` shows when it takes ``piece`` (None: it may not): outside the window it keeps the
    pattern's start and end; it may not start on or before its previous occurrence nor end after its next one."""
    start, end = piece
    if start >= end:
        return None
    if start <= window.start and occurrence.start < start:
        start = occurrence.start
    if end >= window.end and occurrence.end > end:
        end = occurrence.end
    if occurrence.previous_start is not None and start <= occurrence.previous_start:
        return None
    if end > occurrence.next_start:
        return None
    return (start, end)


def _share(span: Span, chain: list[Occurrence], window: TimeWindow) -> list[Span] | None:
    """What each of ``chain`` (in order, all overlapping ``span``) shows so that together they show ``span`` exactly,
    leaving as many as possible as they are; None when they cannot."""
    # The boundary between two neighbours is where one ends or where the next starts: the choice that changes
    # fewer occurrences wins (on a tie, the earlier candidate: the later occurrence takes the time between them).
    boundaries: list[list[datetime]] = [[span[0]]]
    for left, right in pairwise(chain):
        boundaries.append(list(dict.fromkeys((left.end, right.start))))
    boundaries.append([span[1]])
    # best[boundary] = (occurrences changed so far, the pieces so far)
    best: dict[datetime, tuple[int, list[Span]]] = {span[0]: (0, [])}
    for index, occurrence in enumerate(chain):
        following: dict[datetime, tuple[int, list[Span]]] = {}
        for end in boundaries[index + 1]:
            for start, (changed, pieces) in best.items():
                shown = _shown(occurrence, (start, end), window)
                if shown is None:
                    continue
                total = changed + (shown != occurrence.span)
                if end not in following or total < following[end][0]:
                    following[end] = (total, [*pieces, shown])
        if not following:
            return None
        best = following
    return best[span[1]][1] if span[1] in best else None


def _match(
    busy: list[Span], expanded: list[Occurrence], window: TimeWindow
) -> tuple[dict[Occurrence, Span], list[Span]]:
    """What each occurrence shows (those missing: deleted), and the busy spans left for single items."""
    chains: dict[int, list[Occurrence]] = {}
    for occurrence in expanded:
        overlaps = [(_overlap(occurrence.span, s), -n) for n, s in enumerate(busy)]
        if overlaps and max(overlaps)[0] > timedelta(0):
            chains.setdefault(-max(overlaps)[1], []).append(occurrence)
    shown: dict[Occurrence, Span] = {}
    singles: list[Span] = []
    for index, span in enumerate(busy):
        chain = sorted(chains.get(index, []), key=lambda o: (o.start, o.key))
        pieces = _share(span, chain, window)
        while chain and pieces is None:
            # Without the occurrence that overlaps the span least (the latest of equals) the others may manage.
            weakest = min(reversed(chain), key=lambda o: _overlap(o.span, span))
            chain.remove(weakest)
            pieces = _share(span, chain, window)
        if not chain:
            singles.append(span)
            continue
        assert pieces is not None
        shown.update(zip(chain, pieces, strict=True))
    return shown, singles


def busy_plan(
    days: Sequence[WorkingDay],
    zone: ZoneInfo,
    window: TimeWindow,
    bookings: Sequence[TimeWindow],
    existing: Sequence[WeeklySeries] = (),
) -> BusyPlan:
    """What the mailbox should show as busy over ``window`` for a schedule: weekly series, their exceptions, singles.

    ``days`` gives the working spans of the window's local dates (in ``zone``); a date missing from it is not worked.
    The pattern is voted over the window's dates. A JRNI booking outside working time is not shown as busy (it shows
    as itself). ``existing``: the series already written, which keep their ``first_day``; a new series starts on the
    window's first local date.
    """
    schedule = {d.day: d.spans for d in days}
    dates = local_dates(window, zone)
    series = weekly_series(
        weekly_pattern(schedule, dates), dates[0] if dates else window.start.date(), existing
    )
    expanded = [o for s in series for o in occurrences(s, zone, window)]
    shown, singles = _match(actual_busy(schedule, zone, window, bookings), expanded, window)
    changes: dict[str, tuple[OccurrenceChange, ...]] = {s.key: () for s in series}
    for occurrence in expanded:
        piece = shown.get(occurrence)
        if piece == occurrence.span:
            continue
        change = OccurrenceChange(occurrence.start, None if piece is None else TimeWindow(*piece))
        changes[occurrence.key] = (*changes[occurrence.key], change)
    return BusyPlan.of(
        zone.key,
        tuple(series),
        {key: tuple(sorted(found, key=lambda c: c.original_start)) for key, found in changes.items()},
        tuple(TimeWindow(*s) for s in singles),
        window.utc(),
    )


# ---- what to write ---------------------------------------------------------------------------------------------------


def _inside(shown: TimeWindow | None, window: TimeWindow) -> Span | None:
    """The part of ``shown`` inside ``window``; None when there is none."""
    if shown is None or not shown.overlaps(window):
        return None
    return (max(shown.start, window.start), min(shown.end, window.end))


def _as_pattern(series: WeeklySeries, zone: ZoneInfo, original_start: datetime) -> TimeWindow:
    """The occurrence of ``series`` starting at ``original_start`` as the pattern alone shows it."""
    wall = original_start.astimezone(zone).replace(tzinfo=None) + timedelta(minutes=series.minutes)
    return TimeWindow(original_start, wall.replace(tzinfo=zone).astimezone(UTC))


def _exceptions(
    series: WeeklySeries,
    zone: ZoneInfo,
    wanted: dict[datetime, OccurrenceChange],
    written: WrittenSeries,
    window: TimeWindow | None,
) -> list[ScheduleAction]:
    """The exception writes for a series already written."""
    applied = {c.original_start: c for c in written.changes}
    found: list[ScheduleAction] = []
    for moment in sorted(wanted.keys() | applied.keys()):
        if window is not None and moment >= window.end:
            continue  # not planned yet
        if window is not None and moment < window.start:
            # Begun before the window: only its part inside the window counts (the rest is history).
            pattern = _as_pattern(series, zone, moment)
            should = wanted[moment].window if moment in wanted else pattern
            shows = applied[moment].window if moment in applied else pattern
            if _inside(should, window) == _inside(shows, window):
                continue
        elif moment in wanted and applied.get(moment) == wanted[moment]:
            continue
        if moment in wanted:
            found.append(ChangeOccurrence(series.key, wanted[moment], written.remote_id))
        elif moment in applied:
            found.append(RestoreOccurrence(series.key, moment, written.remote_id))
    return found


def plan_schedule(desired: BusyPlan, written: WrittenSchedule) -> list[ScheduleAction]:
    """The writes that make the mailbox show ``desired``, given what calsync wrote (see the table above)."""
    window = desired.window
    zone_changed = desired.zone != written.zone
    wanted_keys = {s.key for s in desired.series}
    kept = {s.key: s for s in written.series if s.key in wanted_keys and not zone_changed}

    removals: list[ScheduleAction] = [
        RemoveSeries(s.key, s.remote_id)
        for s in sorted(written.series, key=lambda s: s.key)
        if s.key not in kept
    ]
    creations: list[ScheduleAction] = []
    exceptions: list[ScheduleAction] = []
    for series in desired.series:
        wanted = {c.original_start: c for c in desired.changes.get(series.key, ())}
        already = kept.get(series.key)
        if already is None:
            creations.append(CreateSeries(series, desired.zone))
            exceptions.extend(ChangeOccurrence(series.key, wanted[t], None) for t in sorted(wanted))
        else:
            exceptions.extend(_exceptions(series, ZoneInfo(desired.zone), wanted, already, window))

    missing = Counter(w.utc() for w in desired.singles)
    for single in sorted(written.singles, key=lambda s: (s.window.start, s.window.end, s.remote_id)):
        if window is not None and not single.window.overlaps(window):
            continue
        inside = single.window.utc()
        if window is not None:
            inside = TimeWindow(max(inside.start, window.start), min(inside.end, window.end))
        if missing[inside] > 0:
            missing[inside] -= 1
        else:
            removals.append(RemoveSingle(single.remote_id, single.window))
    additions: list[ScheduleAction] = [CreateSingle(w) for w in sorted(missing.elements())]
    return [*removals, *creations, *exceptions, *additions]
