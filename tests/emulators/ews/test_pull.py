"""Pull subscriptions through exchangelib: subscribe_to_pull, get_events from watermarks, expiry, unsubscribe."""

from __future__ import annotations

import pytest
from exchangelib import Account, CalendarItem, EWSDateTime
from exchangelib.errors import (
    ErrorExpiredSubscription,
    ErrorInvalidWatermark,
    ErrorMissedNotificationEvents,
    ErrorSubscriptionNotFound,
)
from exchangelib.properties import CreatedEvent, DeletedEvent, ModifiedEvent, MovedEvent, StatusEvent

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import TZ

ALICE = "alice@example.com"


def owner_creates(ews: EwsEmulator, subject: str) -> str:
    item = ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": subject, "start": "2025-10-01T09:00:00Z", "end": "2025-10-01T10:00:00Z"},
    )
    return str(item["id"])


def test_events_since_the_watermark_then_a_status_event(ews: EwsEmulator, alice: Account) -> None:
    sub_id, watermark = alice.calendar.subscribe_to_pull(timeout=5)
    created = owner_creates(ews, "Booked")
    ews.control("PATCH", f"mailboxes/{ALICE}/items/{created}", {"subject": "Rebooked"})
    ews.control("DELETE", f"mailboxes/{ALICE}/items/{created}", expect=204)

    [notification] = list(alice.calendar.get_events(sub_id, watermark))
    assert notification.previous_watermark == watermark and not notification.more_events
    assert [type(e) for e in notification.events] == [CreatedEvent, ModifiedEvent, DeletedEvent]
    assert {e.item_id.id for e in notification.events} == {created}

    # Nothing new since the last event: Exchange answers a StatusEvent, whose watermark is where to go on from.
    last = notification.events[-1].watermark
    [quiet] = list(alice.calendar.get_events(sub_id, last))
    [status] = quiet.events
    assert isinstance(status, StatusEvent) and status.watermark
    owner_creates(ews, "Later")
    [later] = list(alice.calendar.get_events(sub_id, status.watermark))
    assert [type(e) for e in later.events] == [CreatedEvent]


def test_many_events_come_in_batches_with_more_events(ews: EwsEmulator, alice: Account) -> None:
    sub_id, watermark = alice.calendar.subscribe_to_pull(event_types=["CreatedEvent"])
    items = [
        CalendarItem(
            account=alice,
            folder=alice.calendar,
            subject=f"Slot {n}",
            start=EWSDateTime(2025, 10, 2, 9, tzinfo=TZ),
            end=EWSDateTime(2025, 10, 2, 10, tzinfo=TZ),
        )
        for n in range(70)
    ]
    alice.bulk_create(folder=alice.calendar, items=items, send_meeting_invitations="SendToNone")

    notifications = list(alice.calendar.get_events(sub_id, watermark))
    assert [n.more_events for n in notifications] == [True, False]
    assert sum(len(n.events) for n in notifications) == 70


def test_move_to_deleted_items_is_a_moved_event(ews: EwsEmulator, alice: Account) -> None:
    sub_id, watermark = alice.calendar.subscribe_to_pull(event_types=["MovedEvent"])
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Cancelled",
        start=EWSDateTime(2025, 10, 3, 9, tzinfo=TZ),
        end=EWSDateTime(2025, 10, 3, 10, tzinfo=TZ),
    )
    item.save(send_meeting_invitations="SendToNone")
    item_id = item.id
    # What Outlook's "Delete" does: the item moves to Deleted Items.
    alice.bulk_delete([item], delete_type="MoveToDeletedItems", send_meeting_cancellations="SendToNone")

    [notification] = list(alice.calendar.get_events(sub_id, watermark))
    [moved] = notification.events
    assert isinstance(moved, MovedEvent)
    assert moved.old_item_id.id == item_id and moved.old_parent_folder_id.id == alice.calendar.id


def test_bad_watermark_is_refused(ews: EwsEmulator, alice: Account) -> None:
    sub_id, _ = alice.calendar.subscribe_to_pull()
    with pytest.raises(ErrorInvalidWatermark):
        list(alice.calendar.get_events(sub_id, "AQAAAnot-a-watermark"))


def test_expired_and_unsubscribed_subscriptions(ews: EwsEmulator, alice: Account) -> None:
    expiring, watermark = alice.calendar.subscribe_to_pull(timeout=1)
    ews.control("POST", "faults", {"kind": "expire_subscriptions", "mailbox": ALICE}, expect=201)
    with pytest.raises(ErrorExpiredSubscription):
        list(alice.calendar.get_events(expiring, watermark))

    ended, watermark = alice.calendar.subscribe_to_pull()
    alice.calendar.unsubscribe(ended)
    with pytest.raises(ErrorSubscriptionNotFound):
        list(alice.calendar.get_events(ended, watermark))
    assert ews.control("GET", "stats")["subscriptions"] == 0


def test_missed_events_fault_hits_the_next_get_events(ews: EwsEmulator, alice: Account) -> None:
    sub_id, watermark = alice.calendar.subscribe_to_pull()
    ews.control("POST", "faults", {"kind": "missed_events", "mailbox": ALICE, "count": 1}, expect=201)
    with pytest.raises(ErrorMissedNotificationEvents):
        list(alice.calendar.get_events(sub_id, watermark))
    [notification] = list(alice.calendar.get_events(sub_id, watermark))
    assert isinstance(notification.events[0], StatusEvent)
