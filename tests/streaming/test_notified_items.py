"""What a notification names, and how the runner's coalescing carries it: the items created or modified with their
change keys, and only when that is all that happened (anything else means the mailbox must be read)."""

from __future__ import annotations

from datetime import UTC, datetime

from exchangelib.properties import (
    CreatedEvent,
    DeletedEvent,
    FolderId,
    ItemId,
    ModifiedEvent,
    MovedEvent,
    Notification,
    StatusEvent,
)

from calsync.adapters.ews.streaming import notification_of
from calsync.domain.messages import MAX_NOTIFIED_ITEMS, NotifiedItem, WakeReason
from calsync.streaming.planner import MailboxRef
from calsync.streaming.runner import Coalescer

AT = datetime(2025, 9, 1, 9, tzinfo=UTC)
ALICE = MailboxRef("int-1", "alice@bank.test")


def created(item: str, change_key: str | None = "ck") -> CreatedEvent:
    return CreatedEvent(timestamp=AT, item_id=ItemId(id=item, changekey=change_key))


def test_created_and_modified_items_are_named_with_their_change_keys() -> None:
    modified = ModifiedEvent(timestamp=AT, item_id=ItemId(id="i2", changekey="ck2"))
    got = notification_of(Notification(subscription_id="sub-1", events=[created("i1", "ck1"), modified]))
    assert got.subscription_id == "sub-1"
    assert got.items == (NotifiedItem("i1", "ck1"), NotifiedItem("i2", "ck2"))
    assert got.complete


def test_anything_else_leaves_the_notification_incomplete() -> None:
    others = {
        "deleted": DeletedEvent(timestamp=AT, item_id=ItemId(id="i3", changekey="ck3")),
        "moved": MovedEvent(timestamp=AT, item_id=ItemId(id="i4", changekey="ck4")),
        "folder modified": ModifiedEvent(timestamp=AT, folder_id=FolderId(id="cal", changekey="f1")),
        "status": StatusEvent(),
        "no change key": created("i5", None),
    }
    for what, event in others.items():
        got = notification_of(Notification(subscription_id="sub-1", events=[created("i1"), event]))
        assert not got.complete, what
    assert not notification_of(Notification(subscription_id="sub-1", events=[])).complete


def test_coalesced_wakes_carry_every_item_notified_meanwhile() -> None:
    coalescer = Coalescer(interval=10.0)
    coalescer.add(ALICE, WakeReason.NOTIFICATION, (NotifiedItem("i1", "ck1"),))
    [first] = coalescer.take(now=0.0)  # the first wake goes at once
    assert first.notified == (NotifiedItem("i1", "ck1"),)
    coalescer.add(ALICE, WakeReason.NOTIFICATION, (NotifiedItem("i2", "ck2"),))
    coalescer.add(ALICE, WakeReason.NOTIFICATION, (NotifiedItem("i2", "ck2"), NotifiedItem("i2", "ck3")))
    assert coalescer.take(now=1.0) == []  # held until the interval ends
    [second] = coalescer.take(now=10.0)
    assert second.notified == (NotifiedItem("i2", "ck2"), NotifiedItem("i2", "ck3"))


def test_a_wake_that_names_nothing_makes_the_coalesced_wake_a_plain_sync() -> None:
    coalescer = Coalescer(interval=10.0)
    coalescer.add(ALICE, WakeReason.NOTIFICATION, (NotifiedItem("i1", "ck1"),))
    coalescer.add(ALICE, WakeReason.DROPPED)
    coalescer.add(ALICE, WakeReason.NOTIFICATION, (NotifiedItem("i2", "ck2"),))
    [wake] = coalescer.take(now=0.0)
    assert (wake.reason, wake.notified) == (WakeReason.DROPPED, None)


def test_more_items_than_a_message_carries_make_a_plain_sync() -> None:
    coalescer = Coalescer(interval=10.0)
    for n in range(MAX_NOTIFIED_ITEMS + 1):
        coalescer.add(ALICE, WakeReason.NOTIFICATION, (NotifiedItem(f"i{n}", "ck"),))
    [wake] = coalescer.take(now=0.0)
    assert wake.notified is None
    coalescer.put_back([wake])
    [again] = coalescer.take(now=0.0, everything=True)
    assert again.notified is None
