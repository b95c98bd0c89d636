"""Free/busy (GetUserAvailability) through exchangelib: merged digits, events in the caller's zone, privacy, errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from exchangelib import Account, EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorMailRecipientNotFound, ErrorTimeIntervalTooBig

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import TZ

ALICE = "alice@example.com"
BOB = "bob@example.com"
NEW_YORK = EWSTimeZone("America/New_York")


def add(ews: EwsEmulator, start: str, end: str, **fields: Any) -> dict[str, Any]:
    return ews.control(  # type: ignore[no-any-return]
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "Item", "start": start, "end": end, **fields},
        expect=201,
    )


@pytest.fixture
def diary(ews: EwsEmulator, alice: Account) -> dict[str, Any]:
    """Alice's Tuesday 8 July 2025 (London, UTC+1): a private 09:00, a tentative 10:30, a free 13:00, a daily stand-up."""
    series = add(
        ews,
        "2025-07-07T07:45:00Z",
        "2025-07-07T08:00:00Z",
        subject="Stand-up",
        time_zone="GMT Standard Time",
        recurrence={"pattern": "daily", "range": {"type": "numbered", "number_of_occurrences": 5}},
    )
    add(
        ews,
        "2025-07-08T08:00:00Z",
        "2025-07-08T09:00:00Z",
        subject="Doctor",
        sensitivity="Private",
        location="Clinic",
    )
    add(
        ews,
        "2025-07-08T09:30:00Z",
        "2025-07-08T10:30:00Z",
        subject="Maybe lunch",
        legacy_free_busy_status="Tentative",
    )
    add(
        ews, "2025-07-08T12:00:00Z", "2025-07-08T13:00:00Z", subject="Reading", legacy_free_busy_status="Free"
    )
    return series


def day(account: Account, address: str, view: str = "DetailedMerged", tz: EWSTimeZone = TZ) -> Any:
    start = EWSDateTime(2025, 7, 8, 0, 0, tzinfo=tz)
    [result] = account.protocol.get_free_busy_info(
        accounts=[(address, "Required", False)],
        start=start,
        end=start + timedelta(days=1),
        merged_free_busy_interval=30,
        requested_view=view,
    )
    return result


def test_own_free_busy_in_detail(ews: EwsEmulator, alice: Account, diary: dict[str, Any]) -> None:
    result = day(alice, ALICE)
    assert result.view_type == "DetailedMerged"
    merged = result.merged
    assert len(merged) == 48  # one digit per 30 minutes of the day
    # 08:30-09:00 stand-up (busy, shares its slot with nothing else), 09:00-10:00 doctor, 10:30-11:30 tentative.
    assert merged[17] == "2" and merged[18:20] == "22" and merged[21:23] == "11"
    assert merged[26:28] == "00"  # the 13:00 reading is Free: not published
    assert merged.count("0") == 48 - 5
    events = [
        (e.start.astimezone(TZ).strftime("%H:%M"), e.busy_type, e.details.subject)
        for e in result.calendar_events
    ]
    assert events == [
        ("08:45", "Busy", "Stand-up"),
        ("09:00", "Busy", "Doctor"),
        ("10:30", "Tentative", "Maybe lunch"),
    ]
    standup, doctor, _ = result.calendar_events
    assert standup.details.is_recurring and not standup.details.is_exception
    assert (
        doctor.details.is_private and doctor.details.location == "Clinic"
    )  # the owner sees her own private items
    assert [(p.start.hour, p.end.hour) for p in result.working_hours] == [(8, 17)]


def test_other_users_see_busy_times_without_details(
    ews: EwsEmulator, account_for: Callable[..., Account], alice: Account, diary: dict[str, Any]
) -> None:
    ews.add_account(BOB, display_name="Bob", time_zone="GMT Standard Time")
    result = day(account_for(BOB), ALICE)
    # Exchange's default calendar permission is AvailabilityOnly: Detailed is downgraded, times stay visible.
    assert result.view_type == "FreeBusyMerged"
    assert result.merged == day(alice, ALICE).merged
    assert [e.busy_type for e in result.calendar_events] == ["Busy", "Busy", "Tentative"]
    assert all(e.details is None for e in result.calendar_events)


def test_reviewer_sees_subjects_but_not_private_ones(
    ews: EwsEmulator, account_for: Callable[..., Account], alice: Account, diary: dict[str, Any]
) -> None:
    ews.add_account(BOB, display_name="Bob")
    ews.control("POST", "delegates", {"owner": ALICE, "delegate": BOB, "permission": "Reviewer"}, expect=201)
    result = day(account_for(BOB), ALICE, view="Detailed")
    assert result.view_type == "Detailed" and result.merged is None
    details = [(e.details.subject, e.details.location, e.details.is_private) for e in result.calendar_events]
    assert details == [("Stand-up", None, False), (None, None, True), ("Maybe lunch", None, False)]


def test_series_exception_and_deleted_occurrence_show_in_free_busy(
    ews: EwsEmulator, alice: Account, diary: dict[str, Any]
) -> None:
    occurrences = ews.items(ALICE, start="2025-07-07T00:00:00Z", end="2025-07-12T00:00:00Z")
    stand_ups = [o for o in occurrences if o["subject"] == "Stand-up"]
    ews.control("DELETE", f"mailboxes/{ALICE}/items/{stand_ups[1]['id']}", expect=204)  # Tuesday's
    ews.control(
        "PATCH",
        f"mailboxes/{ALICE}/items/{stand_ups[2]['id']}",  # Wednesday's moves to 11:00 and is OOF
        {"start": "2025-07-09T10:00:00Z", "end": "2025-07-09T10:30:00Z", "legacy_free_busy_status": "OOF"},
    )
    start = EWSDateTime(2025, 7, 7, tzinfo=TZ)
    [week] = alice.protocol.get_free_busy_info(
        accounts=[(alice, "Required", False)],
        start=start,
        end=start + timedelta(days=5),
        merged_free_busy_interval=60,
        requested_view="DetailedMerged",
    )
    shown = [
        (e.start.astimezone(TZ).strftime("%a %H:%M"), e.busy_type, e.details.is_exception)
        for e in week.calendar_events
        if e.details.subject == "Stand-up"
    ]
    assert shown == [
        ("Mon 08:45", "Busy", False),
        ("Wed 11:00", "OOF", True),
        ("Thu 08:45", "Busy", False),
        ("Fri 08:45", "Busy", False),
    ]
    assert week.merged[24 * 2 + 11] == "3"  # Wednesday 11:00-12:00 local


def test_times_are_given_in_the_requested_time_zone(
    ews: EwsEmulator, alice: Account, diary: dict[str, Any]
) -> None:
    # Asked from New York (UTC-4 in July), the 09:00 London doctor's appointment is at 04:00 local.
    result = day(alice, ALICE, tz=NEW_YORK)
    doctor = next(e for e in result.calendar_events if e.details.subject == "Doctor")
    assert doctor.start.astimezone(NEW_YORK).strftime("%H:%M") == "04:00"
    assert doctor.start.astimezone(TZ).strftime("%H:%M") == "09:00"
    assert result.merged[8] == "2"  # 04:00-04:30 New York


def test_unknown_mailbox_fails_only_its_own_entry(
    ews: EwsEmulator, alice: Account, diary: dict[str, Any]
) -> None:
    start = EWSDateTime(2025, 7, 8, tzinfo=TZ)
    results = list(
        alice.protocol.get_free_busy_info(
            accounts=[("nobody@example.com", "Required", False), (alice, "Optional", False)],
            start=start,
            end=start + timedelta(days=1),
            merged_free_busy_interval=30,
            requested_view="MergedOnly",
        )
    )
    assert isinstance(results[0], ErrorMailRecipientNotFound)
    assert results[1].view_type == "MergedOnly" and results[1].calendar_events is None
    assert "2" in results[1].merged


def test_a_window_longer_than_62_days_is_refused(ews: EwsEmulator, alice: Account) -> None:
    start = EWSDateTime(2025, 7, 1, tzinfo=TZ)
    with pytest.raises(ErrorTimeIntervalTooBig):
        list(
            alice.protocol.get_free_busy_info(
                accounts=[(alice, "Required", False)],
                start=start,
                end=start + timedelta(days=63),
            )
        )
