"""Recurring series: parsing EWS recurrence patterns, expanding occurrences (python-dateutil rrule), writing them back.

A series repeats at the same *wall-clock* time in its own time zone (the master's ``start_timezone``, else the
mailbox's): a 09:00 London weekly meeting is 08:00Z in summer and 09:00Z in winter. Occurrences are numbered from 1
(EWS ``InstanceIndex``) in pattern order; deleted occurrences keep their number, as in Exchange.

Patterns (types.xsd ``RecurrenceType``): DailyRecurrence, WeeklyRecurrence, AbsoluteMonthlyRecurrence,
RelativeMonthlyRecurrence, AbsoluteYearlyRecurrence, RelativeYearlyRecurrence; ranges NoEndRecurrence,
EndDateRecurrence, NumberedRecurrence.

Control-plane JSON form (``"recurrence"`` of ``POST /_emulator/mailboxes/{address}/items``, shown by ``GET``)::

    {
      "pattern": "daily" | "weekly" | "absolute_monthly" | "relative_monthly" | "absolute_yearly" | "relative_yearly",
      "interval": 1,                      # daily / weekly / monthly only (every N days, weeks, months); default 1
      "days_of_week": ["Monday", ...],    # weekly (one or more); relative_* (exactly one; may also be "Day",
                                          #   "Weekday" or "WeekendDay")
      "first_day_of_week": "Sunday",      # weekly only; default "Sunday"
      "day_of_month": 31,                 # absolute_* (1..31; a shorter month uses its last day)
      "day_of_week_index": "First",       # relative_*: First | Second | Third | Fourth | Last
      "month": "January",                 # *_yearly
      "range": {
        "type": "no_end" | "end_date" | "numbered",
        "start_date": "2025-07-07",       # optional: defaults to the item's start date in its time zone
        "end_date": "2025-09-29",         # end_date only (inclusive)
        "number_of_occurrences": 10       # numbered only (1..999)
      }
    }

Only the fields of the chosen pattern are shown by ``GET``; e.g. a weekly series is
``{"pattern": "weekly", "interval": 1, "days_of_week": ["Monday"], "first_day_of_week": "Sunday",
"range": {"type": "numbered", "start_date": "2025-07-07", "number_of_occurrences": 10}}``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from dateutil import rrule
from lxml import etree

from emulators.ews import timezones
from emulators.ews.errors import EwsError
from emulators.ews.xml import MAX_YEAR, MIN_YEAR, T_NS, local, sub, t, text_of

PATTERNS = {
    "DailyRecurrence": "daily",
    "WeeklyRecurrence": "weekly",
    "AbsoluteMonthlyRecurrence": "absolute_monthly",
    "RelativeMonthlyRecurrence": "relative_monthly",
    "AbsoluteYearlyRecurrence": "absolute_yearly",
    "RelativeYearlyRecurrence": "relative_yearly",
}
_PATTERN_ELEMENTS = {v: k for k, v in PATTERNS.items()}
RANGES = {"NoEndRecurrence": "no_end", "EndDateRecurrence": "end_date", "NumberedRecurrence": "numbered"}
_RANGE_ELEMENTS = {v: k for k, v in RANGES.items()}

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# The day groups EWS allows where it says "DaysOfWeek" (DayOfWeekType): any day, a weekday, a weekend day.
DAY_GROUPS = {"Day": DAY_NAMES, "Weekday": DAY_NAMES[:5], "WeekendDay": DAY_NAMES[5:]}
INDEXES = ("First", "Second", "Third", "Fourth", "Last")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_RRULE_DAYS = (rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU)

# Exchange's own limits (Outlook's recurrence dialog): at most 999 numbered occurrences, intervals below 1000.
MAX_OCCURRENCES = 999
MAX_INTERVAL = {"daily": 999, "weekly": 99, "absolute_monthly": 99, "relative_monthly": 99}
# A guard for index lookups on no-end series (InstanceIndex beyond this is refused as out of range): more than a daily
# series has between the years 1601 and 4500.
MAX_INDEX = 1_100_000


@dataclass(frozen=True)
class Recurrence:
    """A parsed recurrence pattern and range; immutable so that expansions can be cached by value."""

    pattern: str
    range_type: str
    start_date: date
    interval: int = 1
    days_of_week: tuple[str, ...] = ()
    first_day_of_week: str = "Sunday"
    day_of_month: int | None = None
    day_of_week_index: str | None = None
    month: str | None = None
    end_date: date | None = None
    number_of_occurrences: int | None = None


def _invalid(message: str) -> EwsError:
    return EwsError("ErrorCalendarInvalidRecurrence", message)


def _check(rec: Recurrence) -> Recurrence:
    """Refuse the combinations Exchange refuses (ErrorCalendarInvalidRecurrence)."""
    if rec.pattern not in _PATTERN_ELEMENTS:
        raise _invalid(f"Unknown recurrence pattern {rec.pattern!r}.")
    if rec.range_type not in _RANGE_ELEMENTS:
        raise _invalid(f"Unknown recurrence range {rec.range_type!r}.")
    limit = MAX_INTERVAL.get(rec.pattern, 1)
    if not 1 <= rec.interval <= limit:
        raise _invalid(f"The interval must be between 1 and {limit}.")
    for day in rec.days_of_week:
        if day not in DAY_NAMES and day not in DAY_GROUPS:
            raise _invalid(f"{day!r} is not a day of the week.")
    if rec.first_day_of_week not in DAY_NAMES:
        raise _invalid(f"{rec.first_day_of_week!r} is not a day of the week.")
    if rec.pattern == "weekly" and not rec.days_of_week:
        raise EwsError(
            "ErrorCalendarInvalidDayForWeeklyRecurrence", "A weekly recurrence needs at least one day."
        )
    if rec.pattern.startswith("relative") and len(rec.days_of_week) != 1:
        raise _invalid("A relative recurrence names exactly one day (or Day, Weekday, WeekendDay).")
    if rec.pattern.startswith("relative") and rec.day_of_week_index not in INDEXES:
        raise _invalid(f"DayOfWeekIndex must be one of {', '.join(INDEXES)}.")
    if rec.pattern.startswith("absolute") and not (rec.day_of_month and 1 <= rec.day_of_month <= 31):
        raise _invalid("DayOfMonth must be between 1 and 31.")
    if rec.pattern.endswith("yearly") and rec.month not in MONTHS:
        raise _invalid("Month must be a month name.")
    if rec.range_type == "end_date":
        if rec.end_date is None:
            raise _invalid("An end-date range needs its EndDate.")
        if rec.end_date < rec.start_date:
            raise EwsError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")
        if rec.end_date.year > MAX_YEAR:
            raise EwsError(
                "ErrorRecurrenceEndDateTooBig", f"The recurrence end date is after the year {MAX_YEAR}."
            )
    if not MIN_YEAR <= rec.start_date.year <= MAX_YEAR:
        raise _invalid(f"The recurrence start date must be between the years {MIN_YEAR} and {MAX_YEAR}.")
    if rec.range_type == "numbered" and not (
        rec.number_of_occurrences and 1 <= rec.number_of_occurrences <= MAX_OCCURRENCES
    ):
        raise _invalid(f"NumberOfOccurrences must be between 1 and {MAX_OCCURRENCES}.")
    return rec


# ---- parsing ---------------------------------------------------------------------------------------------------------


def _parse_date(value: str | None, name: str) -> date:
    """An xs:date; Exchange (and exchangelib) may add a zone suffix (``2025-07-07Z``, ``2025-07-07+01:00``)."""
    if not value:
        raise _invalid(f"The recurrence range has no {name}.")
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError as exc:
        raise _invalid(f"{name} {value!r} is not a date.") from exc


def _int(value: str | None, name: str) -> int:
    try:
        return int(value or "")
    except ValueError as exc:
        raise _invalid(f"{name} must be a number.") from exc


def parse(el: etree._Element, start: datetime, time_zone: str | None) -> Recurrence:
    """A ``t:Recurrence`` element (already schema-valid) as a Recurrence; raises ErrorCalendarInvalidRecurrence."""
    parts = [node for node in el if isinstance(node.tag, str)]
    pattern_el = next((p for p in parts if local(p) in PATTERNS), None)
    range_el = next((p for p in parts if local(p) in RANGES), None)
    if pattern_el is None or range_el is None:
        # Task regeneration patterns are valid RecurrenceType siblings in the schema but not for calendars.
        raise _invalid("A calendar recurrence needs a recurrence pattern and a range.")
    pattern = PATTERNS[local(pattern_el)]
    days = (text_of(pattern_el, T_NS, "DaysOfWeek") or "").split()
    interval_text = text_of(pattern_el, T_NS, "Interval")
    day_of_month = text_of(pattern_el, T_NS, "DayOfMonth")
    number = text_of(range_el, T_NS, "NumberOfOccurrences")
    end_date = text_of(range_el, T_NS, "EndDate")
    return _check(
        Recurrence(
            pattern=pattern,
            range_type=RANGES[local(range_el)],
            start_date=_parse_date(text_of(range_el, T_NS, "StartDate"), "StartDate"),
            interval=_int(interval_text, "Interval") if interval_text is not None else 1,
            days_of_week=tuple(days),
            first_day_of_week=text_of(pattern_el, T_NS, "FirstDayOfWeek") or "Sunday",
            day_of_month=_int(day_of_month, "DayOfMonth") if day_of_month is not None else None,
            day_of_week_index=text_of(pattern_el, T_NS, "DayOfWeekIndex"),
            month=text_of(pattern_el, T_NS, "Month"),
            end_date=_parse_date(end_date, "EndDate") if end_date is not None else None,
            number_of_occurrences=_int(number, "NumberOfOccurrences") if number is not None else None,
        )
    )


# ---- expansion -------------------------------------------------------------------------------------------------------


def _weekdays(names: tuple[str, ...]) -> list[rrule.weekday]:
    days: list[str] = []
    for name in names:
        days.extend(DAY_GROUPS.get(name, (name,)))
    return [_RRULE_DAYS[DAY_NAMES.index(d)] for d in dict.fromkeys(days)]


def _month_day(day: int) -> dict[str, Any]:
    """rrule arguments for "day N of the month, or the month's last day when it is shorter" (EWS's rule)."""
    if day <= 28:
        return {"bymonthday": day}
    # The last existing day among 28..N is min(N, length of the month).
    return {"bymonthday": list(range(28, day + 1)), "bysetpos": -1}


def _rule(rec: Recurrence, dtstart: datetime) -> rrule.rrule:
    """The dateutil rule of a pattern, on naive local datetimes (the series' wall clock)."""
    kwargs: dict[str, Any] = {"dtstart": dtstart, "interval": rec.interval}
    if rec.range_type == "numbered":
        kwargs["count"] = rec.number_of_occurrences
    elif rec.range_type == "end_date":
        assert rec.end_date is not None
        kwargs["until"] = datetime.combine(rec.end_date, time(23, 59, 59))
    if rec.pattern == "daily":
        return rrule.rrule(rrule.DAILY, **kwargs)
    if rec.pattern == "weekly":
        wkst = _RRULE_DAYS[DAY_NAMES.index(rec.first_day_of_week)]
        return rrule.rrule(rrule.WEEKLY, byweekday=_weekdays(rec.days_of_week), wkst=wkst, **kwargs)
    if rec.pattern.startswith("relative"):
        assert rec.day_of_week_index is not None
        position = INDEXES.index(rec.day_of_week_index) + 1
        kwargs.update(byweekday=_weekdays(rec.days_of_week), bysetpos=-1 if position == 5 else position)
    else:
        assert rec.day_of_month is not None
        kwargs.update(_month_day(rec.day_of_month))
    if rec.pattern.endswith("yearly"):
        assert rec.month is not None
        # Yearly patterns have no interval in EWS: every year.
        kwargs.update(interval=1, bymonth=MONTHS.index(rec.month) + 1)
        return rrule.rrule(rrule.YEARLY, **kwargs)
    return rrule.rrule(rrule.MONTHLY, **kwargs)


def zone_id(master: Any) -> str:
    """The Windows zone a series repeats in: its own start zone, else its mailbox's."""
    return str(master.start_timezone or master.mailbox.time_zone or "UTC")


def end_zone_id(master: Any) -> str:
    """The zone the series' end is kept in: its end zone, else its start zone."""
    return str(master.end_timezone or zone_id(master))


def _dtstart(master: Any) -> datetime:
    rec: Recurrence = master.recurrence
    wall = master.start.astimezone(timezones.zone(zone_id(master)))
    return datetime.combine(rec.start_date, time(wall.hour, wall.minute, wall.second))


def _add_months(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 + months
    return date(total // 12, total % 12 + 1, 1)


def _count_before(rec: Recurrence, dtstart: datetime, limit: datetime) -> int:
    """How many occurrences the pattern has from ``dtstart`` up to (not including) ``limit`` (one period: small)."""
    return sum(1 for _ in itertools.takewhile(lambda moment: moment < limit, _rule(rec, dtstart)))


def _start_near(rec: Recurrence, dtstart: datetime, floor: datetime) -> tuple[datetime, int]:
    """A rule start at the beginning of a period at least one period before ``floor``, in the pattern's phase, and
    how many occurrences come before it: expansions begin near the window instead of at the series start.

    Every whole period of a pattern holds the same number of occurrences (one day of a daily pattern; the chosen
    weekdays of a weekly one; one day of a monthly or yearly one), so the count is closed-form after the first,
    possibly partial, period.
    """
    if rec.range_type == "numbered" or floor <= dtstart:
        return dtstart, 0  # at most 999 occurrences: iterate
    if rec.pattern == "daily":
        k = (floor - dtstart).days // rec.interval - 1
        if k <= 0:
            return dtstart, 0
        return dtstart + timedelta(days=k * rec.interval), k
    if rec.pattern == "weekly":
        first_day = DAY_NAMES.index(rec.first_day_of_week)

        def week_start(day: date) -> date:
            return day - timedelta(days=(day.weekday() - first_day) % 7)

        week0 = week_start(dtstart.date())
        k = ((week_start(floor.date()) - week0).days // 7) // rec.interval - 1
        if k <= 0:
            return dtstart, 0
        first = _count_before(rec, dtstart, datetime.combine(week0 + timedelta(days=7), time()))
        per_period = len(_weekdays(rec.days_of_week))
        shifted = datetime.combine(week0 + timedelta(weeks=k * rec.interval), dtstart.time())
        return shifted, first + (k - 1) * per_period
    if rec.pattern.endswith("monthly"):
        month0 = dtstart.date().replace(day=1)
        k = ((floor.year - dtstart.year) * 12 + floor.month - dtstart.month) // rec.interval - 1
        if k <= 0:
            return dtstart, 0
        first = _count_before(rec, dtstart, datetime.combine(_add_months(month0, 1), time()))
        return datetime.combine(_add_months(month0, k * rec.interval), dtstart.time()), first + (k - 1)
    # yearly: one occurrence a year
    k = floor.year - dtstart.year - 1
    if k <= 0:
        return dtstart, 0
    first = _count_before(rec, dtstart, datetime(dtstart.year + 1, 1, 1))
    return datetime.combine(date(dtstart.year + k, 1, 1), dtstart.time()), first + (k - 1)


def _period(rec: Recurrence) -> timedelta:
    """A span at least as long as one period of the pattern (to place a floor safely before a moment)."""
    days = {"daily": 1, "weekly": 7}.get(rec.pattern, 31 if rec.pattern.endswith("monthly") else 366)
    return timedelta(days=days * (1 if rec.pattern.endswith("yearly") else rec.interval) + 1)


def _to_utc(local_start: datetime, zone: str) -> datetime:
    # zoneinfo resolves the wall-clock time with that day's offset, so the series keeps its local time across DST.
    return local_start.replace(tzinfo=timezones.zone(zone)).astimezone(UTC)


def occurrences(master: Any, near: datetime | None = None) -> Iterator[tuple[datetime, int]]:
    """Every (original start in UTC, 1-based index) of a series, lazily, in order; from about ``near`` when given
    (the first ones yielded may come a period or two before it)."""
    rec: Recurrence = master.recurrence
    zone = zone_id(master)
    dtstart = _dtstart(master)
    start, skipped = dtstart, 0
    if near is not None:
        floor = near.astimezone(timezones.zone(zone)).replace(tzinfo=None)
        start, skipped = _start_near(rec, dtstart, floor)
    for index, local_start in enumerate(_rule(rec, start), start=skipped + 1):
        yield _to_utc(local_start, zone), index


def occurrence_end(master: Any, original_start: datetime) -> datetime:
    """The end of the occurrence starting at ``original_start``: the master's wall-clock duration from its local start,
    read in the end zone (an all-day or overnight occurrence keeps its local times across a DST change)."""
    start_zone, end_zone = timezones.zone(zone_id(master)), timezones.zone(end_zone_id(master))
    local_duration = master.end.astimezone(end_zone).replace(tzinfo=None) - master.start.astimezone(
        start_zone
    ).replace(tzinfo=None)
    local_start = original_start.astimezone(start_zone).replace(tzinfo=None)
    return (local_start + local_duration).replace(tzinfo=end_zone).astimezone(UTC)


def expand(master: Any, window_start: datetime, window_end: datetime) -> list[tuple[datetime, int]]:
    """(original start UTC, index) of the occurrences starting in [window_start, window_end); the work is bounded by
    the window (expansion starts a period or two before it), not by the age of the series."""
    if master.recurrence is None:
        return []
    found = []
    for original_start, index in occurrences(master, near=window_start):
        if original_start >= window_end:
            break
        if original_start >= window_start:
            found.append((original_start, index))
    return found


def index_of(master: Any, original_start: datetime) -> int | None:
    """The 1-based index of the occurrence the pattern puts at ``original_start``; None when there is none."""
    if master.recurrence is None:
        return None
    for start, index in occurrences(master, near=original_start):
        if start == original_start:
            return index
        if start > original_start:
            return None
    return None


def start_of_index(master: Any, index: int) -> datetime | None:
    """The original start (UTC) of occurrence number ``index`` (1-based); None when out of the series' range."""
    rec: Recurrence | None = master.recurrence
    if rec is None or not 1 <= index <= MAX_INDEX:
        return None
    near = None
    if index > 50 and rec.range_type != "numbered":
        # Estimate where occurrence ``index`` falls (one period per occurrence at most), start a little before it.
        per_period = len(_weekdays(rec.days_of_week)) if rec.pattern == "weekly" else 1
        periods = (index - 1) // per_period
        span = {"daily": timedelta(days=rec.interval), "weekly": timedelta(weeks=rec.interval)}.get(
            rec.pattern, timedelta(days=28 * rec.interval if rec.pattern.endswith("monthly") else 365)
        )
        near = master.start + span * max(periods - 2, 0) - _period(rec)
    try:
        for start, found in occurrences(master, near=near):
            if found == index:
                return start if start.year <= MAX_YEAR else None
            if found > index:
                # The estimate overshot (cannot for these patterns, but never answer wrong): count from the start.
                slow = next(itertools.islice(occurrences(master), index - 1, None), None)
                return slow[0] if slow else None
    except (ValueError, OverflowError):  # past the year 9999: out of any range
        return None
    return None


def last_occurrence(master: Any) -> tuple[datetime, int] | None:
    """The last (original start, index) of an ended series; None for a no-end series. Cheap: an end-date series is
    expanded from a period or two before its end date only."""
    rec: Recurrence | None = master.recurrence
    if rec is None or rec.range_type == "no_end":
        return None
    near = None
    if rec.range_type == "end_date":
        assert rec.end_date is not None
        until = _to_utc(datetime.combine(rec.end_date, time(23, 59, 59)), zone_id(master))
        near = until - 2 * _period(rec)
    last = None
    for last in occurrences(master, near=near):  # noqa: B007 - the loop finds the last element
        pass
    return last


def check_series(master: Any) -> None:
    """Refuse a series Exchange refuses: no occurrence at all, or occurrences longer than the pattern's shortest gap
    (they would overlap each other)."""
    starts = [local for local in itertools.islice(_rule(master.recurrence, _dtstart(master)), 60)]
    if not starts:
        raise EwsError(
            "ErrorRecurrenceHasNoOccurrence", "The recurrence pattern has no occurrence in its range."
        )
    if len(starts) < 2:
        return
    shortest = min(b - a for a, b in itertools.pairwise(starts))
    local_duration = master.end.astimezone(timezones.zone(end_zone_id(master))).replace(
        tzinfo=None
    ) - master.start.astimezone(timezones.zone(zone_id(master))).replace(tzinfo=None)
    if local_duration > shortest:
        raise EwsError(
            "ErrorOccurrenceTimeSpanTooBig",
            "The duration of an occurrence is longer than the time between two occurrences of the pattern.",
        )


def check_exception_bounds(exception: Any) -> None:
    """An occurrence may move, but not onto or past its neighbours (ErrorOccurrenceCrossingBoundary)."""
    master = exception.master
    original = exception.original_start
    previous: datetime | None = None
    following: datetime | None = None
    for start, _ in occurrences(master, near=original - 2 * _period(master.recurrence)):
        if start in master.deleted_occurrences or start == original:
            continue
        shown = master.exceptions[start].start if start in master.exceptions else start
        if start < original:
            previous = shown
        else:
            following = shown
            break
    if (previous is not None and exception.start <= previous) or (
        following is not None and exception.start >= following
    ):
        raise EwsError(
            "ErrorOccurrenceCrossingBoundary",
            "An occurrence cannot be moved onto or past the previous or the next occurrence of its series.",
        )


# ---- writing ---------------------------------------------------------------------------------------------------------


def _date_text(day: date, master: Any) -> str:
    """An xs:date with the series zone's offset on that day, as Exchange writes range dates (``2025-07-07+01:00``)."""
    tz = timezones.zone(zone_id(master))
    offset = datetime.combine(day, time(12)).replace(tzinfo=tz).utcoffset() or timedelta(0)
    if not offset:
        return f"{day.isoformat()}Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{day.isoformat()}{sign}{hours:02d}:{minutes:02d}"


def _write_pattern(parent: etree._Element, master: Any) -> None:
    rec: Recurrence = master.recurrence
    el = sub(parent, t("Recurrence"))
    pattern = sub(el, t(_PATTERN_ELEMENTS[rec.pattern]))
    # Element order per types.xsd: Interval first (interval patterns), then the pattern's own fields.
    if rec.pattern in MAX_INTERVAL:
        sub(pattern, t("Interval"), rec.interval)
    if rec.pattern == "weekly":
        sub(pattern, t("DaysOfWeek"), " ".join(rec.days_of_week))
        sub(pattern, t("FirstDayOfWeek"), rec.first_day_of_week)
    elif rec.pattern.startswith("relative"):
        sub(pattern, t("DaysOfWeek"), rec.days_of_week[0])
        sub(pattern, t("DayOfWeekIndex"), rec.day_of_week_index)
    elif rec.pattern.startswith("absolute"):
        sub(pattern, t("DayOfMonth"), rec.day_of_month)
    if rec.pattern.endswith("yearly"):
        sub(pattern, t("Month"), rec.month)
    boundary = sub(el, t(_RANGE_ELEMENTS[rec.range_type]))
    sub(boundary, t("StartDate"), _date_text(rec.start_date, master))
    if rec.range_type == "end_date":
        assert rec.end_date is not None
        sub(boundary, t("EndDate"), _date_text(rec.end_date, master))
    elif rec.range_type == "numbered":
        sub(boundary, t("NumberOfOccurrences"), rec.number_of_occurrences)


def _write_occurrence_info(parent: etree._Element, tag: str, master: Any, original_start: datetime) -> None:
    """An OccurrenceInfoType: ItemId, Start, End, OriginalStart (an exception's own times and change key)."""
    exception = master.exceptions.get(original_start)
    el = sub(parent, t(tag))
    if exception is not None:
        sub(el, t("ItemId"), Id=exception.item_id, ChangeKey=exception.change_key)
        start, end = exception.start, exception.end
    else:
        from emulators.ews.model import occurrence_id

        sub(el, t("ItemId"), Id=occurrence_id(master, original_start), ChangeKey=master.change_key)
        start, end = original_start, occurrence_end(master, original_start)
    sub(el, t("Start"), start)
    sub(el, t("End"), end)
    sub(el, t("OriginalStart"), original_start)


def _first_kept(master: Any) -> datetime | None:
    """The original start of the first occurrence that is not deleted."""
    for original_start, index in occurrences(master):
        if original_start not in master.deleted_occurrences:
            return original_start
        if index >= MAX_INDEX:
            break
    return None


def write(parent: etree._Element, master: Any, wanted_names: set[str]) -> None:
    """Append the master's Recurrence, First/LastOccurrence, ModifiedOccurrences, DeletedOccurrences (schema order)."""
    if master.recurrence is None:
        return
    if "Recurrence" in wanted_names:
        _write_pattern(parent, master)
    if "FirstOccurrence" in wanted_names:
        first = _first_kept(master)
        if first is not None:
            _write_occurrence_info(parent, "FirstOccurrence", master, first)
    if "LastOccurrence" in wanted_names:
        # Exchange gives a LastOccurrence only when the range ends.
        last = last_occurrence(master)
        if last is not None:
            _write_occurrence_info(parent, "LastOccurrence", master, last[0])
    if "ModifiedOccurrences" in wanted_names and master.exceptions:
        container = sub(parent, t("ModifiedOccurrences"))
        for original_start in sorted(master.exceptions):
            _write_occurrence_info(container, "Occurrence", master, original_start)
    if "DeletedOccurrences" in wanted_names and master.deleted_occurrences:
        container = sub(parent, t("DeletedOccurrences"))
        for original_start in sorted(master.deleted_occurrences):
            deleted = sub(container, t("DeletedOccurrence"))
            sub(deleted, t("Start"), original_start)


# ---- JSON (control plane) --------------------------------------------------------------------------------------------


def to_json(master: Any) -> dict[str, Any]:
    """The master's recurrence in the control plane's JSON form (see the module docstring)."""
    rec: Recurrence | None = master.recurrence
    if rec is None:
        return {}
    data: dict[str, Any] = {"pattern": rec.pattern}
    if rec.pattern in MAX_INTERVAL:
        data["interval"] = rec.interval
    if rec.pattern == "weekly" or rec.pattern.startswith("relative"):
        data["days_of_week"] = list(rec.days_of_week)
    if rec.pattern == "weekly":
        data["first_day_of_week"] = rec.first_day_of_week
    if rec.pattern.startswith("absolute"):
        data["day_of_month"] = rec.day_of_month
    if rec.pattern.startswith("relative"):
        data["day_of_week_index"] = rec.day_of_week_index
    if rec.pattern.endswith("yearly"):
        data["month"] = rec.month
    boundary: dict[str, Any] = {"type": rec.range_type, "start_date": rec.start_date.isoformat()}
    if rec.end_date is not None:
        boundary["end_date"] = rec.end_date.isoformat()
    if rec.number_of_occurrences is not None:
        boundary["number_of_occurrences"] = rec.number_of_occurrences
    data["range"] = boundary
    return data


def from_json(data: Any, start: datetime, time_zone: str | None) -> Recurrence:
    """Parse the control plane's JSON form; raises ValueError (with a message for the caller) when invalid."""
    if not isinstance(data, dict):
        raise ValueError("recurrence must be an object")
    unknown = set(data) - {
        "pattern",
        "interval",
        "days_of_week",
        "first_day_of_week",
        "day_of_month",
        "day_of_week_index",
        "month",
        "range",
    }
    if unknown:
        raise ValueError(f"unknown recurrence fields: {sorted(unknown)}")
    boundary = data.get("range") or {"type": "no_end"}
    if not isinstance(boundary, dict):
        raise ValueError("recurrence.range must be an object")
    days = data.get("days_of_week") or []
    if isinstance(days, str):
        days = [days]
    local_start = start.astimezone(timezones.zone(time_zone)).date()
    try:
        return _check(
            Recurrence(
                pattern=str(data.get("pattern", "")),
                range_type=str(boundary.get("type", "")),
                start_date=date.fromisoformat(boundary["start_date"])
                if boundary.get("start_date")
                else local_start,
                interval=int(data.get("interval", 1)),
                days_of_week=tuple(str(d) for d in days),
                first_day_of_week=str(data.get("first_day_of_week") or "Sunday"),
                day_of_month=int(data["day_of_month"]) if data.get("day_of_month") is not None else None,
                day_of_week_index=data.get("day_of_week_index"),
                month=data.get("month"),
                end_date=date.fromisoformat(boundary["end_date"]) if boundary.get("end_date") else None,
                number_of_occurrences=(
                    int(boundary["number_of_occurrences"])
                    if boundary.get("number_of_occurrences") is not None
                    else None
                ),
            )
        )
    except EwsError as exc:
        raise ValueError(exc.message) from exc


__all__ = [
    "Recurrence",
    "check_exception_bounds",
    "check_series",
    "expand",
    "from_json",
    "index_of",
    "occurrence_end",
    "parse",
    "start_of_index",
    "to_json",
    "write",
]
