"""Recurring series through exchangelib and the control plane: expansion, exceptions, deleted occurrences, patterns."""

from __future__ import annotations

import time
from typing import Any

import pytest
from exchangelib import UTC, Account, CalendarItem, EWSDate, EWSDateTime
from exchangelib.errors import (
    ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange,
    ErrorCalendarOccurrenceIsDeletedFromRecurrence,
)
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    EndDatePattern,
    NoEndPattern,
    NumberedPattern,
    Recurrence,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import TZ

ALICE = "alice@example.com"


def london(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> EWSDateTime:
    return EWSDateTime(year, month, day, hour, minute, tzinfo=TZ)


def weekly_series(account: Account, number: int = 6) -> CalendarItem:
    """Mondays 09:00-10:00 London from 6 October 2025: the clocks go back on Sunday 26 October."""
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Weekly review",
        start=london(2025, 10, 6, 9),
        end=london(2025, 10, 6, 10),
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=[1]), start=EWSDate(2025, 10, 6), number=number
        ),
    )
    item.save(send_meeting_invitations="SendToNone")
    return item


def create(ews: EwsEmulator, **fields: Any) -> dict[str, Any]:
    """Create an item as the owner would in Outlook (control plane)."""
    data = {"subject": "Series", "time_zone": "GMT Standard Time", **fields}
    return ews.control("POST", f"mailboxes/{ALICE}/items", data, expect=201)  # type: ignore[no-any-return]


def starts(ews: EwsEmulator, start: str, end: str) -> list[str]:
    """Start times (UTC) of everything the calendar shows in [start, end), series expanded."""
    return [v["start"] for v in ews.items(ALICE, start=start, end=end)]


def test_view_expands_a_series_with_an_exception_and_a_deleted_occurrence(
    ews: EwsEmulator, alice: Account
) -> None:
    master = weekly_series(alice)

    occurrence = master.occurrence(index=3)
    occurrence.refresh()
    assert occurrence.type == "Occurrence" and occurrence.start == london(2025, 10, 20, 9)
    occurrence.subject = "Weekly review (moved)"
    occurrence.start, occurrence.end = london(2025, 10, 20, 14), london(2025, 10, 20, 15)
    occurrence.save(update_fields=["subject", "start", "end"], send_meeting_invitations="SendToNone")
    master.occurrence(index=2).delete(send_meeting_cancellations="SendToNone")

    view = list(alice.calendar.view(start=london(2025, 10, 1), end=london(2025, 11, 30)))
    shown = [(v.type, v.start.astimezone(TZ).strftime("%m-%d %H:%M"), v.subject) for v in view]
    assert shown == [
        ("Occurrence", "10-06 09:00", "Weekly review"),
        ("Exception", "10-20 14:00", "Weekly review (moved)"),
        # Wall-clock time holds across the end of British Summer Time (26 October): 08:00Z before, 09:00Z after.
        ("Occurrence", "10-27 09:00", "Weekly review"),
        ("Occurrence", "11-03 09:00", "Weekly review"),
        ("Occurrence", "11-10 09:00", "Weekly review"),
    ]
    assert view[0].start == EWSDateTime(2025, 10, 6, 8, tzinfo=UTC) and view[2].start == EWSDateTime(
        2025, 10, 27, 9, tzinfo=UTC
    )

    master.refresh()
    assert master.type == "RecurringMaster"
    assert isinstance(master.recurrence.pattern, WeeklyPattern) and master.recurrence.pattern.weekdays == [1]
    assert isinstance(master.recurrence.boundary, NumberedPattern) and master.recurrence.boundary.number == 6
    [modified] = master.modified_occurrences
    assert modified.original_start == london(2025, 10, 20, 9) and modified.start == london(2025, 10, 20, 14)
    assert modified.id == occurrence.id
    assert [d.start for d in master.deleted_occurrences] == [london(2025, 10, 13, 9)]
    assert master.first_occurrence.start == london(2025, 10, 6, 9)
    assert master.last_occurrence.start == london(2025, 11, 10, 9)

    # The exception is readable by its own id, and the owner sees the same series in the control plane.
    assert alice.calendar.get(id=occurrence.id).subject == "Weekly review (moved)"
    [stored] = ews.items(ALICE)
    assert stored["recurrence"] == {
        "pattern": "weekly",
        "interval": 1,
        "days_of_week": ["Monday"],
        "first_day_of_week": "Monday",
        "range": {"type": "numbered", "start_date": "2025-10-06", "number_of_occurrences": 6},
    }
    assert stored["deleted_occurrences"] == ["2025-10-13T08:00:00Z"]
    assert [e["start"] for e in stored["modified_occurrences"]] == ["2025-10-20T13:00:00Z"]


def test_a_deleted_occurrence_asked_for_by_index_is_reported_as_deleted(
    ews: EwsEmulator, alice: Account
) -> None:
    master = weekly_series(alice)
    master.occurrence(index=2).delete(send_meeting_cancellations="SendToNone")

    with pytest.raises(ErrorCalendarOccurrenceIsDeletedFromRecurrence):
        master.occurrence(index=2).refresh()
    master.occurrence(index=3).refresh()  # its neighbours are still there


def test_occurrence_index_beyond_the_series_is_refused(ews: EwsEmulator, alice: Account) -> None:
    master = weekly_series(alice, number=3)
    last = master.occurrence(index=3)
    last.refresh()
    assert last.start == london(2025, 10, 20, 9)
    with pytest.raises(ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange):
        master.occurrence(index=4).refresh()


def test_deleting_the_master_removes_every_occurrence(ews: EwsEmulator, alice: Account) -> None:
    master = weekly_series(alice)
    master.delete(send_meeting_cancellations="SendToNone")
    assert list(alice.calendar.view(start=london(2025, 10, 1), end=london(2025, 12, 1))) == []


def test_no_end_series_is_expanded_only_up_to_the_window(ews: EwsEmulator, alice: Account) -> None:
    create(
        ews,
        start="2020-01-06T09:00:00Z",
        end="2020-01-06T09:30:00Z",
        recurrence={"pattern": "daily", "interval": 1, "range": {"type": "no_end"}},
    )
    began = time.monotonic()
    view = list(alice.calendar.view(start=london(2029, 7, 2), end=london(2029, 7, 9)))
    elapsed = time.monotonic() - began
    # 09:00 GMT in winter is 10:00 BST in July: the series keeps its London wall-clock time.
    assert [v.start.astimezone(TZ).strftime("%d %H:%M") for v in view] == [
        f"{d:02d} 09:00" for d in range(2, 9)
    ]
    assert elapsed < 2.0


@pytest.mark.parametrize(
    ("recurrence", "start", "expected"),
    [
        pytest.param(  # day 31 falls back to the month's last day, as Exchange does
            {
                "pattern": "absolute_monthly",
                "interval": 1,
                "day_of_month": 31,
                "range": {"type": "numbered", "number_of_occurrences": 4},
            },
            "2025-01-31T10:00:00Z",
            ["2025-01-31T10:00:00Z", "2025-02-28T10:00:00Z", "2025-03-31T09:00:00Z", "2025-04-30T09:00:00Z"],
            id="absolute-monthly-31st",
        ),
        pytest.param(
            {
                "pattern": "relative_monthly",
                "interval": 2,
                "days_of_week": ["Friday"],
                "day_of_week_index": "Last",
                "range": {"type": "end_date", "start_date": "2025-01-01", "end_date": "2025-07-25"},
            },
            "2025-01-31T15:00:00Z",
            ["2025-01-31T15:00:00Z", "2025-03-28T15:00:00Z", "2025-05-30T14:00:00Z", "2025-07-25T14:00:00Z"],
            id="relative-monthly-last-friday-every-2-months-end-date-inclusive",
        ),
        pytest.param(
            {
                "pattern": "relative_monthly",
                "interval": 1,
                "days_of_week": ["Weekday"],
                "day_of_week_index": "First",
                "range": {"type": "numbered", "number_of_occurrences": 3},
            },
            "2025-03-03T09:00:00Z",
            ["2025-03-03T09:00:00Z", "2025-04-01T08:00:00Z", "2025-05-01T08:00:00Z"],
            id="relative-monthly-first-weekday",
        ),
        pytest.param(
            {
                "pattern": "weekly",
                "interval": 2,
                "days_of_week": ["Tuesday", "Thursday"],
                "first_day_of_week": "Monday",
                "range": {"type": "numbered", "number_of_occurrences": 4},
            },
            "2025-06-03T12:00:00Z",
            ["2025-06-03T12:00:00Z", "2025-06-05T12:00:00Z", "2025-06-17T12:00:00Z", "2025-06-19T12:00:00Z"],
            id="weekly-every-other-week-two-days",
        ),
        pytest.param(
            {
                "pattern": "absolute_yearly",
                "day_of_month": 29,
                "month": "February",
                "range": {"type": "numbered", "number_of_occurrences": 3},
            },
            "2024-02-29T09:00:00Z",
            ["2024-02-29T09:00:00Z", "2025-02-28T09:00:00Z", "2026-02-28T09:00:00Z"],
            id="absolute-yearly-29-february",
        ),
        pytest.param(
            {"pattern": "daily", "interval": 3, "range": {"type": "end_date", "end_date": "2025-03-31"}},
            "2025-03-25T09:00:00Z",
            ["2025-03-25T09:00:00Z", "2025-03-28T09:00:00Z", "2025-03-31T08:00:00Z"],
            id="daily-every-3-days-across-spring-forward",
        ),
    ],
)
def test_patterns_expand_as_exchange_does(
    ews: EwsEmulator, alice: Account, recurrence: dict[str, Any], start: str, expected: list[str]
) -> None:
    end = start[:11] + f"{int(start[11:13]) + 1:02d}" + start[13:]
    create(ews, start=start, end=end, recurrence=recurrence)
    assert starts(ews, "2024-01-01T00:00:00Z", "2026-12-31T00:00:00Z") == expected


def test_relative_yearly_series_reads_back_through_exchangelib(ews: EwsEmulator, alice: Account) -> None:
    created = create(
        ews,
        start="2025-11-27T17:00:00Z",
        end="2025-11-27T20:00:00Z",
        subject="Thanksgiving dinner",
        recurrence={
            "pattern": "relative_yearly",
            "days_of_week": ["Thursday"],
            "day_of_week_index": "Fourth",
            "month": "November",
            "range": {"type": "no_end", "start_date": "2025-11-01"},
        },
    )
    master = alice.calendar.get(id=created["id"])
    pattern = master.recurrence.pattern
    assert isinstance(pattern, RelativeYearlyPattern)
    assert (pattern.weekday, pattern.week_number, pattern.month) == (4, 4, 11)
    assert isinstance(master.recurrence.boundary, NoEndPattern)
    assert master.recurrence.boundary.start == EWSDate(2025, 11, 1)
    assert master.last_occurrence is None  # a series without an end has no last occurrence
    view = alice.calendar.view(start=london(2026, 1, 1), end=london(2027, 12, 31))
    assert [v.start.date() for v in view] == [EWSDate(2026, 11, 26), EWSDate(2027, 11, 25)]


def test_series_created_through_exchangelib_with_an_end_date(ews: EwsEmulator, alice: Account) -> None:
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Surgery",
        start=london(2025, 1, 15, 8),
        end=london(2025, 1, 15, 9),
        recurrence=Recurrence(
            pattern=AbsoluteMonthlyPattern(interval=1, day_of_month=15),
            start=EWSDate(2025, 1, 15),
            end=EWSDate(2025, 4, 15),
        ),
    )
    item.save(send_meeting_invitations="SendToNone")
    master = alice.calendar.get(id=item.id)
    assert isinstance(master.recurrence.boundary, EndDatePattern)
    assert master.recurrence.boundary.end == EWSDate(2025, 4, 15)
    view = alice.calendar.view(start=london(2025, 1, 1), end=london(2025, 12, 31))
    assert [(v.start.astimezone(TZ).month, v.start.astimezone(TZ).hour) for v in view] == [
        (1, 8),
        (2, 8),
        (3, 8),
        (4, 8),
    ]
    assert (
        isinstance(master.recurrence.pattern, AbsoluteMonthlyPattern)
        and master.recurrence.pattern.day_of_month == 15
    )


def test_changing_an_exception_again_keeps_one_exception(ews: EwsEmulator, alice: Account) -> None:
    master = weekly_series(alice, number=3)
    occurrence = master.occurrence(index=2)
    occurrence.refresh()
    occurrence.location = "Room 1"
    occurrence.save(update_fields=["location"], send_meeting_invitations="SendToNone")
    exception = alice.calendar.get(id=occurrence.id)
    assert exception.type == "Exception"
    exception.location = "Room 2"
    exception.save(update_fields=["location"], send_meeting_invitations="SendToNone")
    master.refresh()
    assert len(master.modified_occurrences) == 1
    view = list(alice.calendar.view(start=london(2025, 10, 1), end=london(2025, 11, 1)))
    assert [v.location for v in view] == [None, "Room 2", None]


def test_relative_monthly_pattern_round_trips(ews: EwsEmulator, alice: Account) -> None:
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Board",
        start=london(2025, 9, 1, 9),
        end=london(2025, 9, 1, 10),
        recurrence=Recurrence(
            pattern=RelativeMonthlyPattern(interval=1, weekday=1, week_number=1),
            start=EWSDate(2025, 9, 1),
            number=3,
        ),
    )
    item.save(send_meeting_invitations="SendToNone")
    view = alice.calendar.view(start=london(2025, 9, 1), end=london(2025, 12, 31))
    assert [v.start.astimezone(TZ).strftime("%m-%d %H:%M") for v in view] == [
        "09-01 09:00",
        "10-06 09:00",
        "11-03 09:00",
    ]
    stored = ews.items(ALICE)[0]["recurrence"]
    assert stored["pattern"] == "relative_monthly" and stored["days_of_week"] == ["Monday"]
    assert stored["day_of_week_index"] == "First"


def test_control_plane_refuses_an_invalid_recurrence(ews: EwsEmulator, alice: Account) -> None:
    for recurrence in (
        {"pattern": "weekly", "days_of_week": [], "range": {"type": "no_end"}},
        {"pattern": "fortnightly", "range": {"type": "no_end"}},
        {"pattern": "daily", "range": {"type": "numbered", "number_of_occurrences": 0}},
        {
            "pattern": "daily",
            "range": {"type": "end_date", "start_date": "2025-02-01", "end_date": "2025-01-01"},
        },
    ):
        ews.control(
            "POST",
            f"mailboxes/{ALICE}/items",
            {
                "subject": "x",
                "start": "2025-01-06T09:00:00Z",
                "end": "2025-01-06T10:00:00Z",
                "recurrence": recurrence,
            },
            expect=400,
        )
    assert ews.items(ALICE) == []


def test_owner_deletes_an_occurrence_in_outlook(ews: EwsEmulator, alice: Account) -> None:
    master = weekly_series(alice, number=3)
    second = ews.items(ALICE, start="2025-10-13T00:00:00Z", end="2025-10-14T00:00:00Z")[0]
    assert second["calendar_item_type"] == "Occurrence"
    ews.control("DELETE", f"mailboxes/{ALICE}/items/{second['id']}", expect=204)
    master.refresh()
    assert [d.start for d in master.deleted_occurrences] == [london(2025, 10, 13, 9)]
    view = alice.calendar.view(start=london(2025, 10, 1), end=london(2025, 11, 1))
    assert [v.start.astimezone(TZ).day for v in view] == [6, 20]
