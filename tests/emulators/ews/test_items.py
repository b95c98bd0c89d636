"""Calendar items through exchangelib over real HTTP: create, read, update, delete, find by extended property."""

from __future__ import annotations

from datetime import timedelta

import pytest
from exchangelib import Account, CalendarItem, EWSDateTime
from exchangelib.errors import ErrorIrresolvableConflict, ErrorItemNotFound
from exchangelib.extended_properties import ExtendedProperty

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import TZ

PROPERTY_SET = "c11ff724-aa03-4555-9952-8fa248a11c3e"


class JrniBookingId(ExtendedProperty):
    property_set_id = PROPERTY_SET
    property_name = "JrniBookingId"
    property_type = "String"


@pytest.fixture(autouse=True)
def _registered() -> object:
    CalendarItem.register("jrni_booking_id", JrniBookingId)
    yield None
    CalendarItem.deregister("jrni_booking_id")


def at(day: int, hour: int, minute: int = 0) -> EWSDateTime:
    return EWSDateTime(2025, 7, day, hour, minute, tzinfo=TZ)


def test_created_item_is_in_the_calendar_with_its_fields(ews: EwsEmulator, alice: Account) -> None:
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Mortgage review",
        body="Bring ID",
        start=at(7, 9),
        end=at(7, 10),
        legacy_free_busy_status="Tentative",
        location="Branch 12",
        categories=["JRNI"],
        jrni_booking_id="B-123",
    )
    item.save(send_meeting_invitations="SendToNone")

    [stored] = ews.items("alice@example.com")
    assert stored["id"] == item.id and stored["change_key"] == item.changekey
    assert stored["subject"] == "Mortgage review"
    # 09:00 in London in July is 08:00 UTC.
    assert (stored["start"], stored["end"]) == ("2025-07-07T08:00:00Z", "2025-07-07T09:00:00Z")
    assert stored["legacy_free_busy_status"] == "Tentative"
    assert stored["location"] == "Branch 12" and stored["categories"] == ["JRNI"]
    assert stored["extended_properties"] == [
        {
            "property_set_id": PROPERTY_SET,
            "property_name": "JrniBookingId",
            "property_type": "String",
            "value": "B-123",
        }
    ]

    fetched = alice.calendar.get(id=item.id)
    assert fetched.subject == "Mortgage review" and fetched.jrni_booking_id == "B-123"
    assert fetched.start == at(7, 9) and fetched.end == at(7, 10)
    assert fetched.body == "Bring ID"


def test_update_gives_a_new_change_key_and_keeps_the_id(ews: EwsEmulator, alice: Account) -> None:
    item = CalendarItem(account=alice, folder=alice.calendar, subject="Old", start=at(8, 9), end=at(8, 10))
    item.save(send_meeting_invitations="SendToNone")
    first_key = item.changekey

    item.subject, item.start, item.end = "New", at(8, 11), at(8, 12)
    item.save(update_fields=["subject", "start", "end"], send_meeting_invitations="SendToNone")

    [stored] = ews.items("alice@example.com")
    assert stored["id"] == item.id
    assert item.changekey != first_key and stored["change_key"] == item.changekey
    assert (stored["subject"], stored["start"]) == ("New", "2025-07-08T10:00:00Z")


def test_stale_change_key_is_refused_under_never_overwrite(ews: EwsEmulator, alice: Account) -> None:
    item = CalendarItem(
        account=alice, folder=alice.calendar, subject="Booking", start=at(9, 9), end=at(9, 10)
    )
    item.save(send_meeting_invitations="SendToNone")
    stale = alice.calendar.get(id=item.id)
    # Someone else changes the item in Outlook.
    ews.control("PATCH", f"mailboxes/alice@example.com/items/{item.id}", {"subject": "Moved by the adviser"})

    stale.subject = "Overwrite?"
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["subject"], conflict_resolution="NeverOverwrite")
    assert ews.items("alice@example.com")[0]["subject"] == "Moved by the adviser"


def test_deleted_item_is_gone_and_a_second_delete_reports_not_found(ews: EwsEmulator, alice: Account) -> None:
    item = CalendarItem(
        account=alice, folder=alice.calendar, subject="Cancel me", start=at(10, 9), end=at(10, 10)
    )
    item.save(send_meeting_invitations="SendToNone")
    copy = alice.calendar.get(id=item.id)

    item.delete(send_meeting_cancellations="SendToNone")
    assert ews.items("alice@example.com") == []
    with pytest.raises(ErrorItemNotFound):
        copy.delete(send_meeting_cancellations="SendToNone")


def test_bulk_create_update_delete_of_a_hundred_items_in_one_request_each(
    ews: EwsEmulator, alice: Account
) -> None:
    items = [
        CalendarItem(
            folder=alice.calendar,
            subject=f"Booking {n}",
            start=at(14, 8) + timedelta(minutes=15 * n),
            end=at(14, 8) + timedelta(minutes=15 * n + 10),
            jrni_booking_id=f"B-{n}",
        )
        for n in range(100)
    ]
    before = ews.control("GET", "stats")["operations"].get("CreateItem", 0)
    results = alice.bulk_create(
        folder=alice.calendar, items=items, chunk_size=100, send_meeting_invitations="SendToNone"
    )
    stats = ews.control("GET", "stats")["operations"]
    assert stats["CreateItem"] - before == 1, "100 items should travel in one CreateItem request"
    assert len(results) == 100 and len(ews.items("alice@example.com")) == 100

    fetched = list(alice.fetch(ids=results))
    for item in fetched:
        item.subject = item.subject.upper()
    alice.bulk_update(
        items=[(i, ["subject"]) for i in fetched],
        chunk_size=100,
        send_meeting_invitations_or_cancellations="SendToNone",
    )
    assert {i["subject"] for i in ews.items("alice@example.com")} == {f"BOOKING {n}" for n in range(100)}
    assert ews.control("GET", "stats")["operations"]["UpdateItem"] == 1

    alice.bulk_delete(ids=fetched, chunk_size=100, send_meeting_cancellations="SendToNone")
    assert ews.items("alice@example.com") == []
    assert ews.control("GET", "stats")["operations"]["DeleteItem"] == 1


def test_find_by_extended_property(ews: EwsEmulator, alice: Account) -> None:
    for n in range(5):
        CalendarItem(
            account=alice,
            folder=alice.calendar,
            subject=f"B{n}",
            start=at(15, 9 + n),
            end=at(15, 10 + n),
            jrni_booking_id=f"B-{n}",
        ).save(send_meeting_invitations="SendToNone")
    CalendarItem(
        account=alice, folder=alice.calendar, subject="Own meeting", start=at(15, 16), end=at(15, 17)
    ).save(send_meeting_invitations="SendToNone")

    assert [i.subject for i in alice.calendar.filter(jrni_booking_id="B-3")] == ["B3"]
    assert list(alice.calendar.filter(jrni_booking_id="B-99")) == []
    assert alice.calendar.filter(jrni_booking_id__exists=True).count() == 5


def test_view_returns_items_overlapping_the_range_only(ews: EwsEmulator, alice: Account) -> None:
    for day in (1, 2, 3):
        CalendarItem(
            account=alice, folder=alice.calendar, subject=f"Day {day}", start=at(day, 9), end=at(day, 10)
        ).save(send_meeting_invitations="SendToNone")
    seen = [i.subject for i in alice.calendar.view(start=at(2, 0), end=at(3, 9, 30))]
    assert seen == ["Day 2", "Day 3"]
