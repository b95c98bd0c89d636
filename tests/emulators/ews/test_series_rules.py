"""What Exchange does to series and all-day items that a sync engine depends on: series changes drop exceptions,
changes of an exception are reported on the master, wall-clock durations across DST, all-day snapping, the
recurrence checks, and bounded expansion work."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from exchangelib import UTC, Account, CalendarItem, EWSDate, EWSDateTime, EWSTimeZone
from exchangelib.errors import (
    ErrorOccurrenceCrossingBoundary,
    ErrorOccurrenceTimeSpanTooBig,
    ErrorRecurrenceEndDateTooBig,
    ErrorRecurrenceHasNoOccurrence,
)
from exchangelib.recurrence import DailyPattern, EndDatePattern, Recurrence, WeeklyPattern

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import TZ

ALICE = "alice@example.com"
PACIFIC = EWSTimeZone("America/Los_Angeles")


def london(year: int, month: int, day: int, hour: int = 0) -> EWSDateTime:
    return EWSDateTime(year, month, day, hour, tzinfo=TZ)


def daily_series(account: Account, days: int = 5, **fields: Any) -> CalendarItem:
    """09:00-10:00 London, every day from Monday 3 March 2025."""
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Stand-up",
        start=london(2025, 3, 3, 9),
        end=london(2025, 3, 3, 10),
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=EWSDate(2025, 3, 3), number=days),
        **fields,
    )
    item.save(send_meeting_invitations="SendToNone")
    return item


def view_of(ews: EwsEmulator, start: str, end: str) -> list[tuple[str, str, str | None]]:
    return [
        (v["calendar_item_type"], v["start"], v.get("original_start"))
        for v in ews.items(ALICE, start=start, end=end)
    ]


# ---- #1: a series' new time or pattern drops its exceptions and deleted occurrences ---------------------------------


def test_moving_a_series_drops_its_exceptions_and_deleted_occurrences(
    ews: EwsEmulator, alice: Account
) -> None:
    master = daily_series(alice)
    moved = master.occurrence(index=2)
    moved.refresh()
    moved.start, moved.end = london(2025, 3, 4, 14), london(2025, 3, 4, 15)
    moved.save(update_fields=["start", "end"], send_meeting_invitations="SendToNone")
    master.occurrence(index=4).delete(send_meeting_cancellations="SendToNone")
    pull = alice.calendar.subscribe_to_pull()

    master.refresh()
    master.start, master.end = london(2025, 3, 3, 11), london(2025, 3, 3, 12)
    master.save(update_fields=["start", "end"], send_meeting_invitations="SendToNone")

    # Five occurrences at the new time: no exception left at 14:00, no stale one at 09:00, the deleted one is back.
    shown = view_of(ews, "2025-03-01T00:00:00Z", "2025-03-10T00:00:00Z")
    assert shown == [
        ("Occurrence", f"2025-03-0{d}T11:00:00Z", f"2025-03-0{d}T11:00:00Z") for d in range(3, 8)
    ]
    [stored] = ews.items(ALICE)
    assert stored["modified_occurrences"] == [] and stored["deleted_occurrences"] == []
    # One change of the master, nothing else.
    events = list(alice.calendar.get_events(*pull))
    changes = [(type(e).__name__, e.item_id.id) for n in events for e in n.events if hasattr(e, "item_id")]
    assert changes == [("ModifiedEvent", master.id)]


def test_editing_a_series_subject_keeps_its_exceptions(ews: EwsEmulator, alice: Account) -> None:
    master = daily_series(alice)
    master.occurrence(index=3).delete(send_meeting_cancellations="SendToNone")
    master.refresh()
    master.subject = "Renamed"
    master.save(update_fields=["subject"], send_meeting_invitations="SendToNone")
    assert ews.items(ALICE)[0]["deleted_occurrences"] == ["2025-03-05T09:00:00Z"]


# ---- #2: notifications about an exception or occurrence name the master -------------------------------------------


def test_changes_of_an_occurrence_are_notified_as_changes_of_the_master(
    ews: EwsEmulator, alice: Account
) -> None:
    master = daily_series(alice)
    pull = alice.calendar.subscribe_to_pull()
    occurrence = master.occurrence(index=2)
    occurrence.refresh()
    occurrence.subject = "Stand-up (moved room)"
    occurrence.save(update_fields=["subject"], send_meeting_invitations="SendToNone")
    exception_id = occurrence.id
    master.occurrence(index=3).delete(send_meeting_cancellations="SendToNone")
    master.refresh()

    events = [e for n in alice.calendar.get_events(*pull) for e in n.events if hasattr(e, "item_id")]
    assert [(type(e).__name__, e.item_id.id) for e in events] == [("ModifiedEvent", master.id)] * 2
    assert exception_id != master.id
    # The last event carries the master's current change key.
    assert events[-1].item_id.changekey == master.changekey


# ---- #3: occurrences keep their wall-clock duration across DST ------------------------------------------------------


def test_overnight_and_all_day_occurrences_keep_local_times_across_the_spring_change(
    ews: EwsEmulator,
) -> None:
    ews.add_account(ALICE, "pw", time_zone="Pacific Standard Time")
    rec = {"pattern": "daily", "range": {"type": "numbered", "number_of_occurrences": 4}}
    common = {"time_zone": "Pacific Standard Time", "recurrence": rec}
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {
            "subject": "Night shift",
            "start": "2025-03-07T22:00:00-08:00",
            "end": "2025-03-08T06:00:00-08:00",
            **common,
        },
        expect=201,
    )
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {
            "subject": "Conference",
            "is_all_day": True,
            "start": "2025-03-07T00:00:00-08:00",
            "end": "2025-03-08T00:00:00-08:00",
            **common,
        },
        expect=201,
    )
    pacific = PACIFIC

    def local(value: str) -> str:
        return (
            datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(pacific).strftime("%m-%d %H:%M")
        )

    shown = [
        (v["subject"], local(v["start"]), local(v["end"]))
        for v in ews.items(ALICE, start="2025-03-06T00:00:00Z", end="2025-03-12T00:00:00Z")
    ]
    # Clocks go forward at 02:00 on Sunday 9 March.
    assert ("Night shift", "03-08 22:00", "03-09 06:00") in shown
    assert ("Conference", "03-09 00:00", "03-10 00:00") in shown
    assert ("Conference", "03-10 00:00", "03-11 00:00") in shown
    # A one-hour window just after midnight on the 10th meets only the occurrences of that day and night.
    subjects = [
        v["subject"] for v in ews.items(ALICE, start="2025-03-10T07:00:00Z", end="2025-03-10T08:00:00Z")
    ]
    assert subjects == ["Night shift", "Conference"]


# ---- #4: all-day items snap to midnights in their zone -------------------------------------------------------------


def test_all_day_item_through_exchangelib_in_a_non_utc_zone_across_dst(
    ews: EwsEmulator, account_for: Any
) -> None:
    ews.add_account(ALICE, "pass-for-tests", time_zone="Pacific Standard Time")
    account = account_for(ALICE)
    account.default_timezone = PACIFIC
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Offsite",
        is_all_day=True,
        start=EWSDate(2025, 3, 8),
        end=EWSDate(2025, 3, 10),
    )
    item.save(send_meeting_invitations="SendToNone")
    # Saturday 8 March 00:00 PST to Tuesday 11 March 00:00 PDT (exchangelib adds the day after the end date).
    [stored] = ews.items(ALICE)
    assert (stored["start"], stored["end"], stored["is_all_day"]) == (
        "2025-03-08T08:00:00Z",
        "2025-03-11T07:00:00Z",
        True,
    )
    fetched = account.calendar.get(id=item.id)
    assert fetched.is_all_day and (fetched.start, fetched.end) == (EWSDate(2025, 3, 8), EWSDate(2025, 3, 10))


def test_all_day_weekly_series_through_exchangelib(ews: EwsEmulator, account_for: Any) -> None:
    ews.add_account(ALICE, "pass-for-tests", time_zone="Pacific Standard Time")
    account = account_for(ALICE)
    account.default_timezone = PACIFIC
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Fridays off",
        is_all_day=True,
        start=EWSDate(2025, 2, 28),
        end=EWSDate(2025, 2, 28),
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=[5]), start=EWSDate(2025, 2, 28), number=4
        ),
    )
    item.save(send_meeting_invitations="SendToNone")
    view = list(
        account.calendar.view(
            start=EWSDateTime(2025, 2, 27, tzinfo=PACIFIC), end=EWSDateTime(2025, 3, 25, tzinfo=PACIFIC)
        )
    )
    assert [(v.start, v.end, v.is_all_day) for v in view] == [
        (EWSDate(2025, 2, 28), EWSDate(2025, 2, 28), True),
        (EWSDate(2025, 3, 7), EWSDate(2025, 3, 7), True),
        (
            EWSDate(2025, 3, 14),
            EWSDate(2025, 3, 14),
            True,
        ),  # after the change to PDT: still midnight to midnight
        (EWSDate(2025, 3, 21), EWSDate(2025, 3, 21), True),
    ]
    ends = [v["end"] for v in ews.items(ALICE, start="2025-02-27T00:00:00Z", end="2025-03-25T00:00:00Z")]
    assert ends == [
        "2025-03-01T08:00:00Z",
        "2025-03-08T08:00:00Z",
        "2025-03-15T07:00:00Z",
        "2025-03-22T07:00:00Z",
    ]


def test_all_day_times_off_midnight_are_snapped_on_create_and_update(ews: EwsEmulator) -> None:
    ews.add_account(ALICE, "pw", time_zone="GMT Standard Time")
    created = ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {
            "subject": "Holiday",
            "is_all_day": True,
            "time_zone": "GMT Standard Time",
            "start": "2025-07-07T10:30:00Z",
            "end": "2025-07-08T15:00:00Z",
        },
        expect=201,
    )
    # 11:30 BST on the 7th to 16:00 BST on the 8th: whole days, 7th 00:00 to 9th 00:00 London.
    assert (created["start"], created["end"]) == ("2025-07-06T23:00:00Z", "2025-07-08T23:00:00Z")
    patched = ews.control(
        "PATCH", f"mailboxes/{ALICE}/items/{created['id']}", {"end": "2025-07-10T09:00:00Z"}
    )
    assert patched["end"] == "2025-07-10T23:00:00Z"


# ---- #8: the recurrence checks Exchange makes -----------------------------------------------------------------------


def test_occurrences_longer_than_the_pattern_interval_are_refused(alice: Account) -> None:
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Too long",
        start=london(2025, 3, 3, 9),
        end=london(2025, 3, 4, 11),
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=EWSDate(2025, 3, 3), number=3),
    )
    with pytest.raises(ErrorOccurrenceTimeSpanTooBig):
        item.save(send_meeting_invitations="SendToNone")


def test_a_series_without_any_occurrence_is_refused(alice: Account) -> None:
    # Mondays only, from Tuesday 4 March to Thursday 6 March: no Monday in range.
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Never",
        start=london(2025, 3, 4, 9),
        end=london(2025, 3, 4, 10),
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=[1]),
            start=EWSDate(2025, 3, 4),
            end=EWSDate(2025, 3, 6),
        ),
    )
    with pytest.raises(ErrorRecurrenceHasNoOccurrence):
        item.save(send_meeting_invitations="SendToNone")


def test_an_occurrence_cannot_move_past_its_neighbours(ews: EwsEmulator, alice: Account) -> None:
    master = daily_series(alice)
    occurrence = master.occurrence(index=2)
    occurrence.refresh()
    occurrence.start, occurrence.end = london(2025, 3, 6, 9), london(2025, 3, 6, 10)  # past the 5th (index 3)
    with pytest.raises(ErrorOccurrenceCrossingBoundary):
        occurrence.save(update_fields=["start", "end"], send_meeting_invitations="SendToNone")
    occurrence.start, occurrence.end = (
        london(2025, 3, 3, 8),
        london(2025, 3, 3, 9),
    )  # before the 3rd (index 1)
    with pytest.raises(ErrorOccurrenceCrossingBoundary):
        occurrence.save(update_fields=["start", "end"], send_meeting_invitations="SendToNone")
    assert ews.items(ALICE)[0]["modified_occurrences"] == []
    # Within its neighbours it may move.
    occurrence.start, occurrence.end = london(2025, 3, 4, 16), london(2025, 3, 4, 17)
    occurrence.save(update_fields=["start", "end"], send_meeting_invitations="SendToNone")


def test_an_absurd_end_date_is_refused(alice: Account) -> None:
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="For ever",
        start=london(2025, 3, 3, 9),
        end=london(2025, 3, 3, 10),
        recurrence=Recurrence(
            pattern=DailyPattern(interval=1), start=EWSDate(2025, 3, 3), end=EWSDate(9999, 12, 30)
        ),
    )
    with pytest.raises(ErrorRecurrenceEndDateTooBig):
        item.save(send_meeting_invitations="SendToNone")


# ---- #15: expansion work is bounded by the window, not the series ---------------------------------------------------


def test_long_series_are_cheap_to_expand_and_to_describe(ews: EwsEmulator, alice: Account) -> None:
    old = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Since 1700",
        start=EWSDateTime(1700, 1, 1, 9, tzinfo=UTC),
        end=EWSDateTime(1700, 1, 1, 10, tzinfo=UTC),
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=EWSDate(1700, 1, 1)),
    )
    old.save(send_meeting_invitations="SendToNone")
    long = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Until 4500",
        start=london(2025, 1, 1, 9),
        end=london(2025, 1, 1, 10),
        recurrence=Recurrence(
            pattern=DailyPattern(interval=1), start=EWSDate(2025, 1, 1), end=EWSDate(4500, 12, 30)
        ),
    )
    long.save(send_meeting_invitations="SendToNone")

    started = time.monotonic()
    long.refresh()  # exchangelib asks for FirstOccurrence and LastOccurrence
    view = list(alice.calendar.view(start=london(2025, 7, 1), end=london(2025, 7, 3)))
    far = long.occurrence(index=500_000 // 10)
    far.refresh()
    elapsed = time.monotonic() - started
    assert isinstance(long.recurrence.boundary, EndDatePattern)
    assert long.last_occurrence.start == EWSDateTime(4500, 12, 30, 9, tzinfo=UTC)
    assert long.first_occurrence.start == EWSDateTime(2025, 1, 1, 9, tzinfo=UTC)
    assert sorted(v.subject for v in view) == ["Since 1700", "Since 1700", "Until 4500", "Until 4500"]
    assert far.start == london(2025, 1, 1, 9) + timedelta(days=49_999)
    assert elapsed < 1.5
