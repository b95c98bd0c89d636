"""SyncFolderItems through exchangelib's ``folder.sync_items()``: each change seen exactly once, in pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from exchangelib import Account, CalendarItem, EWSDateTime
from exchangelib.errors import ErrorInvalidSyncStateData

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import TZ

ALICE = "alice@example.com"


def at(day: int, hour: int) -> EWSDateTime:
    return EWSDateTime(2025, 9, day, hour, tzinfo=TZ)


def owner_creates(ews: EwsEmulator, subject: str, day: int = 1) -> str:
    """Create an item as alice would in Outlook; its id."""
    item = ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {
            "subject": subject,
            "start": f"2025-09-{day:02d}T09:00:00Z",
            "end": f"2025-09-{day:02d}T10:00:00Z",
        },
        expect=201,
    )
    return str(item["id"])


def sync(account: Account, **kwargs: Any) -> list[tuple[str, str, str | None]]:
    """One full sync_items() run: (change, item id, subject) per change; the folder keeps the new state."""
    changes = []
    for change, item in account.calendar.sync_items(**kwargs):
        if change == "delete":
            changes.append((change, item.id, None))
        else:
            changes.append((change, item.id, item.subject))
    return changes


def test_first_sync_returns_every_item_as_create_and_then_nothing(ews: EwsEmulator, alice: Account) -> None:
    ids = {owner_creates(ews, f"Booking {n}", n) for n in range(1, 4)}

    first = sync(alice)
    assert sorted(c[0] for c in first) == ["create"] * 3
    assert {c[1] for c in first} == ids
    assert sync(alice) == []


def test_each_change_is_seen_exactly_once(ews: EwsEmulator, alice: Account) -> None:
    kept = owner_creates(ews, "Kept")
    changed = owner_creates(ews, "Will change")
    removed = owner_creates(ews, "Will go")
    sync(alice)

    ews.control("PATCH", f"mailboxes/{ALICE}/items/{changed}", {"subject": "Changed twice?"})
    ews.control("PATCH", f"mailboxes/{ALICE}/items/{changed}", {"subject": "Changed"})
    ews.control("DELETE", f"mailboxes/{ALICE}/items/{removed}", expect=204)
    # Made through EWS by the app itself, rather than by the owner.
    new = CalendarItem(account=alice, folder=alice.calendar, subject="New", start=at(5, 9), end=at(5, 10))
    new.save(send_meeting_invitations="SendToNone")
    # Created and deleted between two syncs: the client never needs to hear of it.
    ephemeral = owner_creates(ews, "Ephemeral")
    ews.control("DELETE", f"mailboxes/{ALICE}/items/{ephemeral}", expect=204)

    changes = sync(alice)
    assert sorted(changes, key=lambda c: c[0]) == [
        ("create", new.id, "New"),
        ("delete", removed, None),
        ("update", changed, "Changed"),
    ]
    assert kept not in {c[1] for c in changes}
    assert sync(alice) == []


def test_small_pages_still_report_each_change_once_with_the_right_kind(
    ews: EwsEmulator, alice: Account
) -> None:
    old = [owner_creates(ews, f"Old {n}", n) for n in range(1, 4)]
    sync(alice)
    fresh = [owner_creates(ews, f"Fresh {n}", n) for n in range(1, 6)]
    # Items the client has not been told about yet change after being created: still Creates, never Updates.
    for item_id in fresh[:2]:
        ews.control("PATCH", f"mailboxes/{ALICE}/items/{item_id}", {"subject": "Fresh, edited"})
    ews.control("PATCH", f"mailboxes/{ALICE}/items/{old[0]}", {"subject": "Old, edited"})
    ews.control("DELETE", f"mailboxes/{ALICE}/items/{old[1]}", expect=204)
    calls_before = ews.control("GET", "stats")["operations"]["SyncFolderItems"]

    changes = sync(alice, max_changes_returned=2)

    kinds = {item_id: change for change, item_id, _ in changes}
    assert len(changes) == len(kinds) == 7
    assert all(kinds[i] == "create" for i in fresh)
    assert kinds[old[0]] == "update" and kinds[old[1]] == "delete"
    # 2 + 2 + 2 + 1: exchangelib kept asking while IncludesLastItemInRange was false.
    assert ews.control("GET", "stats")["operations"]["SyncFolderItems"] - calls_before == 4
    assert sync(alice) == []


def test_ignored_items_are_not_reported_but_later_changes_are_updates(
    ews: EwsEmulator, alice: Account
) -> None:
    sync(alice)
    mine = CalendarItem(account=alice, folder=alice.calendar, subject="Mine", start=at(3, 9), end=at(3, 10))
    mine.save(send_meeting_invitations="SendToNone")
    theirs = owner_creates(ews, "Theirs")

    assert sync(alice, ignore=[mine]) == [("create", theirs, "Theirs")]

    ews.control("PATCH", f"mailboxes/{ALICE}/items/{mine.id}", {"subject": "Mine, moved"})
    assert sync(alice) == [("update", mine.id, "Mine, moved")]


def test_recurring_series_is_returned_as_its_master(ews: EwsEmulator, alice: Account) -> None:
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {
            "subject": "Weekly clinic",
            "start": "2025-09-01T09:00:00Z",
            "end": "2025-09-01T10:00:00Z",
            "recurrence": {
                "pattern": "weekly",
                "interval": 1,
                "days_of_week": ["Monday"],
                "range": {"type": "numbered", "number_of_occurrences": 4},
            },
        },
        expect=201,
    )

    [(change, item)] = list(alice.calendar.sync_items())
    assert change == "create"
    assert item.type == "RecurringMaster" and item.subject == "Weekly clinic"


def test_garbage_or_foreign_sync_state_is_refused(
    ews: EwsEmulator, alice: Account, account_for: Callable[..., Account]
) -> None:
    ews.add_account("bob@example.com")
    owner_creates(ews, "Alice's")
    sync(alice)
    alice_state = alice.calendar.item_sync_state

    with pytest.raises(ErrorInvalidSyncStateData):
        list(alice.calendar.sync_items(sync_state="H4sIAAAAAAAA/not-a-real-state"))

    bob = account_for("bob@example.com")
    with pytest.raises(ErrorInvalidSyncStateData):
        list(bob.calendar.sync_items(sync_state=alice_state))
