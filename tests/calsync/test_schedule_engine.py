"""The busy time outside a JRNI working schedule, as Outlook should show it (``busy_plan``), and the writes that get it
there (``plan_schedule``): weekly series for the pattern, exceptions and single items for the dates that differ."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from calsync.domain import TimeWindow
from calsync.domain.schedules import (
    BusyPlan,
    OccurrenceChange,
    WeeklySeries,
    WorkingDay,
    WrittenSchedule,
    WrittenSeries,
    WrittenSingle,
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

LONDON = ZoneInfo("Europe/London")
NINE_TO_FIVE = ((time(9), time(17)),)
EVENINGS = "w:1020+960:0,1,2"  # Mon, Tue, Wed 17:00 -> next day 09:00
WEEKEND = "w:1020+5280:3"  # Thu 17:00 -> Mon 09:00
MONDAY = date(2026, 11, 2)


def local(day: date, hour: int, minute: int = 0, zone: ZoneInfo = LONDON) -> datetime:
    """A local wall-clock time as UTC."""
    return datetime.combine(day, time(hour, minute)).replace(tzinfo=zone).astimezone(UTC)


def span(start: datetime, end: datetime) -> TimeWindow:
    return TimeWindow(start.astimezone(UTC), end.astimezone(UTC))


def window_from(first: date, days: int) -> TimeWindow:
    """``days`` days from 09:00 local on ``first`` (a Monday: the week's busy time starts with an occurrence)."""
    return span(local(first, 9), local(first + timedelta(days=days), 9))


def mon_to_thu(
    first: date, days: int, rules: dict[date, tuple[tuple[time, time | None], ...]]
) -> list[WorkingDay]:
    """Mon-Thu 09:00-17:00, Fri-Sun off, with date rules; one more date than the window touches."""
    dates = [first + timedelta(days=n) for n in range(days + 1)]
    return [WorkingDay(d, rules.get(d, NINE_TO_FIVE if d.weekday() < 4 else ())) for d in dates]


@dataclass(frozen=True)
class Case:
    name: str
    rules: dict[date, tuple[tuple[time, time | None], ...]] = field(default_factory=dict)
    bookings: tuple[TimeWindow, ...] = ()
    changes: dict[str, tuple[OccurrenceChange, ...]] = field(default_factory=dict)
    singles: tuple[TimeWindow, ...] = ()
    first: date = MONDAY
    days: int = 90


THU_24 = date(2026, 12, 24)
TUE_22 = date(2026, 12, 22)
FRI_25 = date(2026, 12, 25)
SAT_26 = date(2026, 12, 26)

CASES = [
    Case("the weekly pattern alone: two series, nothing else"),
    Case(
        # Christmas Eve ends at 13:00: the long weekend starts then, one modified occurrence.
        "a short Thursday",
        rules={THU_24: ((time(9), time(13)),)},
        changes={
            WEEKEND: (
                OccurrenceChange(local(THU_24, 17), span(local(THU_24, 13), local(THU_24 + timedelta(4), 9))),
            )
        },
    ),
    Case(
        # Mon 17:00 -> Wed 09:00 is busy. Monday's evening stays as it is, Tuesday's starts at 09:00 instead of 17:00:
        # one change, where deleting both evenings for one single item would cost three writes.
        "a whole Tuesday off",
        rules={TUE_22: ()},
        changes={
            EVENINGS: (
                OccurrenceChange(local(TUE_22, 17), span(local(TUE_22, 9), local(TUE_22 + timedelta(1), 9))),
            )
        },
    ),
    Case(
        # The booking splits the long weekend in two: the occurrence keeps the larger part (Fri 11:00 -> Mon 09:00),
        # a single shows the rest.
        "a booking on Friday 10:00-11:00",
        bookings=(span(local(FRI_25, 10), local(FRI_25, 11)),),
        changes={
            WEEKEND: (
                OccurrenceChange(local(THU_24, 17), span(local(FRI_25, 11), local(FRI_25 + timedelta(3), 9))),
            )
        },
        singles=(span(local(THU_24, 17), local(FRI_25, 10)),),
    ),
    Case(
        "a booking inside working time changes nothing",
        bookings=(span(local(THU_24, 10), local(THU_24, 11)),),
    ),
    Case(
        "a booking reaching into working time shortens the busy time",
        bookings=(span(local(THU_24, 16), local(THU_24, 18)),),
        changes={
            WEEKEND: (
                OccurrenceChange(local(THU_24, 17), span(local(THU_24, 18), local(THU_24 + timedelta(4), 9))),
            )
        },
    ),
    Case(
        # Saturday 10:00-14:00 worked: the occurrence keeps the larger part after it, a single shows the part before.
        "a Saturday worked",
        rules={SAT_26: ((time(10), time(14)),)},
        changes={
            WEEKEND: (
                OccurrenceChange(local(THU_24, 17), span(local(SAT_26, 14), local(SAT_26 + timedelta(2), 9))),
            )
        },
        singles=(span(local(THU_24, 17), local(SAT_26, 10)),),
    ),
    Case(
        "a lunch break: one single, the series untouched",
        rules={TUE_22: ((time(9), time(12)), (time(13), time(17)))},
        singles=(span(local(TUE_22, 12), local(TUE_22, 13)),),
    ),
    Case(
        # Spring: 17:00 and 09:00 are 17:00Z/09:00Z before 2027-03-28, 16:00Z/08:00Z after; no exception needed.
        "across the spring DST change",
        first=date(2027, 3, 15),
        days=28,
    ),
    Case("across the autumn DST change", first=date(2027, 10, 18), days=28),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_busy_plan(case: Case) -> None:
    window = window_from(case.first, case.days)

    plan = busy_plan(mon_to_thu(case.first, case.days, case.rules), LONDON, window, case.bookings)

    assert [(s.key, s.weekdays, s.start, s.minutes, s.first_day) for s in plan.series] == [
        (EVENINGS, (0, 1, 2), time(17), 960, case.first),
        (WEEKEND, (3,), time(17), 5280, case.first),
    ]
    assert dict(plan.changes) == {EVENINGS: (), WEEKEND: ()} | case.changes
    assert plan.singles == case.singles
    assert plan.zone == "Europe/London"


@pytest.mark.parametrize(
    ("first", "before", "after"),
    [
        (date(2027, 3, 15), date(2027, 3, 25), date(2027, 4, 1)),
        (date(2027, 10, 18), date(2027, 10, 28), date(2027, 11, 4)),
    ],
)
def test_across_dst_occurrences_keep_their_local_times(first: date, before: date, after: date) -> None:
    window = window_from(first, 28)
    plan = busy_plan(mon_to_thu(first, 28, {}), LONDON, window, [])
    weekend = next(s for s in plan.series if s.key == WEEKEND)

    # the Thursday occurrence on each side of the change: its UTC start moves with the clocks, its local one does not
    for thursday in (before, after):
        start = local(thursday, 17)
        end = local(thursday + timedelta(days=4), 9)
        assert start.astimezone(LONDON).hour == 17 and end.astimezone(LONDON).hour == 9
        assert expand(weekend, LONDON, window, ()).count(span(start, end)) == 1
    assert local(before, 17).hour != local(after, 17).hour
    assert not any(plan.changes.values()) and plan.singles == ()


def test_no_working_time_at_all_is_no_series_but_single_items() -> None:
    window = window_from(MONDAY, 14)
    days = [WorkingDay(MONDAY + timedelta(days=n)) for n in range(15)]

    plan = busy_plan(days, LONDON, window, [])

    assert plan.series == () and plan.singles == (window,)


def test_the_pattern_is_what_most_of_a_weekdays_dates_work() -> None:
    # Three Wednesdays of four end at 13:00: that is the pattern, the one full Wednesday an exception.
    window = window_from(MONDAY, 28)
    short = ((time(9), time(13)),)
    rules = {MONDAY + timedelta(days=2 + 7 * n): short for n in (0, 1, 3)}

    plan = busy_plan(mon_to_thu(MONDAY, 28, rules), LONDON, window, [])

    assert [s.key for s in plan.series] == ["w:1020+960:0,1", "w:780+1200:2", WEEKEND]
    full_wednesday = MONDAY + timedelta(days=16)
    assert plan.changes["w:780+1200:2"] == (
        OccurrenceChange(
            local(full_wednesday, 13),
            span(local(full_wednesday, 17), local(full_wednesday + timedelta(days=1), 9)),
        ),
    )


def test_rolling_the_window_forward_keeps_the_series_and_writes_nothing() -> None:
    first = busy_plan(mon_to_thu(MONDAY, 97, {}), LONDON, window_from(MONDAY, 90), [])
    later = MONDAY + timedelta(days=7)

    rolled = busy_plan(mon_to_thu(MONDAY, 97, {}), LONDON, window_from(later, 90), [], existing=first.series)

    assert rolled.series == first.series  # same keys, same first_day
    assert rolled.fingerprint == first.fingerprint
    assert plan_schedule(rolled, written_as(first)) == []


def test_an_exception_the_window_has_rolled_past_is_left_as_it_was_written() -> None:
    rules = {MONDAY + timedelta(days=1): ()}  # the first Tuesday off
    first = busy_plan(mon_to_thu(MONDAY, 97, rules), LONDON, window_from(MONDAY, 90), [])
    assert first.changes[EVENINGS]

    rolled = busy_plan(
        mon_to_thu(MONDAY, 97, rules), LONDON, window_from(MONDAY + timedelta(7), 90), [], first.series
    )

    assert rolled.changes[EVENINGS] == ()
    assert plan_schedule(rolled, written_as(first)) == []


def test_a_new_series_starts_on_the_windows_first_date_and_keeps_it() -> None:
    window = window_from(MONDAY, 90)
    old = WeeklySeries(WEEKEND, (3,), time(17), 5280, date(2026, 1, 1))

    plan = busy_plan(mon_to_thu(MONDAY, 90, {}), LONDON, window, [], existing=[old])

    assert {s.key: s.first_day for s in plan.series} == {EVENINGS: MONDAY, WEEKEND: date(2026, 1, 1)}


def test_equal_plans_print_the_same_and_a_change_prints_otherwise() -> None:
    window = window_from(MONDAY, 90)
    days = mon_to_thu(MONDAY, 90, {})

    assert busy_plan(days, LONDON, window, []).fingerprint == busy_plan(days, LONDON, window, []).fingerprint
    assert (
        busy_plan(days, LONDON, window, [span(local(FRI_25, 10), local(FRI_25, 11))]).fingerprint
        != busy_plan(days, LONDON, window, []).fingerprint
    )
    assert (
        busy_plan(days, ZoneInfo("Europe/Dublin"), window, []).fingerprint
        != busy_plan(days, LONDON, window, []).fingerprint
    )


# ---- plan_schedule ---------------------------------------------------------------------------------------------------


def written_as(plan: BusyPlan) -> WrittenSchedule:
    """The mailbox after an executor applied ``plan`` in full."""
    return WrittenSchedule(
        plan.zone,
        tuple(WrittenSeries(s.key, f"series-{s.key}", plan.changes[s.key]) for s in plan.series),
        tuple(WrittenSingle(w, f"single-{n}") for n, w in enumerate(plan.singles)),
    )


ONE_DAY_CHANGES = {
    "a day off": {TUE_22: ()},
    "a short day": {THU_24: ((time(9), time(13)),)},
    "a longer day": {TUE_22: ((time(8), time(19)),)},
    "a weekend day worked": {SAT_26: ((time(10), time(14)),)},
    "a lunch break": {TUE_22: ((time(9), time(12)), (time(13), time(17)))},
    "a day off, then worked again": {},
}


@pytest.mark.parametrize("rules", ONE_DAY_CHANGES.values(), ids=ONE_DAY_CHANGES.keys())
def test_a_one_day_change_costs_at_most_two_writes(
    rules: dict[date, tuple[tuple[time, time | None], ...]],
) -> None:
    window = window_from(MONDAY, 90)
    before = {TUE_22: ()} if not rules else {}
    written = written_as(busy_plan(mon_to_thu(MONDAY, 90, before), LONDON, window, []))

    actions = plan_schedule(busy_plan(mon_to_thu(MONDAY, 90, rules), LONDON, window, []), written)

    assert 1 <= len(actions) <= 2


def test_a_day_off_taken_back_restores_the_occurrence() -> None:
    window = window_from(MONDAY, 90)
    written = written_as(busy_plan(mon_to_thu(MONDAY, 90, {TUE_22: ()}), LONDON, window, []))

    actions = plan_schedule(busy_plan(mon_to_thu(MONDAY, 90, {}), LONDON, window, []), written)

    assert actions == [RestoreOccurrence(EVENINGS, local(TUE_22, 17), f"series-{EVENINGS}")]


def test_a_new_plan_creates_its_series_then_their_exceptions_then_singles() -> None:
    window = window_from(MONDAY, 90)
    booking = span(local(FRI_25, 10), local(FRI_25, 11))
    plan = busy_plan(mon_to_thu(MONDAY, 90, {}), LONDON, window, [booking])

    actions = plan_schedule(plan, WrittenSchedule("Europe/London"))

    assert actions == [
        CreateSeries(plan.series[0], "Europe/London"),
        CreateSeries(plan.series[1], "Europe/London"),
        ChangeOccurrence(WEEKEND, plan.changes[WEEKEND][0], None),
        CreateSingle(span(local(THU_24, 17), local(FRI_25, 10))),
    ]


def test_a_zone_change_removes_and_recreates_every_series() -> None:
    window = window_from(MONDAY, 90)
    plan = busy_plan(mon_to_thu(MONDAY, 90, {}), LONDON, window, [])
    written = WrittenSchedule("Europe/Dublin", written_as(plan).series)

    actions = plan_schedule(plan, written)

    assert actions == [
        RemoveSeries(WEEKEND, f"series-{WEEKEND}"),  # removals by key
        RemoveSeries(EVENINGS, f"series-{EVENINGS}"),
        CreateSeries(plan.series[0], "Europe/London"),
        CreateSeries(plan.series[1], "Europe/London"),
    ]


def test_what_is_no_longer_wanted_is_removed_first_and_a_duplicate_single_goes() -> None:
    window = window_from(MONDAY, 90)
    lunch = span(local(TUE_22, 12), local(TUE_22, 13))
    plan = busy_plan(
        mon_to_thu(MONDAY, 90, {TUE_22: ((time(9), time(12)), (time(13), time(17)))}), LONDON, window, []
    )
    stale = span(local(THU_24, 12), local(THU_24, 13))
    written = WrittenSchedule(
        "Europe/London",
        (*written_as(plan).series, WrittenSeries("w:0+60:6", "series-old")),
        (
            WrittenSingle(lunch, "single-a"),
            WrittenSingle(lunch, "single-b"),
            WrittenSingle(stale, "single-c"),
        ),
    )

    actions: list[ScheduleAction] = plan_schedule(plan, written)

    assert actions == [
        RemoveSeries("w:0+60:6", "series-old"),
        RemoveSingle("single-b", lunch),
        RemoveSingle("single-c", stale),
    ]


def test_singles_outside_the_window_are_history_and_one_reaching_in_is_compared_by_its_part_inside() -> None:
    window = window_from(MONDAY, 90)
    plan = busy_plan(mon_to_thu(MONDAY, 90, {}), LONDON, window, [])
    past = span(local(MONDAY - timedelta(days=3), 10), local(MONDAY - timedelta(days=3), 11))
    written = WrittenSchedule("Europe/London", written_as(plan).series, (WrittenSingle(past, "single-past"),))

    assert plan_schedule(plan, written) == []

    # the window starts on a Saturday: its weekend occurrence began before it, so it is not there; a single shows
    # the busy time until Monday 09:00, and the one written before (from Friday on) still shows it.
    saturday = MONDAY + timedelta(days=5)
    window = span(
        datetime.combine(saturday, time()).replace(tzinfo=LONDON), local(saturday + timedelta(90), 0)
    )
    plan = busy_plan(mon_to_thu(MONDAY, 97, {}), LONDON, window, [])
    assert plan.singles == (span(window.start, local(saturday + timedelta(days=2), 9)),)
    reaching = span(local(saturday - timedelta(days=1), 0), local(saturday + timedelta(days=2), 9))
    written = WrittenSchedule(
        "Europe/London", written_as(plan).series, (WrittenSingle(reaching, "single-friday"),)
    )
    assert plan_schedule(plan, written) == []


# ---- properties ------------------------------------------------------------------------------------------------------


def expand(
    series: WeeklySeries, zone: ZoneInfo, window: TimeWindow, changes: tuple[OccurrenceChange, ...]
) -> list[TimeWindow]:
    """What Exchange shows of ``series`` around ``window`` (written independently of the engine): each weekday date
    from ``first_day`` on, local start and local start + minutes, read with fold 0; exceptions applied."""
    by_start = {c.original_start: c.window for c in changes}
    first = max(series.first_day, window.start.astimezone(zone).date() - timedelta(days=8))
    last = window.end.astimezone(zone).date() + timedelta(days=8)
    shown = []
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        if day.weekday() not in series.weekdays:
            continue
        wall = datetime.combine(day, series.start)
        occurrence = TimeWindow(
            wall.replace(tzinfo=zone).astimezone(UTC),
            (wall + timedelta(minutes=series.minutes)).replace(tzinfo=zone).astimezone(UTC),
        )
        replaced = by_start.get(occurrence.start, occurrence)
        if replaced is not None:
            shown.append(replaced)
    return shown


def minutes_of(item: TimeWindow, window: TimeWindow) -> range:
    first = max(item.start, window.start)
    last = min(item.end, window.end)
    return range(
        int((first - window.start).total_seconds()) // 60,
        max(0, int((last - window.start).total_seconds()) // 60),
    )


def busy_minutes(
    days: list[WorkingDay], zone: ZoneInfo, window: TimeWindow, bookings: list[TimeWindow]
) -> set[int]:
    """The minutes of the window (counted from its start) outside working time and bookings."""
    expected = set(range(int((window.end - window.start).total_seconds()) // 60))
    for d in days:
        for begin, end in d.spans:
            working = TimeWindow(
                datetime.combine(d.day, begin).replace(tzinfo=zone).astimezone(UTC),
                datetime.combine(d.day, end or time()).replace(tzinfo=zone).astimezone(UTC)
                + (timedelta(days=1) if end is None else timedelta(0)),
            )
            expected -= set(minutes_of(working, window))
    for booking in bookings:
        expected -= set(minutes_of(booking, window))
    return expected


@st.composite
def day_spans(draw: st.DrawFn) -> tuple[tuple[time, time | None], ...]:
    """Off, or one or two ranges on whole or half hours between 06:00 and 22:00 (clear of DST changes)."""
    marks = sorted(draw(st.sets(st.integers(min_value=12, max_value=44), min_size=0, max_size=4)))
    marks = marks[: len(marks) // 2 * 2]
    return tuple(
        (time(a // 2, 30 * (a % 2)), time(b // 2, 30 * (b % 2)))
        for a, b in zip(marks[::2], marks[1::2], strict=True)
    )


@settings(max_examples=80, deadline=None)
@given(
    zone=st.sampled_from([LONDON, ZoneInfo("America/New_York"), ZoneInfo("UTC")]),
    first=st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)),
    length=st.integers(min_value=1, max_value=35),
    week=st.lists(day_spans(), min_size=7, max_size=7),
    rules=st.dictionaries(st.integers(min_value=0, max_value=35), day_spans(), max_size=6),
    booked=st.lists(
        st.tuples(st.integers(min_value=0, max_value=35 * 48), st.integers(min_value=1, max_value=16)),
        max_size=4,
    ),
)
def test_the_plan_shows_exactly_the_busy_time_and_occurrences_never_collide(
    zone: ZoneInfo,
    first: date,
    length: int,
    week: list[tuple[tuple[time, time | None], ...]],
    rules: dict[int, tuple[tuple[time, time | None], ...]],
    booked: list[tuple[int, int]],
) -> None:
    start = datetime.combine(first, time()).replace(tzinfo=zone)
    window = TimeWindow(
        start.astimezone(UTC),
        datetime.combine(first + timedelta(days=length), time()).replace(tzinfo=zone).astimezone(UTC),
    )
    dates = [first + timedelta(days=n) for n in range(length)]
    days = [WorkingDay(d, rules.get(n, week[d.weekday()])) for n, d in enumerate(dates)]
    bookings = [
        TimeWindow(window.start + timedelta(minutes=30 * a), window.start + timedelta(minutes=30 * (a + b)))
        for a, b in booked
    ]

    plan = busy_plan(days, zone, window, bookings)

    expected = busy_minutes(days, zone, window, bookings)
    shown: list[int] = []
    for series in plan.series:
        items = expand(series, zone, window, plan.changes[series.key])
        for earlier, later in pairwise(items):
            assert earlier.end <= later.start, "two occurrences of a series overlap"
        for item in items:
            shown.extend(minutes_of(item, window))
    for single in plan.singles:
        shown.extend(minutes_of(single, window))
    assert sorted(shown) == sorted(expected), (
        "the plan shows other time than the busy time, or some of it twice"
    )
    assert all(
        window.start <= c.original_start < window.end for found in plan.changes.values() for c in found
    )


def exchange_accepts(series: WeeklySeries, zone: ZoneInfo, window: TimeWindow, plan: BusyPlan) -> bool:
    """Exchange's rule for a modified occurrence: it starts after the previous occurrence shown and before the next
    one (deleted ones skipped), as the EWS emulator checks it (ErrorOccurrenceCrossingBoundary)."""
    changes = {c.original_start: c.window for c in plan.changes[series.key]}
    originals = expand(series, zone, window, ())
    shown = [(o.start, changes.get(o.start, o)) for o in originals]
    kept = [(original, item.start) for original, item in shown if item is not None]
    return all(
        before[1] < current[1] < after[1]
        for before, current, after in zip(kept, kept[1:], kept[2:], strict=False)
        if current[0] in changes
    )


@st.composite
def schedules(draw: st.DrawFn) -> tuple[ZoneInfo, date, int, list[WorkingDay], list[TimeWindow]]:
    """A zone, a first date, a window length in days, working days (a weekly pattern and date rules), bookings."""
    zone = draw(st.sampled_from([LONDON, ZoneInfo("America/New_York"), ZoneInfo("UTC")]))
    first = draw(st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)))
    length = draw(st.integers(min_value=1, max_value=35))
    week = draw(st.lists(day_spans(), min_size=7, max_size=7))
    rules = draw(st.dictionaries(st.integers(min_value=0, max_value=42), day_spans(), max_size=6))
    dates = [first + timedelta(days=n) for n in range(length + 8)]
    days = [WorkingDay(d, rules.get(n, week[d.weekday()])) for n, d in enumerate(dates)]
    midnight = datetime.combine(first, time()).replace(tzinfo=zone)
    booked = draw(
        st.lists(
            st.tuples(st.integers(min_value=0, max_value=35 * 48), st.integers(min_value=1, max_value=16)),
            max_size=4,
        )
    )
    bookings = [
        TimeWindow(midnight + timedelta(minutes=30 * a), midnight + timedelta(minutes=30 * (a + b)))
        for a, b in booked
    ]
    return zone, first, length, days, bookings


def window_of(zone: ZoneInfo, first: date, length: int) -> TimeWindow:
    return TimeWindow(
        datetime.combine(first, time()).replace(tzinfo=zone).astimezone(UTC),
        datetime.combine(first + timedelta(days=length), time()).replace(tzinfo=zone).astimezone(UTC),
    )


@settings(max_examples=60, deadline=None)
@given(schedule=schedules())
def test_every_exception_planned_is_one_exchange_accepts(
    schedule: tuple[ZoneInfo, date, int, list[WorkingDay], list[TimeWindow]],
) -> None:
    zone, first, length, days, bookings = schedule
    window = window_of(zone, first, length)

    plan = busy_plan(days, zone, window, bookings)

    assert all(exchange_accepts(series, zone, window, plan) for series in plan.series)


def edited(
    target: WrittenSeries, remote_id: str | None, moment: datetime, change: OccurrenceChange | None
) -> WrittenSeries:
    """``target`` with its exception at ``moment`` replaced by ``change`` (None: the occurrence restored)."""
    # An exception names the series it edits; None only for a series this same plan creates.
    assert remote_id == target.remote_id or (remote_id is None and target.remote_id.startswith("new-"))
    changes = {c.original_start: c for c in target.changes if c.original_start != moment}
    if change is not None:
        changes[moment] = change
    return WrittenSeries(target.key, target.remote_id, tuple(changes[t] for t in sorted(changes)))


def applied(written: WrittenSchedule, actions: list[ScheduleAction]) -> WrittenSchedule:
    """What the mailbox holds after an executor applied ``actions`` (each remote id one of what it names)."""
    zone = written.zone
    series = {s.key: s for s in written.series}
    singles = {s.remote_id: s for s in written.singles}
    for n, action in enumerate(actions):
        match action:
            case RemoveSeries(key, remote_id):
                assert series.pop(key).remote_id == remote_id
            case RemoveSingle(remote_id, window):
                assert singles.pop(remote_id).window == window
            case CreateSeries(new, new_zone):
                assert new.key not in series
                series[new.key], zone = WrittenSeries(new.key, f"new-{new.key}"), new_zone
            case ChangeOccurrence(key, change, remote_id):
                series[key] = edited(series[key], remote_id, change.original_start, change)
            case RestoreOccurrence(key, original_start, remote_id):
                series[key] = edited(series[key], remote_id, original_start, None)
            case CreateSingle(window):
                singles[f"new-single-{n}"] = WrittenSingle(window, f"new-single-{n}")
    return WrittenSchedule(zone, tuple(series.values()), tuple(singles.values()))


def shown_minutes(plan: BusyPlan, written: WrittenSchedule, zone: ZoneInfo) -> list[int]:
    """The minutes of the plan's window the mailbox shows busy, each as often as an item shows it."""
    assert plan.window is not None
    by_key = {s.key: s for s in plan.series}
    found: list[int] = []
    for series in written.series:
        for item in expand(by_key[series.key], zone, plan.window, series.changes):
            found.extend(minutes_of(item, plan.window))
    for single in written.singles:
        found.extend(minutes_of(single.window, plan.window))
    return sorted(found)


@settings(max_examples=60, deadline=None)
@given(before=schedules(), after=schedules(), rolled=st.integers(min_value=0, max_value=8))
def test_what_plan_schedule_writes_shows_the_plan_and_then_nothing_is_left_to_write(
    before: tuple[ZoneInfo, date, int, list[WorkingDay], list[TimeWindow]],
    after: tuple[ZoneInfo, date, int, list[WorkingDay], list[TimeWindow]],
    rolled: int,
) -> None:
    zone, first, length, days, bookings = before
    old = busy_plan(days, zone, window_of(zone, first, length), bookings)
    # the same mailbox later: the window rolled forward, the schedule and bookings replaced by others
    later = first + timedelta(days=rolled)
    shift = later - after[1]
    new_days = [WorkingDay(d.day + shift, d.spans) for d in after[3]]
    new_bookings = [TimeWindow(b.start + shift, b.end + shift) for b in after[4]]
    new = busy_plan(new_days, zone, window_of(zone, later, length), new_bookings, existing=old.series)
    written = written_as(old)

    mailbox = applied(written, plan_schedule(new, written))

    assert plan_schedule(new, mailbox) == []
    assert shown_minutes(new, mailbox, zone) == shown_minutes(new, written_as(new), zone)
    # and, the window rolled over series already written, the plan still shows exactly the busy time
    assert new.window is not None
    assert shown_minutes(new, written_as(new), zone) == sorted(
        busy_minutes(new_days, zone, new.window, new_bookings)
    )


@settings(max_examples=80, deadline=None)
@given(
    week=st.lists(day_spans().filter(lambda spans: len(spans) <= 1), min_size=7, max_size=7),
    changed=st.integers(min_value=7, max_value=80),
    rule=day_spans().filter(lambda spans: len(spans) <= 1),
)
def test_a_one_day_change_of_a_one_range_schedule_costs_at_most_two_writes(
    week: list[tuple[tuple[time, time | None], ...]], changed: int, rule: tuple[tuple[time, time | None], ...]
) -> None:
    # A week without working time is all single items: a day worked splits one, which costs a removal and two new.
    assume(any(week))
    window = window_of(LONDON, MONDAY, 90)
    dates = [MONDAY + timedelta(days=n) for n in range(91)]
    pattern = [WorkingDay(d, week[d.weekday()]) for d in dates]
    written = written_as(busy_plan(pattern, LONDON, window, []))
    days = [WorkingDay(d, rule if n == changed else week[d.weekday()]) for n, d in enumerate(dates)]

    assert len(plan_schedule(busy_plan(days, LONDON, window, []), written)) <= 2


def test_a_working_day_is_given_sorted_and_merged_or_built_so() -> None:
    with pytest.raises(ValueError, match="sorted and merged"):
        WorkingDay(MONDAY, ((time(13), time(17)), (time(9), time(13))))
    with pytest.raises(ValueError, match="end after"):
        WorkingDay(MONDAY, ((time(17), time(9)),))

    day = WorkingDay.of(
        MONDAY, [(time(13), None), (time(9), time(13)), (time(10), time(11)), (time(8), time(8))]
    )

    assert day == WorkingDay(MONDAY, ((time(9), None),))


def test_an_occurrence_begun_before_the_window_is_planned_by_its_part_inside_it() -> None:
    # Written a week ago; the window now starts on Tuesday at midnight, inside Monday's evening occurrence. This
    # Tuesday starts at 07:00: the occurrence ends then, its start (in the past) as the pattern has it.
    first = busy_plan(mon_to_thu(MONDAY, 90, {}), LONDON, window_from(MONDAY, 90), [])
    tuesday = MONDAY + timedelta(days=8)
    window = span(local(tuesday, 0), local(tuesday + timedelta(days=83), 0))
    early = {tuesday: ((time(7), time(17)),)}

    plan = busy_plan(mon_to_thu(MONDAY, 91, early), LONDON, window, [], existing=first.series)

    monday_evening = local(tuesday - timedelta(days=1), 17)
    assert plan.changes[EVENINGS] == (
        OccurrenceChange(monday_evening, span(monday_evening, local(tuesday, 7))),
    )
    assert plan.singles == ()
    assert plan_schedule(plan, written_as(first)) == [
        ChangeOccurrence(EVENINGS, plan.changes[EVENINGS][0], f"series-{EVENINGS}")
    ]
    # written otherwise before the window (it began at 18:00), the same inside it: nothing to write
    otherwise = OccurrenceChange(monday_evening, span(monday_evening + timedelta(hours=1), local(tuesday, 7)))
    written = WrittenSchedule(
        "Europe/London",
        (
            WrittenSeries(EVENINGS, f"series-{EVENINGS}", (otherwise,)),
            WrittenSeries(WEEKEND, f"series-{WEEKEND}"),
        ),
    )
    assert plan_schedule(plan, written) == []
