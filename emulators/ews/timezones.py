"""Time zones by Windows id, as EWS names them, backed by the IANA database (zoneinfo) for DST.

The Windows ↔ IANA table is exchangelib's (the one it uses itself), so the emulator and its main client agree.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP, MS_TIMEZONE_TO_IANA_MAP
from lxml import etree

from emulators.ews.xml import sub, t

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def zone(windows_id: str | None) -> ZoneInfo:
    """The zoneinfo zone for a Windows zone id (or an IANA name); UTC when unknown or None."""
    if not windows_id:
        return ZoneInfo("UTC")
    iana = MS_TIMEZONE_TO_IANA_MAP.get(windows_id, windows_id)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def is_known(windows_id: str) -> bool:
    return windows_id in MS_TIMEZONE_TO_IANA_MAP or windows_id == "UTC"


def all_day_bounds(start: datetime, end: datetime, windows_id: str | None) -> tuple[datetime, datetime]:
    """An all-day item's start and end snapped to local midnights in its zone, as Exchange stores them: the start to
    the midnight that begins its day, the end to the next midnight unless it is one already (at least one day)."""
    tz = zone(windows_id)
    local_start = start.astimezone(tz).replace(tzinfo=None)
    local_end = end.astimezone(tz).replace(tzinfo=None)
    first = datetime.combine(local_start.date(), datetime.min.time())
    last = datetime.combine(local_end.date(), datetime.min.time())
    if last < local_end:
        last += timedelta(days=1)
    if last <= first:
        last = first + timedelta(days=1)
    return first.replace(tzinfo=tz).astimezone(UTC), last.replace(tzinfo=tz).astimezone(UTC)


def windows_id_for(iana_or_windows: str) -> str:
    """A Windows id for a zone given either way (accounts may be created with an IANA name)."""
    if iana_or_windows in MS_TIMEZONE_TO_IANA_MAP:
        return iana_or_windows
    mapped = IANA_TO_MS_TIMEZONE_MAP.get(iana_or_windows)
    if mapped:
        return mapped[0] if isinstance(mapped, tuple) else str(mapped)
    return "UTC"


def all_ids() -> list[str]:
    return sorted(MS_TIMEZONE_TO_IANA_MAP)


@dataclass(frozen=True)
class _Rule:
    month: int
    weekday: int  # 0 = Monday
    occurrence: int  # 1..4, or -1 for the last
    local_time: timedelta  # wall-clock time of the change, in the period being left


@dataclass(frozen=True)
class ZoneRules:
    standard_offset: timedelta
    daylight_offset: timedelta | None
    to_daylight: _Rule | None
    to_standard: _Rule | None


def _rule_for(instant_utc: datetime, before_offset: timedelta) -> _Rule:
    local = (instant_utc + before_offset).replace(tzinfo=None)
    nth = (local.day - 1) // 7 + 1
    last = (local + timedelta(days=7)).month != local.month
    return _Rule(
        local.month,
        local.weekday(),
        -1 if last and nth >= 4 else nth,
        local - local.replace(hour=0, minute=0, second=0),
    )


@functools.cache
def rules(windows_id: str, year: int = 2025) -> ZoneRules:
    """Standard and daylight offsets and the yearly rules between them, read off zoneinfo for ``year``."""
    tz = zone(windows_id)

    def offset_at(moment: datetime) -> timedelta:
        return moment.astimezone(tz).utcoffset() or timedelta(0)

    changes: list[tuple[datetime, timedelta, timedelta]] = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    previous = offset_at(moment)
    # Day steps find the days with a change; quarter-hour steps then find the instant (some zones change at :30).
    while moment.year == year:
        following = moment + timedelta(days=1)
        offset = offset_at(following)
        if offset != previous:
            instant = moment
            while offset_at(instant) == previous:
                instant += timedelta(minutes=15)
            changes.append((instant, previous, offset))
            previous = offset
        moment = following
    if len(changes) < 2:
        return ZoneRules(previous, None, None, None)
    offsets = sorted({changes[0][1], changes[0][2]})
    standard, daylight = offsets[0], offsets[1]
    to_daylight = next(_rule_for(at, before) for at, before, after in changes if after == daylight)
    to_standard = next(_rule_for(at, before) for at, before, after in changes if after == standard)
    return ZoneRules(standard, daylight, to_daylight, to_standard)


def _duration(value: timedelta) -> str:
    """An xs:duration such as ``PT2H``, ``-PT1H30M`` or ``PT0M``."""
    minutes = int(value.total_seconds() // 60)
    sign = "-" if minutes < 0 else ""
    minutes = abs(minutes)
    hours, minutes = divmod(minutes, 60)
    text = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes or not hours else "")
    return f"{sign}PT{text}"


def write_definition(parent: etree._Element, tag: str, windows_id: str) -> etree._Element:
    """Append a full ``TimeZoneDefinitionType`` element (periods and transitions), as Exchange returns it.

    ``MeetingTimeZone`` (Exchange 2007 SP1) is the older ``TimeZoneType`` instead, so it is written that way.
    """
    if tag == t("MeetingTimeZone"):
        return write_legacy(parent, tag, windows_id)
    zone_rules = rules(windows_id)
    el = sub(parent, tag, Id=windows_id, Name=windows_id)
    base = f"trule:Microsoft/Registry/{windows_id}/2025"
    periods = sub(el, t("Periods"))
    # Bias is what to add to local time to get UTC: the negated UTC offset.
    sub(
        periods,
        t("Period"),
        Bias=_duration(-zone_rules.standard_offset),
        Name="Standard",
        Id=f"{base}-Standard",
    )
    if zone_rules.daylight_offset is not None:
        sub(
            periods,
            t("Period"),
            Bias=_duration(-zone_rules.daylight_offset),
            Name="Daylight",
            Id=f"{base}-Daylight",
        )
    groups = sub(el, t("TransitionsGroups"))
    group = sub(groups, t("TransitionsGroup"), Id="0")
    if zone_rules.to_daylight is None or zone_rules.to_standard is None:
        transition = sub(group, t("Transition"))
        sub(transition, t("To"), f"{base}-Standard", Kind="Period")
    else:
        for rule, name in ((zone_rules.to_daylight, "Daylight"), (zone_rules.to_standard, "Standard")):
            recurring = sub(group, t("RecurringDayTransition"))
            sub(recurring, t("To"), f"{base}-{name}", Kind="Period")
            sub(recurring, t("TimeOffset"), _duration(rule.local_time))
            sub(recurring, t("Month"), rule.month)
            sub(recurring, t("DayOfWeek"), _DAY_NAMES[rule.weekday])
            sub(recurring, t("Occurrence"), rule.occurrence)
    transitions = sub(el, t("Transitions"))
    top = sub(transitions, t("Transition"))
    sub(top, t("To"), "0", Kind="Group")
    return el


_INDEX_NAMES = {1: "First", 2: "Second", 3: "Third", 4: "Fourth", -1: "Last", 5: "Last"}
_MONTH_NAMES = (
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


def _clock(value: timedelta) -> str:
    seconds = int(value.total_seconds()) % 86400
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def write_legacy(parent: etree._Element, tag: str, windows_id: str) -> etree._Element:
    """Append a ``TimeZoneType`` (Exchange 2007's MeetingTimeZone): BaseOffset, then Standard and Daylight changes."""
    zone_rules = rules(windows_id)
    el = sub(parent, tag, TimeZoneName=windows_id)
    # BaseOffset is, like a Bias, what to add to local time to get UTC; each change's Offset is relative to it.
    sub(el, t("BaseOffset"), _duration(-zone_rules.standard_offset))
    if zone_rules.daylight_offset is None or zone_rules.to_daylight is None or zone_rules.to_standard is None:
        return el
    changes = (
        ("Standard", zone_rules.to_standard, timedelta(0)),
        ("Daylight", zone_rules.to_daylight, zone_rules.standard_offset - zone_rules.daylight_offset),
    )
    for name, rule, offset in changes:
        change = sub(el, t(name), TimeZoneName=name)
        sub(change, t("Offset"), _duration(offset))
        pattern = sub(change, t("RelativeYearlyRecurrence"))
        sub(pattern, t("DaysOfWeek"), _DAY_NAMES[rule.weekday])
        sub(pattern, t("DayOfWeekIndex"), _INDEX_NAMES[rule.occurrence])
        sub(pattern, t("Month"), _MONTH_NAMES[rule.month - 1])
        sub(change, t("Time"), _clock(rule.local_time))
    return el


def write_serializable(parent: etree._Element, tag: str, windows_id: str) -> etree._Element:
    """Append a ``SerializableTimeZone`` (availability's TimeZone: Bias, StandardTime, DaylightTime) for a zone."""
    zone_rules = rules(windows_id)
    el = sub(parent, tag)
    sub(el, t("Bias"), int(-zone_rules.standard_offset.total_seconds() // 60))
    if zone_rules.daylight_offset is None or zone_rules.to_daylight is None or zone_rules.to_standard is None:
        # No daylight saving: both changes present (the schema requires them) but without any effect.
        changes = (
            ("StandardTime", _Rule(1, 6, 1, timedelta(0)), 0),
            ("DaylightTime", _Rule(12, 6, -1, timedelta(0)), 0),
        )
    else:
        daylight_bias = int((zone_rules.standard_offset - zone_rules.daylight_offset).total_seconds() // 60)
        changes = (
            ("StandardTime", zone_rules.to_standard, 0),
            ("DaylightTime", zone_rules.to_daylight, daylight_bias),
        )
    for name, rule, bias in changes:
        change = sub(el, t(name))
        sub(change, t("Bias"), bias)
        sub(change, t("Time"), _clock(rule.local_time))
        sub(change, t("DayOrder"), 5 if rule.occurrence == -1 else rule.occurrence)
        sub(change, t("Month"), rule.month)
        sub(change, t("DayOfWeek"), _DAY_NAMES[rule.weekday])
    return el


@dataclass(frozen=True)
class _Change:
    bias: int  # minutes, added to the zone's Bias
    month: int  # 0: no change
    day_order: int  # 1..4, 5 = last
    weekday: int  # 0 = Monday
    clock: timedelta


def _nth_weekday(year: int, month: int, weekday: int, order: int) -> datetime:
    first = datetime(year, month, 1)
    day = first + timedelta(days=(weekday - first.weekday()) % 7)
    if order >= 5 or order < 0:
        while (day + timedelta(days=7)).month == month:
            day += timedelta(days=7)
        return day
    return day + timedelta(days=7 * (order - 1))


class SerializableZone:
    """A zone described the way GetUserAvailability's ``t:TimeZone`` does: a bias and two yearly changes."""

    def __init__(self, bias: int, standard: _Change | None, daylight: _Change | None) -> None:
        self.bias = bias
        self.standard = standard
        self.daylight = daylight

    @classmethod
    def utc(cls) -> SerializableZone:
        return cls(0, None, None)

    @classmethod
    def parse(cls, el: etree._Element | None) -> SerializableZone:
        """Read a ``t:TimeZone`` (SerializableTimeZone) element; UTC when absent."""
        if el is None:
            return cls.utc()

        def change(name: str) -> _Change | None:
            node = el.find(t(name))
            if node is None:
                return None
            clock_text = (node.findtext(t("Time")) or "00:00:00").strip()
            hours, minutes, *rest = (int(p) for p in clock_text.split(":"))
            day = (node.findtext(t("DayOfWeek")) or "Sunday").strip()
            return _Change(
                bias=int(node.findtext(t("Bias")) or 0),
                month=int(node.findtext(t("Month")) or 0),
                day_order=int(node.findtext(t("DayOrder")) or 1),
                weekday=_DAY_NAMES.index(day) if day in _DAY_NAMES else 6,
                clock=timedelta(hours=hours, minutes=minutes, seconds=rest[0] if rest else 0),
            )

        return cls(int(el.findtext(t("Bias")) or 0), change("StandardTime"), change("DaylightTime"))

    def _has_dst(self) -> bool:
        return bool(
            self.standard
            and self.daylight
            and self.standard.month
            and self.daylight.month
            and self.standard.bias != self.daylight.bias
        )

    def offset_at(self, instant: datetime) -> timedelta:
        """The UTC offset in force at an aware instant."""
        std_bias = self.bias + (self.standard.bias if self.standard else 0)
        if not self._has_dst():
            return timedelta(minutes=-std_bias)
        assert self.standard is not None and self.daylight is not None
        dst_bias = self.bias + self.daylight.bias
        year = (instant.astimezone(UTC) - timedelta(minutes=std_bias)).year
        # Each change happens at a local wall-clock time, read in the period being left.
        starts = _nth_weekday(year, self.daylight.month, self.daylight.weekday, self.daylight.day_order)
        ends = _nth_weekday(year, self.standard.month, self.standard.weekday, self.standard.day_order)
        dst_start = (starts + self.daylight.clock + timedelta(minutes=std_bias)).replace(tzinfo=UTC)
        dst_end = (ends + self.standard.clock + timedelta(minutes=dst_bias)).replace(tzinfo=UTC)
        moment = instant.astimezone(UTC)
        in_dst = (
            dst_start <= moment < dst_end
            if dst_start < dst_end
            else (moment >= dst_start or moment < dst_end)
        )
        return timedelta(minutes=-(dst_bias if in_dst else std_bias))

    def to_local(self, instant: datetime) -> datetime:
        """An aware instant as naive local time in this zone (how availability answers carry times)."""
        return (instant.astimezone(UTC) + self.offset_at(instant)).replace(tzinfo=None)
