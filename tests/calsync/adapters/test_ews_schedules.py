"""EwsScheduleWriter against the EWS emulator over real HTTP: the emulator's control plane (its expanded view of a
calendar) is the judge of what Outlook shows, and its statistics count the requests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync.adapters.ews import PROPERTY_SET_ID, EwsCalendar, EwsFeed
from calsync.adapters.ews.schedules import EwsScheduleWriter
from calsync.domain import (
    EventContent,
    ExchangeConnection,
    FreeBusy,
    JrniKey,
    Mapping,
    OccurrenceDeletedError,
    PermanentError,
    ResourceKind,
    SeriesGoneError,
    Stamp,
    ThrottledError,
    TimeWindow,
)
from calsync.domain.schedules import WrittenItem
from calsync.engine.inbound import CreateBlock, InboundOptions, plan_inbound
from emulators.ews.testing import EwsEmulator

PASSWORD = "pass-for-tests"
SERVICE = "svc@example.com"
ALICE = "alice@example.com"
SECRET = {"username": SERVICE, "password": PASSWORD}
LONDON = ZoneInfo("Europe/London")
INTEGRATION = "int-1"
EVENINGS = "w:1020+960:0,1,2"  # Mon, Tue, Wed 17:00 for 16 hours
SUBJECT = "Outside working hours"
# Monday 22 March 2027; the clocks go forward on Sunday 28 March.
FIRST_DAY = date(2027, 3, 22)

pytestmark = pytest.mark.usefixtures("fresh_exchangelib")


@pytest.fixture
def ews(ews_server: EwsEmulator) -> Iterator[EwsEmulator]:
    """The emulator with a service account allowed to impersonate alice."""
    ews_server.reset()
    for address in (SERVICE, ALICE):
        ews_server.add_account(address, PASSWORD)
    ews_server.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": ["*"]})
    yield ews_server
    ews_server.control("DELETE", "faults")


def connection(ews: EwsEmulator) -> ExchangeConnection:
    return ExchangeConnection(endpoint=ews.ews_url, secret_name="calsync/exchange")


@pytest.fixture
def writer(ews: EwsEmulator) -> EwsScheduleWriter:
    return EwsScheduleWriter(connection(ews), SECRET)


def evenings(writer: EwsScheduleWriter, *, integration_id: str = INTEGRATION) -> str:
    return writer.create_series(
        ALICE,
        integration_id=integration_id,
        key=EVENINGS,
        zone="Europe/London",
        weekdays=(0, 1, 2),
        start=time(17),
        minutes=960,
        first_day=FIRST_DAY,
        subject=SUBJECT,
        free_busy="Busy",
    )


def london(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=LONDON)


def view(ews: EwsEmulator, start: date, end: date) -> list[dict[str, Any]]:
    """What Outlook shows between two dates (series expanded), by start."""
    items = ews.items(ALICE, start=f"{start.isoformat()}T00:00:00Z", end=f"{end.isoformat()}T00:00:00Z")
    return sorted(items, key=lambda item: str(item["start"]))


def local(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(LONDON)


def operations(ews: EwsEmulator) -> dict[str, int]:
    return dict(ews.control("GET", "stats")["operations"])


def ours(item: dict[str, Any]) -> dict[str, str]:
    return {
        p["property_name"]: p["value"]
        for p in item["extended_properties"]
        if p.get("property_set_id") == PROPERTY_SET_ID
    }


# ---- series ----------------------------------------------------------------------------------------------------------


def test_a_series_shows_every_evening_at_1700_london_time_also_across_the_clock_change(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    master_id = evenings(writer)

    shown = view(ews, FIRST_DAY, FIRST_DAY + timedelta(days=14))
    assert [local(item["start"]).date() for item in shown] == [
        FIRST_DAY + timedelta(days=n) for n in (0, 1, 2, 7, 8, 9)
    ]
    for item in shown:
        start, end = local(item["start"]), local(item["end"])
        assert (start.time(), end.time(), end.date() - start.date()) == (time(17), time(9), timedelta(days=1))
        assert item["legacy_free_busy_status"] == "Busy"
        assert item["subject"] == SUBJECT
        assert item["calendar_item_type"] == "Occurrence"
    # Before the clocks go forward 17:00 London is 17:00 UTC, after it 16:00 UTC.
    assert (shown[0]["start"], shown[3]["start"]) == ("2027-03-22T17:00:00Z", "2027-03-29T16:00:00Z")
    [master] = ews.items(ALICE)
    assert master["id"] == master_id
    assert master["recurrence"]["days_of_week"] == ["Monday", "Tuesday", "Wednesday"]
    assert master["recurrence"]["range"]["type"] == "no_end"
    assert (master["sensitivity"], master["body"], master["categories"]) == ("Normal", "", [])
    assert ours(master) == {
        "CalsyncIntegrationId": INTEGRATION,
        "CalsyncJrniKey": f"schedule/{EVENINGS}",
        "CalsyncKind": "schedule",
        "CalsyncScheduleKey": EVENINGS,
        "CalsyncScheduleZone": "Europe/London",
    }


def test_a_series_starts_on_its_first_weekday_on_or_after_the_first_day(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    writer.create_series(
        ALICE,
        integration_id=INTEGRATION,
        key="w:1020+5280:3",
        zone="Europe/London",
        weekdays=(3,),
        start=time(17),
        minutes=5280,  # Thursday 17:00 to Monday 09:00
        first_day=FIRST_DAY,
        subject=SUBJECT,
        free_busy="OOF",
    )

    [first, second] = view(ews, FIRST_DAY - timedelta(days=7), FIRST_DAY + timedelta(days=11))
    assert (local(first["start"]), local(first["end"])) == (
        london(date(2027, 3, 25), 17),
        london(date(2027, 3, 29), 9),
    )
    assert local(second["start"]) == london(date(2027, 4, 1), 17)
    assert first["legacy_free_busy_status"] == "OOF"


def test_changing_and_deleting_occurrences_shows_in_outlook_and_in_what_was_written(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    master_id = evenings(writer)
    tuesday, monday_after = FIRST_DAY + timedelta(days=1), FIRST_DAY + timedelta(days=7)
    afternoon = TimeWindow(london(tuesday, 13), london(tuesday + timedelta(days=1), 9))

    writer.change_occurrence(ALICE, master_id, london(tuesday, 17), afternoon)
    writer.change_occurrence(ALICE, master_id, london(monday_after, 17), None)

    shown = view(ews, FIRST_DAY, FIRST_DAY + timedelta(days=14))
    starts = [local(item["start"]) for item in shown]
    assert london(tuesday, 13) in starts
    assert london(tuesday, 17) not in starts
    assert london(monday_after, 17) not in starts
    assert len(shown) == 5
    [exception] = [item for item in shown if item["calendar_item_type"] == "Exception"]
    assert local(exception["end"]) == london(tuesday + timedelta(days=1), 9)
    assert writer.written(ALICE, INTEGRATION) == [
        WrittenItem(
            item_id=master_id,
            key=EVENINGS,
            is_series=True,
            modified=((london(tuesday, 17).astimezone(UTC), afternoon.utc()),),
            deleted=(london(monday_after, 17).astimezone(UTC),),
            zone="Europe/London",
            first_day=FIRST_DAY,
        )
    ]

    writer.restore_occurrence(ALICE, master_id, london(tuesday, 17))

    starts = [local(item["start"]) for item in view(ews, FIRST_DAY, FIRST_DAY + timedelta(days=14))]
    assert london(tuesday, 17) in starts
    assert london(tuesday, 13) not in starts
    [series] = writer.written(ALICE, INTEGRATION)
    assert (series.modified, series.deleted) == ((), (london(monday_after, 17).astimezone(UTC),))


def test_a_deleted_occurrence_cannot_be_restored_and_the_series_is_left_as_it_was(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    master_id = evenings(writer)
    monday = london(FIRST_DAY, 17)
    writer.change_occurrence(ALICE, master_id, monday, None)
    before = ews.items(ALICE)

    with pytest.raises(OccurrenceDeletedError, match="create it again"):
        writer.restore_occurrence(ALICE, master_id, monday)
    with pytest.raises(OccurrenceDeletedError):
        writer.change_occurrence(
            ALICE, master_id, monday, TimeWindow(london(FIRST_DAY, 18), london(FIRST_DAY, 20))
        )

    assert ews.items(ALICE) == before


def test_asking_again_for_what_an_occurrence_already_shows_writes_nothing(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    master_id = evenings(writer)
    monday, tuesday = london(FIRST_DAY, 17), london(FIRST_DAY + timedelta(days=1), 17)
    writer.change_occurrence(ALICE, master_id, monday, None)
    writer.change_occurrence(ALICE, master_id, tuesday, TimeWindow(tuesday, tuesday + timedelta(hours=2)))
    before = operations(ews)

    writer.change_occurrence(ALICE, master_id, monday, None)
    writer.change_occurrence(ALICE, master_id, tuesday, TimeWindow(tuesday, tuesday + timedelta(hours=2)))
    writer.restore_occurrence(ALICE, master_id, london(FIRST_DAY + timedelta(days=2), 17))

    after = operations(ews)
    assert {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)} == {
        "GetItem": 3
    }


def test_a_time_the_pattern_has_no_occurrence_at_is_refused_before_anything_is_written(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    master_id = evenings(writer)
    before = ews.items(ALICE)

    for wrong in (
        london(FIRST_DAY, 18),
        london(FIRST_DAY + timedelta(days=3), 17),
        london(FIRST_DAY, 17) - timedelta(days=7),
    ):
        with pytest.raises(PermanentError, match="no occurrence"):
            writer.change_occurrence(ALICE, master_id, wrong, None)

    assert ews.items(ALICE) == before


def test_a_change_to_a_series_gone_from_the_mailbox_says_so(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    master_id = evenings(writer)
    writer.remove(ALICE, master_id)

    with pytest.raises(SeriesGoneError):
        writer.change_occurrence(ALICE, master_id, london(FIRST_DAY, 17), None)


def test_one_series_and_one_change_cost_three_requests(ews: EwsEmulator, writer: EwsScheduleWriter) -> None:
    master_id = evenings(writer)
    tuesday = FIRST_DAY + timedelta(days=1)
    writer.change_occurrence(
        ALICE,
        master_id,
        london(tuesday, 17),
        TimeWindow(london(tuesday, 13), london(tuesday + timedelta(days=1), 9)),
    )

    assert operations(ews) == {"CreateItem": 1, "GetItem": 1, "UpdateItem": 1}


# ---- singles, removal, reading back -------------------------------------------------------------------------------


def test_a_single_is_created_and_removed_and_removing_it_again_is_no_error(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    friday = date(2027, 3, 26)
    window = TimeWindow(london(friday, 17), london(friday + timedelta(days=3), 9))

    item_id = writer.create_single(
        ALICE, integration_id=INTEGRATION, key="s:1", window=window, subject=SUBJECT, free_busy="Busy"
    )

    [item] = ews.items(ALICE)
    assert (item["id"], item["calendar_item_type"], item["legacy_free_busy_status"]) == (
        item_id,
        "Single",
        "Busy",
    )
    assert (local(item["start"]), local(item["end"])) == (window.start, window.end)
    assert writer.written(ALICE, INTEGRATION) == [
        WrittenItem(item_id=item_id, key="s:1", is_series=False, window=window.utc())
    ]

    writer.remove(ALICE, item_id)
    writer.remove(ALICE, item_id)

    assert ews.items(ALICE) == []
    assert writer.written(ALICE, INTEGRATION) == []


def test_a_removed_series_takes_all_its_occurrences_and_exceptions_with_it(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    master_id = evenings(writer)
    writer.change_occurrence(
        ALICE, master_id, london(FIRST_DAY, 17), TimeWindow(london(FIRST_DAY, 18), london(FIRST_DAY, 20))
    )

    writer.remove(ALICE, master_id)

    assert view(ews, FIRST_DAY, FIRST_DAY + timedelta(days=14)) == []


def test_what_was_written_is_only_this_integrations_schedule_in_one_find_and_one_get(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    master_id = evenings(writer)
    evenings(writer, integration_id="int-2")
    start = london(FIRST_DAY, 10)
    booking = EwsCalendar(connection(ews), SECRET).create_event(
        ALICE,
        EventContent(
            stamp=Stamp(INTEGRATION, JrniKey("37000", "101")),
            subject="Haircut",
            body="",
            window=TimeWindow(start, start + timedelta(hours=1)),
            free_busy=FreeBusy.BUSY,
        ),
    )
    single = writer.create_single(
        ALICE,
        integration_id=INTEGRATION,
        key="s:1",
        window=TimeWindow(london(FIRST_DAY, 12), london(FIRST_DAY, 13)),
        subject=SUBJECT,
        free_busy="Busy",
    )
    before = operations(ews)

    written = writer.written(ALICE, INTEGRATION)

    assert {(item.item_id, item.is_series) for item in written} == {(master_id, True), (single, False)}
    assert booking.remote_id not in {item.item_id for item in written}
    after = operations(ews)
    assert {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)} == {
        "FindItem": 1,
        "GetItem": 1,
    }


# ---- what the inbound path makes of them -------------------------------------------------------------------------


def test_the_change_feed_and_the_booking_listing_leave_schedule_items_out_so_inbound_never_touches_them(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    evenings(writer)
    writer.create_single(
        ALICE,
        integration_id=INTEGRATION,
        key="s:1",
        window=TimeWindow(london(date(2027, 3, 26), 17), london(date(2027, 3, 29), 9)),
        subject=SUBJECT,
        free_busy="OOF",
    )
    # An adviser's own meeting beside them
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "Team lunch", "start": "2027-03-24T12:00:00Z", "end": "2027-03-24T13:00:00Z"},
    )
    now = london(FIRST_DAY, 8)
    options = InboundOptions(now=now, window_days=14)

    changes = EwsFeed(connection(ews), SECRET).changes(ALICE, None, options.window)

    # Only the adviser's meeting: the single and the series' evenings are calsync's own, and no booking's
    assert [event.subject for event in changes.upserts] == ["Team lunch"]
    mapping = Mapping(INTEGRATION, ResourceKind.PERSON, "staff-1", ALICE)
    actions = plan_inbound(changes, mapping, [], {}, options)
    assert [type(action) for action in actions] == [
        CreateBlock
    ]  # the lunch blocks JRNI; nothing else happens
    # And the listing a deep reconcile compares with JRNI's bookings does not show them (no stray to remove)
    assert EwsCalendar(connection(ews), SECRET).our_items(ALICE, INTEGRATION) == []


# ---- errors --------------------------------------------------------------------------------------------------------


def test_throttling_becomes_a_throttled_error_with_exchanges_back_off(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    ews.control("POST", "faults", {"operation": "CreateItem", "kind": "server_busy", "back_off_ms": 4000})

    with pytest.raises(ThrottledError) as raised:
        evenings(writer)

    assert raised.value.delay_seconds == 4.0
    assert ews.items(ALICE) == []


def test_arguments_no_series_can_have_are_refused_before_anything_is_sent(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    common: dict[str, Any] = {
        "integration_id": INTEGRATION,
        "key": EVENINGS,
        "start": time(17),
        "first_day": FIRST_DAY,
        "subject": SUBJECT,
    }
    for wrong in (
        {"zone": "Europe/London", "weekdays": (), "minutes": 960, "free_busy": "Busy"},
        {"zone": "Europe/London", "weekdays": (7,), "minutes": 960, "free_busy": "Busy"},
        {"zone": "Europe/London", "weekdays": (0,), "minutes": 0, "free_busy": "Busy"},
        {"zone": "Europe/London", "weekdays": (0,), "minutes": 960, "free_busy": "Free"},
    ):
        with pytest.raises(ValueError):
            writer.create_series(ALICE, **common, **wrong)
    with pytest.raises(PermanentError, match="time zone"):
        writer.create_series(
            ALICE, **common, zone="Mars/Olympus", weekdays=(0,), minutes=960, free_busy="Busy"
        )

    assert operations(ews) == {}


def test_an_occurrence_moved_onto_the_next_one_is_refused_by_exchange_and_nothing_changes(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    master_id = evenings(writer)
    tuesday = FIRST_DAY + timedelta(days=1)
    before = ews.items(ALICE)

    with pytest.raises(PermanentError, match="ErrorOccurrenceCrossingBoundary"):
        writer.change_occurrence(
            ALICE, master_id, london(FIRST_DAY, 17), TimeWindow(london(tuesday, 17), london(tuesday, 20))
        )

    assert ews.items(ALICE) == before


def test_an_occurrence_in_the_spring_forward_gap_is_found_where_exchange_puts_it(
    ews: EwsEmulator, writer: EwsScheduleWriter
) -> None:
    sunday = date(2027, 3, 28)  # 01:00 to 02:00 London time does not exist that day
    master_id = writer.create_series(
        ALICE,
        integration_id=INTEGRATION,
        key="w:90+60:6",
        zone="Europe/London",
        weekdays=(6,),
        start=time(1, 30),
        minutes=60,
        first_day=FIRST_DAY,
        subject=SUBJECT,
        free_busy="Busy",
    )
    [shown] = view(ews, sunday, sunday + timedelta(days=1))
    gap_start = datetime.fromisoformat(shown["start"].replace("Z", "+00:00"))

    writer.change_occurrence(ALICE, master_id, gap_start, None)

    assert view(ews, sunday, sunday + timedelta(days=1)) == []
    [series] = writer.written(ALICE, INTEGRATION)
    assert series.deleted == (gap_start,)
