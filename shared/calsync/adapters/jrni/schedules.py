"""JRNI working schedules: the days a staff member or resource works, read as JRNI resolves them for a date range.

Reference: ../shared/reference/jrni-gaps.md §4 (FACT: ``GET {person._links.schedule}?start_date&end_date`` returns
``{"dates": {"YYYY-MM-DD": ["0900-1700", …] | "None"}}``, ranges ``HHMM-HHMM``, the end of the day written
``2359``; the API has been seen to send ``23d55``), jrni-api.md §2.6. The dates are the company's, in its zone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, time, timedelta
from typing import Any

from calsync.adapters.jrni.client import JrniClient
from calsync.domain import PermanentError, ResourceKind, TimeWindow
from calsync.domain.schedules import WorkingDay

_PLURAL = {ResourceKind.PERSON: "people", ResourceKind.RESOURCE: "resources"}
_RANGE = re.compile(r"^\s*(\d{2})\D?(\d{2})\s*-\s*(\d{2})\D?(\d{2})\s*$")
MAX_DAYS = 366  # what JRNI resolves in one request


def schedule_id_of(client: JrniClient, company_id: str, kind: ResourceKind, jrni_id: str) -> str | None:
    """The id of the schedule the staff member or resource works to; None when it has none (or JRNI no longer
    knows it)."""
    found = client.find(f"/api/v1/admin/{company_id}/{_PLURAL[kind]}/{jrni_id}")
    if found is None:
        return None
    ident = found.get("schedule_id")
    return str(ident) if isinstance(ident, int | str) and str(ident).strip() else None


def working_days(
    client: JrniClient, company_id: str, schedule_id: str, first: date, last: date
) -> tuple[WorkingDay, ...]:
    """Each date from ``first`` to ``last`` (the company's dates) with the ranges worked on it; a date JRNI leaves
    out is not worked. PermanentError when JRNI's answer cannot be read (what is wrong, and where)."""
    if (last - first).days + 1 > MAX_DAYS:
        raise PermanentError(
            f"a JRNI schedule is read {MAX_DAYS} days at a time at most, not {first} to {last}"
        )
    found = client.get(
        f"/api/v1/admin/{company_id}/schedules/{schedule_id}",
        {"start_date": first.isoformat(), "end_date": last.isoformat()},
    )
    dates = found.get("dates")
    if not isinstance(dates, Mapping):
        raise PermanentError(f"JRNI schedule {schedule_id} of company {company_id} came without its dates")
    days = []
    day = first
    while day <= last:
        days.append(WorkingDay.of(day, _spans(dates.get(day.isoformat()), schedule_id, day)))
        day += timedelta(days=1)
    return tuple(days)


def _spans(value: Any, schedule_id: str, day: date) -> list[tuple[time, time | None]]:
    if value is None or value == "None" or value == "" or value == []:
        return []
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, list):
        raise PermanentError(f"JRNI schedule {schedule_id} gave {day} as {value!r}, not a list of ranges")
    spans: list[tuple[time, time | None]] = []
    for part in parts:
        matched = _RANGE.match(str(part))
        if matched is None:
            raise PermanentError(f"JRNI schedule {schedule_id} gave {day} the range {part!r}, not HHMM-HHMM")
        start = _clock(matched[1], matched[2], part, schedule_id, day)
        end = _clock(matched[3], matched[4], part, schedule_id, day)
        if end is not None and end >= time(23, 59):
            end = None  # JRNI writes the end of the day as 2359
        if start is None or (end is not None and end <= start):
            raise PermanentError(f"JRNI schedule {schedule_id} gave {day} the empty range {part!r}")
        spans.append((start, end))
    return spans


def _clock(hours: str, minutes: str, part: Any, schedule_id: str, day: date) -> time | None:
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return None  # midnight at the end of the day
    if h > 23 or m > 59:
        raise PermanentError(f"JRNI schedule {schedule_id} gave {day} the range {part!r}: no such time")
    return time(h, m)


def covering(window: TimeWindow, zone: Any) -> tuple[date, date]:
    """The company's dates the window touches."""
    return window.start.astimezone(zone).date(), window.end.astimezone(zone).date()
