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
    return _Rule(local.month, local.weekday(), -1 if last and nth >= 4 else nth, local - local.replace(hour=0, minute=0, second=0))


@functools.cache
def rules(windows_id: str, year: int = 2025) -> ZoneRules:
    """Standard and daylight offsets and the yearly rules between them, read off zoneinfo for ``year``."""
    tz = zone(windows_id)
    start = datetime(year, 1, 1, tzinfo=UTC)
    changes: list[tuple[datetime, timedelta, timedelta]] = []
    previous = start.astimezone(tz).utcoffset() or timedelta(0)
    step = timedelta(hours=1)
    moment = start
    while moment.year == year:
        following = moment + step
        offset = following.astimezone(tz).utcoffset() or timedelta(0)
        if offset != previous:
            changes.append((following, previous, offset))
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
    """Append a full ``TimeZoneDefinitionType`` element (periods and transitions), as Exchange returns it."""
    zone_rules = rules(windows_id)
    el = sub(parent, tag, Id=windows_id, Name=windows_id)
    base = f"trule:Microsoft/Registry/{windows_id}/2025"
    periods = sub(el, t("Periods"))
    # Bias is what to add to local time to get UTC: the negated UTC offset.
    sub(periods, t("Period"), Bias=_duration(-zone_rules.standard_offset), Name="Standard", Id=f"{base}-Standard")
    if zone_rules.daylight_offset is not None:
        sub(periods, t("Period"), Bias=_duration(-zone_rules.daylight_offset), Name="Daylight", Id=f"{base}-Daylight")
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
