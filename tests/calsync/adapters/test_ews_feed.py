"""EwsFeed against the EWS emulator over real HTTP: changes made as an adviser would make them in Outlook (the
emulator's control plane) must come back as exactly the expected MailboxChanges, in as few requests as the emulator's
statistics count."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import pytest

from calsync.adapters.ews import EwsCalendar, EwsFeed
from calsync.domain import (
    EventContent,
    ExchangeConnection,
    FreeBusy,
    JrniKey,
    PermanentError,
    ResyncRequiredError,
    RetryableError,
    Stamp,
    TimeWindow,
)
from calsync.domain.inbound import CalendarEvent, MailboxChanges
from calsync.ports import CalendarFeed
from emulators.ews.testing import EwsEmulator

PASSWORD = "pass-for-tests"
SERVICE = "svc@example.com"
ALICE = "alice@example.com"  # Europe/Berlin ("W. Europe Standard Time"): all-day days are not UTC days
BOB = "bob@example.com"
SECRET = {"username": SERVICE, "password": PASSWORD}
UTC = datetime.UTC
WINDOW = TimeWindow(datetime.datetime(2025, 3, 1, tzinfo=UTC), datetime.datetime(2025, 6, 1, tzinfo=UTC))


# ---- fixtures ------------------------------------------------------------------------------------------------------


# exchangelib starts each test with no cached Accounts or connections (the adapters conftest).
pytestmark = pytest.mark.usefixtures("fresh_exchangelib")


@pytest.fixture
def ews(ews_server: EwsEmulator) -> Iterator[EwsEmulator]:
    """A service account impersonating alice (in Berlin) and bob (in UTC)."""
    ews_server.reset()
    ews_server.add_account(SERVICE, PASSWORD)
    ews_server.add_account(ALICE, PASSWORD, time_zone="W. Europe Standard Time")
    ews_server.add_account(BOB, PASSWORD)
    ews_server.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": ["*"]})
    yield ews_server
    ews_server.control("DELETE", "faults")


def connection(ews: EwsEmulator) -> ExchangeConnection:
    return ExchangeConnection(endpoint=ews.ews_url, secret_name="calsync/exchange")


@pytest.fixture
def feed(ews: EwsEmulator) -> EwsFeed:
    return EwsFeed(connection(ews), SECRET)


def utc(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).astimezone(UTC)


def window(start: str, end: str) -> TimeWindow:
    return TimeWindow(utc(start), utc(end))


def outlook_creates(
    ews: EwsEmulator, subject: str, start: str, end: str, mailbox: str = ALICE, **fields: Any
) -> dict[str, Any]:
    """An item made by the adviser in Outlook."""
    body = {"subject": subject, "start": start, "end": end, **fields}
    return dict(ews.control("POST", f"mailboxes/{mailbox}/items", body, expect=201))


def outlook_edits(ews: EwsEmulator, item_id: str, **fields: Any) -> dict[str, Any]:
    return dict(ews.control("PATCH", f"mailboxes/{ALICE}/items/{quote(item_id, safe='')}", fields))


def outlook_deletes(ews: EwsEmulator, item_id: str) -> None:
    ews.control("DELETE", f"mailboxes/{ALICE}/items/{quote(item_id, safe='')}", expect=204)


def requests_made(ews: EwsEmulator) -> dict[str, int]:
    return dict(ews.control("GET", "stats")["operations"])


def event(item: dict[str, Any], **expected: Any) -> CalendarEvent:
    """What ``item`` (control-plane JSON, as Exchange now holds it) must come back as."""
    fields: dict[str, Any] = {
        "remote_id": item["id"],
        "version": item["change_key"],
        "window": window(item["start"], item["end"]),
        "free_busy": FreeBusy(item["legacy_free_busy_status"]),
        "subject": item["subject"],
    }
    return CalendarEvent(**{**fields, **expected})


def weekly(count: int = 4) -> dict[str, Any]:
    return {
        "pattern": "weekly",
        "days_of_week": ["Monday"],
        "range": {"type": "numbered", "start_date": "2025-04-07", "number_of_occurrences": count},
    }


# ---- the first sync ------------------------------------------------------------------------------------------------


def test_is_a_calendar_feed(feed: EwsFeed) -> None:
    port: CalendarFeed = feed
    assert port.changes is not None and feed.name == "ews"


def test_the_first_sync_returns_every_item_in_one_request_and_the_next_one_nothing(
    ews: EwsEmulator, feed: EwsFeed
) -> None:
    one = outlook_creates(ews, "Dentist", "2025-04-01T09:00:00Z", "2025-04-01T10:00:00Z")
    two = outlook_creates(
        ews, "Team lunch", "2025-04-02T11:00:00Z", "2025-04-02T12:00:00Z", legacy_free_busy_status="Tentative"
    )
    outlook_creates(ews, "Bob's own", "2025-04-01T09:00:00Z", "2025-04-01T10:00:00Z", mailbox=BOB)

    first = feed.changes(ALICE, None, WINDOW)

    assert first == MailboxChanges(mailbox=ALICE, upserts=[event(one), event(two)], cursor=first.cursor)
    assert first.cursor
    assert requests_made(ews) == {"SyncFolderItems": 1}  # no GetFolder, no probe, no GetItem
    again = feed.changes(ALICE, first.cursor, WINDOW)
    assert (again.upserts, again.removed, again.complete_series) == ([], [], [])
    assert requests_made(ews) == {"SyncFolderItems": 2}


# ---- incremental changes -------------------------------------------------------------------------------------------


def test_an_incremental_sync_reports_creates_moves_deletes_and_what_each_item_shows_in_one_request(
    ews: EwsEmulator, feed: EwsFeed
) -> None:
    moved = outlook_creates(ews, "Dentist", "2025-04-01T09:00:00Z", "2025-04-01T10:00:00Z")
    freed = outlook_creates(ews, "Gym", "2025-04-01T12:00:00Z", "2025-04-01T13:00:00Z")
    gone = outlook_creates(ews, "Cancelled call", "2025-04-01T15:00:00Z", "2025-04-01T16:00:00Z")
    outlook_creates(ews, "Untouched", "2025-04-03T15:00:00Z", "2025-04-03T16:00:00Z")
    cursor = feed.changes(ALICE, None, WINDOW).cursor
    before = requests_made(ews)

    moved = outlook_edits(ews, moved["id"], start="2025-04-01T13:30:00Z", end="2025-04-01T14:30:00Z")
    freed = outlook_edits(ews, freed["id"], legacy_free_busy_status="Free")
    outlook_deletes(ews, gone["id"])
    private = outlook_creates(
        ews, "Therapy", "2025-04-04T08:00:00Z", "2025-04-04T09:00:00Z", sensitivity="Private"
    )
    secret = outlook_creates(
        ews,
        "Board",
        "2025-04-04T10:00:00Z",
        "2025-04-04T11:00:00Z",
        sensitivity="Confidential",
        legacy_free_busy_status="OOF",
    )
    personal = outlook_creates(
        ews, "Call mum", "2025-04-04T12:00:00Z", "2025-04-04T12:30:00Z", sensitivity="Personal"
    )
    meeting = outlook_creates(
        ews,
        "Review",
        "2025-04-04T14:00:00Z",
        "2025-04-04T15:00:00Z",
        optional_attendees=[BOB],
        legacy_free_busy_status="WorkingElsewhere",
    )

    changes = feed.changes(ALICE, cursor, WINDOW)

    assert changes == MailboxChanges(
        mailbox=ALICE,
        upserts=[
            event(moved),
            event(freed),
            event(private, is_private=True),
            event(secret, is_private=True),
            event(personal),
            event(meeting, has_attendees=True),
        ],
        removed=[gone["id"]],
        complete_series=[moved["id"], freed["id"]],  # updated single items: no occurrences (see series below)
        cursor=changes.cursor,
    )
    assert changes.cursor not in (None, cursor)
    after = requests_made(ews)
    assert (
        after["SyncFolderItems"] == before["SyncFolderItems"] + 1
        and sum(after.values()) == sum(before.values()) + 1
    )


@dataclass(frozen=True)
class FreeBusyCase:
    exchange: str
    expected: FreeBusy


@pytest.mark.parametrize(
    "case",
    [
        FreeBusyCase("Free", FreeBusy.FREE),
        FreeBusyCase("Tentative", FreeBusy.TENTATIVE),
        FreeBusyCase("Busy", FreeBusy.BUSY),
        FreeBusyCase("OOF", FreeBusy.OOF),
        FreeBusyCase("WorkingElsewhere", FreeBusy.WORKING_ELSEWHERE),
        FreeBusyCase(
            "NoData", FreeBusy.BUSY
        ),  # says nothing about availability: blocks, rather than risk a double booking
    ],
    ids=lambda c: c.exchange,
)
def test_free_busy_status(ews: EwsEmulator, feed: EwsFeed, case: FreeBusyCase) -> None:
    outlook_creates(
        ews, "Item", "2025-04-01T09:00:00Z", "2025-04-01T10:00:00Z", legacy_free_busy_status=case.exchange
    )
    [got] = feed.changes(ALICE, None, WINDOW).upserts
    assert got.free_busy is case.expected


def test_an_item_written_by_calsync_comes_back_with_its_stamp(ews: EwsEmulator, feed: EwsFeed) -> None:
    start = datetime.datetime(2025, 4, 1, 9, tzinfo=UTC)
    stamp = Stamp("int-1", JrniKey("37000", "101"))
    ours = EwsCalendar(connection(ews), SECRET).create_event(
        ALICE,
        EventContent(
            stamp=stamp,
            subject="Haircut with Sam",
            body="",
            window=TimeWindow(start, start + datetime.timedelta(hours=1)),
            free_busy=FreeBusy.TENTATIVE,
        ),
    )
    # Someone else's property set, and half of a stamp, are not ours.
    outlook_creates(
        ews,
        "Imported",
        "2025-04-02T09:00:00Z",
        "2025-04-02T10:00:00Z",
        extended_properties=[
            {
                "property_set_id": "11111111-2222-3333-4444-555555555555",
                "property_name": "CalsyncJrniKey",
                "property_type": "String",
                "value": "37000/102",
            },
        ],
    )

    by_id = {e.remote_id: e for e in feed.changes(ALICE, None, WINDOW).upserts}

    assert by_id.pop(ours.remote_id) == CalendarEvent(
        remote_id=ours.remote_id,
        version=ours.version,
        window=TimeWindow(start, start + datetime.timedelta(hours=1)),
        free_busy=FreeBusy.TENTATIVE,
        subject="Haircut with Sam",
        stamp=stamp,
    )
    assert [e.stamp for e in by_id.values()] == [None]


# ---- all-day items -------------------------------------------------------------------------------------------------


def test_all_day_items_block_their_days_in_the_mailbox_zone_also_across_a_clock_change(
    ews: EwsEmulator, feed: EwsFeed
) -> None:
    # Made in Outlook in Berlin: 30 March 2025 is 23 hours long there (clocks go forward at 02:00).
    day = outlook_creates(
        ews, "Holiday", "2025-04-10T10:00:00+02:00", "2025-04-10T11:00:00+02:00", is_all_day=True
    )
    spring = outlook_creates(
        ews, "Weekend away", "2025-03-29T00:00:00+01:00", "2025-03-31T00:00:00+02:00", is_all_day=True
    )

    got = {e.remote_id: e for e in feed.changes(ALICE, None, WINDOW).upserts}

    assert got[day["id"]].window == window("2025-04-10T00:00:00+02:00", "2025-04-11T00:00:00+02:00")
    assert got[spring["id"]].window == window("2025-03-29T00:00:00+01:00", "2025-03-31T00:00:00+02:00")
    assert got[spring["id"]].window.end - got[spring["id"]].window.start == datetime.timedelta(hours=47)
    assert got[day["id"]].is_all_day and got[spring["id"]].is_all_day


# ---- recurring series ----------------------------------------------------------------------------------------------


def occurrences(ews: EwsEmulator) -> list[dict[str, Any]]:
    return [
        v
        for v in ews.items(ALICE, start="2025-03-01T00:00:00Z", end="2025-06-01T00:00:00Z")
        if v["calendar_item_type"] in ("Occurrence", "Exception")
    ]


def test_a_series_becomes_its_occurrences_inside_the_window_with_one_more_request(
    ews: EwsEmulator, feed: EwsFeed
) -> None:
    master = outlook_creates(
        ews,
        "Stand-up",
        "2025-04-07T09:00:00+02:00",
        "2025-04-07T09:30:00+02:00",
        recurrence=weekly(10),
        time_zone="W. Europe Standard Time",
    )
    single = outlook_creates(ews, "Dentist", "2025-04-08T09:00:00Z", "2025-04-08T10:00:00Z")
    inside = TimeWindow(utc("2025-04-01T00:00:00+00:00"), utc("2025-04-22T00:00:00+00:00"))

    changes = feed.changes(ALICE, None, inside)

    expected = [event(o, series_id=master["id"]) for o in occurrences(ews) if utc(o["start"]) < inside.end]
    assert [e.window.start for e in expected] == [utc(f"2025-04-{d:02d}T09:00:00+02:00") for d in (7, 14, 21)]
    assert changes == MailboxChanges(
        mailbox=ALICE,
        upserts=[event(single), *expected],
        complete_series=[master["id"]],
        cursor=changes.cursor,
    )
    assert requests_made(ews) == {"SyncFolderItems": 1, "FindItem": 1}


def test_an_exception_and_a_deleted_occurrence_change_the_series_as_outlook_shows_it(
    ews: EwsEmulator, feed: EwsFeed
) -> None:
    master = outlook_creates(
        ews, "Stand-up", "2025-04-07T09:00:00Z", "2025-04-07T09:30:00Z", recurrence=weekly(4)
    )
    other = outlook_creates(
        ews,
        "Other series",
        "2025-04-08T09:00:00Z",
        "2025-04-08T09:30:00Z",
        recurrence=weekly(4) | {"days_of_week": ["Tuesday"]},
    )
    cursor = feed.changes(ALICE, None, WINDOW).cursor
    first, second, third, _ = [o for o in occurrences(ews) if o["subject"] == "Stand-up"]
    before = requests_made(ews)

    outlook_edits(
        ews, second["id"], start="2025-04-15T13:00:00Z", end="2025-04-15T13:45:00Z"
    )  # moved to Tuesday
    outlook_deletes(ews, third["id"])

    changes = feed.changes(ALICE, cursor, WINDOW)

    now = [o for o in occurrences(ews) if o["subject"] == "Stand-up"]
    assert [(o["calendar_item_type"], o["start"]) for o in now] == [
        ("Occurrence", "2025-04-07T09:00:00Z"),
        ("Exception", "2025-04-15T13:00:00Z"),
        ("Occurrence", "2025-04-28T09:00:00Z"),
    ]
    assert changes == MailboxChanges(
        mailbox=ALICE,
        upserts=[event(o, series_id=master["id"]) for o in now],
        complete_series=[master["id"]],
        cursor=changes.cursor,
    )
    assert now[0]["id"] == first["id"]  # an occurrence keeps its id
    assert other["id"] not in {e.series_id for e in changes.upserts}  # unchanged series are not expanded
    after = requests_made(ews)
    assert (
        after["SyncFolderItems"] - before["SyncFolderItems"] == 1
        and after["FindItem"] - before.get("FindItem", 0) == 1
    )
    assert sum(after.values()) - sum(before.values()) == 2


def test_a_deleted_series_is_removed_by_its_master_id(ews: EwsEmulator, feed: EwsFeed) -> None:
    master = outlook_creates(
        ews, "Stand-up", "2025-04-07T09:00:00Z", "2025-04-07T09:30:00Z", recurrence=weekly()
    )
    cursor = feed.changes(ALICE, None, WINDOW).cursor
    outlook_deletes(ews, master["id"])

    changes = feed.changes(ALICE, cursor, WINDOW)

    assert (changes.upserts, changes.removed, changes.complete_series) == ([], [master["id"]], [])
    assert requests_made(ews).get("FindItem", 0) == 1  # only the first sync's


def test_a_series_turned_into_a_single_item_leaves_no_occurrence(ews: EwsEmulator, feed: EwsFeed) -> None:
    master = outlook_creates(
        ews, "Stand-up", "2025-04-07T09:00:00Z", "2025-04-07T09:30:00Z", recurrence=weekly()
    )
    cursor = feed.changes(ALICE, None, WINDOW).cursor
    single = outlook_edits(ews, master["id"], recurrence=None)

    changes = feed.changes(ALICE, cursor, WINDOW)

    assert changes.upserts == [event(single)] and changes.complete_series == [master["id"]]


def test_a_calendar_view_fuller_than_a_page_is_narrowed_until_nothing_is_missed(ews: EwsEmulator) -> None:
    daily = {
        "pattern": "daily",
        "range": {"type": "numbered", "start_date": "2025-04-01", "number_of_occurrences": 20},
    }
    master = outlook_creates(ews, "Daily", "2025-04-01T09:00:00Z", "2025-04-01T09:30:00Z", recurrence=daily)
    for day in range(1, 8):
        outlook_creates(ews, f"Single {day}", f"2025-04-{day:02d}T12:00:00Z", f"2025-04-{day:02d}T13:00:00Z")

    changes = EwsFeed(connection(ews), SECRET, view_page_size=4).changes(ALICE, None, WINDOW)

    series = [e for e in changes.upserts if e.series_id == master["id"]]
    assert [e.window.start.day for e in series] == list(range(1, 21))  # every occurrence, each once


# ---- paging, cursors and errors ------------------------------------------------------------------------------------


def test_more_changes_than_a_page_are_read_in_several_pages_each_once(ews: EwsEmulator) -> None:
    made = [
        outlook_creates(ews, f"Item {n}", "2025-04-01T09:00:00Z", "2025-04-01T10:00:00Z")["id"]
        for n in range(12)
    ]
    small_pages = EwsFeed(connection(ews), SECRET, max_changes_returned=5)

    first = small_pages.changes(ALICE, None, WINDOW)

    assert [e.remote_id for e in first.upserts] == made
    assert requests_made(ews) == {"SyncFolderItems": 3}  # 5 + 5 + 2
    for item_id in made[:6]:
        outlook_deletes(ews, item_id)
    assert small_pages.changes(ALICE, first.cursor, WINDOW).removed == made[:6]
    assert small_pages.changes(ALICE, None, WINDOW).upserts == first.upserts[6:]


def test_six_hundred_changes_take_two_requests_of_512(ews: EwsEmulator, feed: EwsFeed) -> None:
    for n in range(600):
        outlook_creates(ews, f"Item {n}", "2025-04-01T09:00:00Z", "2025-04-01T10:00:00Z")

    changes = feed.changes(ALICE, None, WINDOW)

    assert len({e.remote_id for e in changes.upserts}) == 600
    assert requests_made(ews) == {"SyncFolderItems": 2}


def test_a_cursor_exchange_no_longer_accepts_asks_for_a_resync(ews: EwsEmulator, feed: EwsFeed) -> None:
    bobs = feed.changes(BOB, None, WINDOW).cursor
    assert bobs is not None
    for cursor in ("H4sIAAAAAAAA/not-a-sync-state", bobs):  # corrupt, and another mailbox's
        with pytest.raises(ResyncRequiredError, match=re.escape(ALICE)):
            feed.changes(ALICE, cursor, WINDOW)


def test_throttling_is_retryable_after_the_servers_back_off(ews: EwsEmulator, feed: EwsFeed) -> None:
    ews.control(
        "POST",
        "faults",
        {"operation": "SyncFolderItems", "kind": "server_busy", "back_off_ms": 3000, "count": 1},
    )
    with pytest.raises(RetryableError) as raised:
        feed.changes(ALICE, None, WINDOW)
    assert raised.value.delay_seconds == 3.0
    assert not isinstance(raised.value, ResyncRequiredError)


def test_an_unknown_mailbox_is_permanent(ews: EwsEmulator, feed: EwsFeed) -> None:
    with pytest.raises(PermanentError, match=re.escape("nobody@example.com")):
        feed.changes("nobody@example.com", None, WINDOW)


def test_a_page_size_exchange_would_refuse_is_refused_at_construction(ews: EwsEmulator) -> None:
    with pytest.raises(ValueError, match="512"):
        EwsFeed(connection(ews), SECRET, max_changes_returned=513)
    with pytest.raises(PermanentError, match="username"):
        EwsFeed(replace(connection(ews)), {"password": PASSWORD})


def test_a_mailbox_that_is_no_address_is_never_read(ews: EwsEmulator, feed: EwsFeed) -> None:
    before = ews.control("GET", "stats")
    with pytest.raises(
        PermanentError, match=r"'alice@example\.com\\x00' is not a valid address.*fix the mapping"
    ):
        feed.changes("alice@example.com\x00", None, WINDOW)
    after = ews.control("GET", "stats")
    assert (after["operations"], after["http_statuses"]) == (before["operations"], before["http_statuses"])
