"""GET /admin/integrations/{id}/availability on in-memory fakes: what is refused (400, 404), and how JRNI's bookings
and blocks, Outlook's busy time and the working hours are merged and ordered."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from calsync.domain import (
    BookingKind,
    BookingStatus,
    FreeBusy,
    Integration,
    Mapping,
    ResourceKind,
    SyncOptions,
    TimeWindow,
)
from calsync.domain.availability import BusyTime
from calsync.domain.markers import block_marker, block_note
from calsync.domain.model import ScheduleBusy
from calsync.domain.schedules import WorkingDay, WorkingSchedule
from calsync.ports import JrniCalendar
from calsync.transport.admin import build_admin_api
from calsync.usecases.admin import AdminDeps
from tests.apigw import LambdaContext, rest_event
from tests.calsync.builders import ALICE, INTEGRATION, booking, integration
from tests.calsync.fakes import FakeBookingSource, FakeIntegrations, FakeMappings, fake_admin_deps

LONDON = "Europe/London"
# Wednesday 9 July 2025: London is at +01:00.
DAY = date(2025, 7, 9)
START = datetime(2025, 7, 9, tzinfo=UTC)
CALENDARS = [
    JrniCalendar(ResourceKind.PERSON, "11", "100", "Alice Adviser", ews_email=ALICE),
    JrniCalendar(ResourceKind.PERSON, "12", "100", "Bob Banker"),
]


def at(hour: int, minute: int = 0) -> datetime:
    return START + timedelta(hours=hour, minutes=minute)


class FakeAvailability:
    """Exchange's free/busy as a list per mailbox; records what it was asked."""

    def __init__(self, busy: dict[str, list[BusyTime]] | None = None) -> None:
        self.busy = busy or {}
        self.asked: list[tuple[str, TimeWindow]] = []

    def busy_times(self, mailbox: str, window: TimeWindow) -> list[BusyTime]:
        self.asked.append((mailbox, window))
        return sorted(self.busy.get(mailbox, []), key=lambda b: b.window.start)


@pytest.fixture
def jrni() -> FakeBookingSource:
    source = FakeBookingSource(calendars=CALENDARS)
    mortgage = replace(
        booking("501", start=at(10), minutes=60, pre=15),
        details={"service_name": "Mortgage appointment", "client_name": "Pat Jones"},
    )
    block = replace(
        booking("502", start=at(14), minutes=30, kind=BookingKind.BLOCK),
        details={"private_note": block_note("Dentist", block_marker(INTEGRATION, "outlook-item-9"))},
    )
    cancelled = booking("503", start=at(11), status=BookingStatus.CANCELLED)
    other_day = booking("504", start=at(30))
    for b in (mortgage, block, cancelled, other_day):
        source.bookings[b.key] = b
    source.schedules[(ResourceKind.PERSON, "11")] = WorkingSchedule(
        "901",
        LONDON,
        (
            # JRNI answers the company's whole dates the window touches: the day before starts at 23:00 UTC
            WorkingDay(DAY - timedelta(days=1), ((time(9), time(17)),)),
            WorkingDay(DAY, ((time(9), time(13)), (time(14), time(17, 30)))),
            WorkingDay(DAY + timedelta(days=1), ((time(0, 30), None),)),
        ),
    )
    return source


@pytest.fixture
def outlook() -> FakeAvailability:
    return FakeAvailability(
        {
            ALICE: [
                # calsync's item for booking 501, with its 15 minutes before
                BusyTime(
                    TimeWindow(at(9, 45), at(11)), FreeBusy.BUSY, True, "Mortgage: Pat Jones", item_id="i1"
                ),
                BusyTime(TimeWindow(at(7), at(8)), FreeBusy.BUSY, True, "Team meeting", item_id="i2"),
                BusyTime(TimeWindow(at(12), at(13)), FreeBusy.BUSY, True, None, private=True, item_id="i3"),
                BusyTime(TimeWindow(at(16, 30), at(23, 59)), FreeBusy.BUSY, True, "Outside working hours"),
            ]
        }
    )


def deps(jrni: FakeBookingSource, outlook: FakeAvailability, **changes: Any) -> AdminDeps:
    mappings = FakeMappings()
    mappings.put(Mapping(INTEGRATION, ResourceKind.PERSON, "11", ALICE))
    shown = integration(options=SyncOptions(schedule_busy=ScheduleBusy(enabled=True)))
    made = fake_admin_deps(
        shown, mappings=mappings, bookings_for=lambda _: jrni, availability_for=lambda _: outlook
    )
    return replace(made, **changes)


def get(services: AdminDeps, query: dict[str, str], integration_id: str = INTEGRATION) -> tuple[int, Any]:
    event = rest_event(
        "GET",
        f"/admin/integrations/{integration_id}/availability",
        resource="/admin/integrations/{integration_id}/availability",
        path_parameters={"integration_id": integration_id},
    )
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    answer = build_admin_api(lambda: services).resolve(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def day(**changes: str) -> dict[str, str]:
    return {
        "kind": "person",
        "jrni_id": "11",
        "start": "2025-07-09T00:00:00+00:00",
        "end": "2025-07-10T00:00:00+00:00",
        **changes,
    }


def test_the_day_merges_jrni_outlook_and_working_hours_sorted_by_start(
    jrni: FakeBookingSource, outlook: FakeAvailability
) -> None:
    status, answer = get(deps(jrni, outlook), day())
    assert status == 200, answer
    assert (answer["kind"], answer["jrni_id"], answer["mailbox"], answer["zone"]) == (
        "person",
        "11",
        ALICE,
        LONDON,
    )
    shown = [
        (i["start"][11:16], i["end"][11:16], i["source"], i["label"], i["detail"])
        for i in answer["intervals"]
    ]
    assert shown == [
        ("07:00", "08:00", "outlook", "Team meeting", None),
        # 09:00 London is 08:00 UTC
        ("08:00", "12:00", "working_hours", "Working hours", None),
        ("09:45", "11:00", "outlook", "Mortgage: Pat Jones", "written by calsync (JRNI booking 501)"),
        ("10:00", "11:00", "jrni_booking", "Mortgage appointment: Pat Jones", "JRNI booking 501"),
        ("12:00", "13:00", "outlook", "Private appointment", "private in Outlook: its subject is not shown"),
        ("13:00", "16:30", "working_hours", "Working hours", None),
        ("14:00", "14:30", "jrni_block", "Blocked", "JRNI block 502, made by calsync from an Outlook item"),
        ("16:30", "23:59", "outlook", "Outside working hours", "written by calsync (outside working hours)"),
        # the next day's span from 00:30 London, cut at the window's end
        ("23:30", "00:00", "working_hours", "Working hours", None),
    ]
    # The cancelled booking and the next day's are left out; Exchange was asked about the mapped mailbox only
    assert [m for m, _ in outlook.asked] == [ALICE]


def test_with_free_busy_only_outlook_items_show_their_busy_type(jrni: FakeBookingSource) -> None:
    outlook = FakeAvailability(
        {
            ALICE: [
                BusyTime(TimeWindow(at(7), at(8)), FreeBusy.TENTATIVE),
                BusyTime(TimeWindow(at(15), at(16)), FreeBusy.OOF),
            ]
        }
    )
    status, answer = get(deps(jrni, outlook), day())
    assert status == 200
    labels = [(i["label"], i["detail"]) for i in answer["intervals"] if i["source"] == "outlook"]
    assert labels == [
        ("Tentative", "Exchange gives only free/busy for this mailbox: no subjects"),
        ("Out of office", "Exchange gives only free/busy for this mailbox: no subjects"),
    ]


def test_without_a_schedule_there_are_no_working_hours(
    jrni: FakeBookingSource, outlook: FakeAvailability
) -> None:
    jrni.schedules.clear()
    status, answer = get(deps(jrni, outlook), day())
    assert status == 200
    assert "working_hours" not in {i["source"] for i in answer["intervals"]}
    assert answer["zone"] is None


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (day(start="2025-07-09T00:00:00"), "has no offset"),
        (day(end="tomorrow"), "is not an ISO 8601 instant"),
        (day(end="2025-07-09T00:00:00+00:00"), "must be before end"),
        (day(end="2025-07-16T00:00:01+00:00"), "at most 7 days"),
        (day(kind="room"), "is not person or resource"),
        (day(jrni_id="1 1"), "is not a JRNI id"),
        ({"kind": "person", "jrni_id": "11"}, "start and end are both required"),
        ({}, "jrni_id is required"),  # no query at all: no id to check, not a server error
        ({k: v for k, v in day().items() if k != "jrni_id"}, "jrni_id"),
    ],
)
def test_a_malformed_request_is_a_400_saying_what_is_wrong(
    jrni: FakeBookingSource, outlook: FakeAvailability, query: dict[str, str], says: str
) -> None:
    status, answer = get(deps(jrni, outlook), query)
    assert status == 400 and says in answer["message"], answer
    assert outlook.asked == []


def test_a_week_is_accepted(jrni: FakeBookingSource, outlook: FakeAvailability) -> None:
    status, _ = get(deps(jrni, outlook), day(end="2025-07-16T01:00:00+01:00"))
    assert status == 200


def test_an_unmapped_staff_member_or_another_integrations_mapping_is_a_404(
    jrni: FakeBookingSource, outlook: FakeAvailability
) -> None:
    services = deps(jrni, outlook)
    # Bob is known to JRNI but not mapped
    status, answer = get(services, day(jrni_id="12"))
    assert status == 404 and "person 12 is not mapped" in answer["message"]
    # Alice is mapped in int-1 only: asked through another integration, she is not found
    other = Integration(**{**integration().__dict__, "id": "int-2"})
    services = replace(services, integrations=FakeIntegrations(integration(), other))
    status, answer = get(services, day(), integration_id="int-2")
    assert status == 404 and "not mapped in integration 'int-2'" in answer["message"]
    status, _ = get(services, day(), integration_id="int-9")
    assert status == 404
    assert outlook.asked == []


def test_a_deployment_without_the_reader_says_so(jrni: FakeBookingSource, outlook: FakeAvailability) -> None:
    status, answer = get(deps(jrni, outlook, availability_for=None), day())
    assert status == 502 and "cannot read Outlook's availability" in answer["message"]


def test_the_window_is_read_whole_from_exchange(jrni: FakeBookingSource, outlook: FakeAvailability) -> None:
    get(deps(jrni, outlook), day(start="2025-07-09T01:00:00+01:00"))
    assert outlook.asked[0][1] == TimeWindow(START, START + timedelta(days=1))
