"""EwsAvailability against the EWS emulator over real HTTP: the items an adviser has in Outlook (made through the
emulator's control plane, as Outlook would), read back through Exchange's free/busy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from calsync import deadline
from calsync.adapters.ews.availability import EwsAvailability
from calsync.domain import DeadlineExceededError, ExchangeConnection, FreeBusy, PermanentError, TimeWindow
from calsync.domain.availability import BusyTime
from emulators.ews.testing import EwsEmulator

PASSWORD = "pass-for-tests"
SERVICE = "svc@example.com"
ALICE = "alice@example.com"
SECRET = {"username": SERVICE, "password": PASSWORD}
DAY = datetime(2027, 3, 10, tzinfo=UTC)
WINDOW = TimeWindow(DAY, DAY + timedelta(days=1))

pytestmark = pytest.mark.usefixtures("fresh_exchangelib")


@pytest.fixture
def ews(ews_server: EwsEmulator) -> Iterator[EwsEmulator]:
    """Alice's calendar, a service account allowed to impersonate her, and her day: a meeting, a private
    appointment, a tentative hold, and a free item."""
    ews_server.reset()
    for address in (SERVICE, ALICE):
        ews_server.add_account(address, PASSWORD)
    ews_server.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": ["*"]})
    for subject, hour, free_busy, sensitivity in (
        ("Team meeting", 9, "Busy", "Normal"),
        ("Dentist", 12, "Busy", "Private"),
        ("Maybe lunch", 13, "Tentative", "Normal"),
        ("Reading time", 15, "Free", "Normal"),
    ):
        ews_server.control(
            "POST",
            f"mailboxes/{ALICE}/items",
            {
                "subject": subject,
                "start": (DAY + timedelta(hours=hour)).isoformat(),
                "end": (DAY + timedelta(hours=hour, minutes=30)).isoformat(),
                "legacy_free_busy_status": free_busy,
                "sensitivity": sensitivity,
            },
            expect=201,
        )
    yield ews_server
    ews_server.control("DELETE", "faults")


@pytest.fixture
def availability(ews: EwsEmulator) -> EwsAvailability:
    return EwsAvailability(ExchangeConnection(endpoint=ews.ews_url, secret_name="calsync/exchange"), SECRET)


def at(hour: int) -> TimeWindow:
    return TimeWindow(DAY + timedelta(hours=hour), DAY + timedelta(hours=hour, minutes=30))


def shown(found: list[BusyTime]) -> list[tuple[TimeWindow, FreeBusy, bool, str | None, bool]]:
    return [(b.window, b.busy_type, b.detailed, b.subject, b.private) for b in found]


def test_a_reviewer_sees_each_busy_item_with_its_subject_but_a_private_one_without(
    ews: EwsEmulator, availability: EwsAvailability
) -> None:
    # Given the service account may read Alice's calendar (Reviewer)
    ews.control("POST", "delegates", {"owner": ALICE, "delegate": SERVICE, "permission": "Reviewer"})
    # When her day is read
    found = availability.busy_times(ALICE, WINDOW)
    # Then the meeting shows its subject, the private item only that it is private, the free item not at all
    assert shown(found) == [
        (at(9), FreeBusy.BUSY, True, "Team meeting", False),
        (at(12), FreeBusy.BUSY, True, None, True),
        (at(13), FreeBusy.TENTATIVE, True, "Maybe lunch", False),
    ]
    assert all(b.item_id for b in found)


def test_with_free_busy_access_only_no_item_shows_a_subject(availability: EwsAvailability) -> None:
    # Given the service account only impersonates (exchangelib asks free/busy as itself): Exchange's default
    # permission, times and busy types only
    found = availability.busy_times(ALICE, WINDOW)
    assert shown(found) == [
        (at(9), FreeBusy.BUSY, False, None, False),
        (at(12), FreeBusy.BUSY, False, None, False),
        (at(13), FreeBusy.TENTATIVE, False, None, False),
    ]
    assert not any(b.item_id for b in found)


def test_only_items_overlapping_the_window_are_answered(availability: EwsAvailability) -> None:
    found = availability.busy_times(
        ALICE, TimeWindow(DAY + timedelta(hours=12, minutes=15), DAY + timedelta(hours=13))
    )
    assert [b.window for b in found] == [at(12)]


def test_an_unknown_mailbox_is_a_permanent_error_naming_it(availability: EwsAvailability) -> None:
    with pytest.raises(PermanentError, match=re.escape("nobody@example.com")):
        availability.busy_times("nobody@example.com", WINDOW)


def test_a_request_past_its_deadline_sends_nothing(ews: EwsEmulator, availability: EwsAvailability) -> None:
    before = ews.control("GET", "stats")["operations"].get("GetUserAvailability", 0)
    with deadline.within(0.0), pytest.raises(DeadlineExceededError, match=re.escape(f"free/busy of {ALICE}")):
        availability.busy_times(ALICE, WINDOW)
    assert ews.control("GET", "stats")["operations"].get("GetUserAvailability", 0) == before
