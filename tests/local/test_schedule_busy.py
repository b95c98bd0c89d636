"""The time outside a JRNI working schedule, shown as busy in Outlook, on the local stack (the real functions, moto,
both emulators): Alice of the demo bank works 09:00-17:00 Monday to Thursday, and not Friday to Sunday."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from local.stack import LocalStack
from tests.local.scheduled import OUTSIDE as SUBJECT
from tests.local.scheduled import SCHEDULE, WEEK, scheduled_stack

LONDON = ZoneInfo("Europe/London")
ALICE = "alice@bank.example.test"


def _next(weekday: int, after: date) -> date:
    return after + timedelta(days=(weekday - after.weekday()) % 7 or 7)


# A Thursday two weeks ahead works only the morning (as 24 December would): a date rule.
SHORT_DAY = _next(3, date.today() + timedelta(days=14))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    yield from scheduled_stack(tmp_path_factory, {**WEEK, SHORT_DAY.isoformat(): "0900-1300"})


def _items(
    stack: LocalStack, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    assert stack.urls is not None
    params = {} if start is None or end is None else {"start": start.isoformat(), "end": end.isoformat()}
    answer = requests.get(f"{stack.urls.ews}/_emulator/mailboxes/{ALICE}/items", params=params, timeout=10)
    answer.raise_for_status()
    return [i for i in answer.json() if i["subject"] == SUBJECT]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _busy(stack: LocalStack, first: date, last: date) -> list[tuple[datetime, datetime]]:
    """The schedule's busy time in Alice's calendar from ``first`` to ``last`` (local dates), merged, in London."""
    start = datetime.combine(first, datetime.min.time(), LONDON)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), LONDON)
    spans = sorted(
        (max(_utc(i["start"]), start), min(_utc(i["end"]), end)) for i in _items(stack, start, end)
    )
    merged: list[tuple[datetime, datetime]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return [(a.astimezone(LONDON), b.astimezone(LONDON)) for a, b in merged]


def _expected(first: date, last: date, rules: dict[str, str]) -> list[tuple[datetime, datetime]]:
    """The complement of the working hours the rules give, date by date, merged."""
    out: list[tuple[datetime, datetime]] = []
    cursor = datetime.combine(first, datetime.min.time(), LONDON)
    day = first
    while day <= last:
        value = rules.get(day.isoformat(), rules[str((day.weekday() + 1) % 7)])
        for part in [] if value == "None" else value.split(","):
            a, b = part.split("-")
            begin = datetime(day.year, day.month, day.day, int(a[:2]), int(a[2:]), tzinfo=LONDON)
            if begin > cursor:
                out.append((cursor, begin))
            cursor = datetime(day.year, day.month, day.day, int(b[:2]), int(b[2:]), tzinfo=LONDON)
        day += timedelta(days=1)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), LONDON)
    if end > cursor:
        out.append((cursor, end))
    return out


def _ews_writes(stack: LocalStack) -> dict[str, int]:
    assert stack.urls is not None
    operations = requests.get(f"{stack.urls.ews}/_emulator/stats", timeout=5).json()["operations"]
    return {op: n for op, n in operations.items() if op in ("CreateItem", "UpdateItem", "DeleteItem")}


def _deep_reconcile(stack: LocalStack) -> dict[str, Any]:
    assert stack.urls is not None and stack.seeded is not None
    url = f"{stack.urls.api}/admin/integrations/{stack.seeded.integration_id}/reconcile"
    asked = requests.post(url, json={"deep": True}, timeout=10)
    assert asked.status_code == 202, asked.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run: dict[str, Any] = requests.get(f"{url}/{asked.json()['run_id']}", timeout=5).json()
        if run["state"] != "running":
            assert run["state"] == "done", run
            return run
        time.sleep(0.1)
    raise AssertionError("the reconcile did not end in time")


def test_the_time_outside_the_schedule_is_busy_in_a_few_weekly_series_and_a_date_rule_is_an_exception(
    stack: LocalStack,
) -> None:
    masters = [i for i in _items(stack) if i["recurrence"] is not None]
    singles = [i for i in _items(stack) if i["recurrence"] is None]
    # Weekday evenings (Mon, Tue, Wed 17:00 -> 09:00) and the long weekend (Thu 17:00 -> Mon 09:00)
    assert len(masters) == 2, masters
    assert all(m["legacy_free_busy_status"] == "Busy" for m in masters)
    first = date.today() + timedelta(days=1)
    last = date.today() + timedelta(days=80)
    rules = {**WEEK, SHORT_DAY.isoformat(): "0900-1300"}
    assert _busy(stack, first, last) == _expected(first, last, rules)
    # The short day is one modified occurrence of the weekend series, not an item of its own; a single item shows
    # only what comes before the series' first occurrence (the rest of today's early hours, if any)
    first_occurrence = min(_utc(m["start"]) for m in masters)
    assert len(singles) <= 1 and all(_utc(s["end"]) <= first_occurrence for s in singles), singles
    exceptions = [e for m in masters for e in m["modified_occurrences"]]
    assert [
        (_utc(e["start"]).astimezone(LONDON).date(), _utc(e["start"]).astimezone(LONDON).hour)
        for e in exceptions
    ] == [(SHORT_DAY, 13)]


def test_across_the_dst_changes_the_busy_time_still_starts_at_17_00_and_ends_at_09_00_local(
    stack: LocalStack,
) -> None:
    for monday in (date(2027, 3, 22), date(2027, 10, 25)):  # the weeks of 28 March and 31 October 2027
        starts = datetime.combine(monday, datetime.min.time(), LONDON)
        occurrences = _items(stack, starts, starts + timedelta(days=14))
        assert occurrences
        for item in occurrences:
            start, end = _utc(item["start"]).astimezone(LONDON), _utc(item["end"]).astimezone(LONDON)
            assert (start.hour, start.minute, end.hour, end.minute) == (17, 0, 9, 0), item


def test_a_schedule_change_rewrites_only_what_changed_and_a_deleted_item_comes_back(
    stack: LocalStack,
) -> None:
    assert stack.urls is not None
    # A deep reconcile with nothing changed writes nothing
    before = _ews_writes(stack)
    _deep_reconcile(stack)
    assert _ews_writes(stack) == before
    # When one Wednesday becomes a day off in JRNI
    off = _next(2, SHORT_DAY)
    rules = {**WEEK, SHORT_DAY.isoformat(): "0900-1300", off.isoformat(): "None"}
    changed = requests.put(
        f"{stack.urls.jrni}/_emulator/schedules/{SCHEDULE}", json={"rules": rules}, timeout=5
    )
    assert changed.status_code == 200, changed.text
    run = _deep_reconcile(stack)
    # Then at most two writes bring Alice's calendar to it, and the busy time is what the schedule says
    after = _ews_writes(stack)
    assert 0 < sum(after.values()) - sum(before.values()) <= 2, (before, after)
    assert run["repaired"]["schedule"] == sum(after.values()) - sum(before.values())
    first, last = date.today() + timedelta(days=1), date.today() + timedelta(days=80)
    assert _busy(stack, first, last) == _expected(first, last, rules)

    # When Alice deletes the weekend series in Outlook
    [weekend] = [m for m in _items(stack) if m["recurrence"] and len(m["recurrence"]["days_of_week"]) == 1]
    deleted = requests.delete(
        f"{stack.urls.ews}/_emulator/mailboxes/{ALICE}/items/{weekend['id']}", timeout=5
    )
    assert deleted.ok, deleted.text
    # Then no JRNI block is made of it, and the next reconcile writes it again
    _deep_reconcile(stack)
    assert _busy(stack, first, last) == _expected(first, last, rules)
    state = requests.get(f"{stack.urls.jrni}/_emulator/state", timeout=5).json()
    assert [b for b in state["blocks"] if b.get("person_id") == 1] == []


def test_unmapping_the_adviser_removes_the_busy_time_from_their_calendar(stack: LocalStack) -> None:
    assert stack.urls is not None and stack.seeded is not None
    assert _items(stack)
    url = f"{stack.urls.api}/admin/integrations/{stack.seeded.integration_id}/mappings/person/1"
    assert requests.delete(url, timeout=10).status_code == 204
    deadline = time.monotonic() + 30
    while _items(stack) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _items(stack) == []
