"""Calendar folders beside the default Calendar (a "Branch rota"): made through the control plane, found, read,
written, synchronised and subscribed to through exchangelib over HTTP, kept apart from the Calendar."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from exchangelib import Account, CalendarItem, EWSDateTime
from exchangelib.errors import ErrorAccessDenied, ErrorFolderNotFound, ErrorInvalidSyncStateData
from exchangelib.folders import Calendar, FolderCollection
from exchangelib.properties import CreatedEvent, DeletedEvent, ModifiedEvent

from emulators.ews.model import decode_id, encode_folder_id
from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import PASSWORD, SERVICE, TZ

ALICE = "alice@example.com"
BOB = "bob@example.com"
DAY = EWSDateTime(2025, 7, 8, tzinfo=TZ)


def add(ews: EwsEmulator, subject: str, hour: int, folder: str | None = None) -> dict[str, Any]:
    """An item on 8 July 2025 at ``hour`` UTC, made by the owner in ``folder`` (the Calendar when None)."""
    data: dict[str, Any] = {
        "subject": subject,
        "start": f"2025-07-08T{hour:02}:00:00Z",
        "end": f"2025-07-08T{hour + 1:02}:00:00Z",
    }
    if folder is not None:
        data["folder"] = folder
    return ews.control("POST", f"mailboxes/{ALICE}/items", data, expect=201)  # type: ignore[no-any-return]


def subjects(items: Any) -> list[str]:
    return sorted(i.subject for i in items)


@pytest.fixture
def rota(ews: EwsEmulator, alice: Account) -> dict[str, Any]:
    """Alice's "Branch rota" calendar under her Calendar, with one shift; her Calendar has one meeting."""
    folder = ews.add_folder(ALICE, "Branch rota")
    add(ews, "Early shift", 7, folder["id"])
    add(ews, "Team meeting", 12)
    return folder  # type: ignore[no-any-return]


# ---- control plane -------------------------------------------------------------------------------------------------


def test_folders_are_listed_and_hold_their_own_items(ews: EwsEmulator, rota: dict[str, Any]) -> None:
    [listed] = ews.control("GET", f"mailboxes/{ALICE}/folders")
    assert listed["display_name"] == "Branch rota" and listed["folder_class"] == "IPF.Appointment"
    assert listed["total_count"] == 1 and listed["id"] == rota["id"]

    assert [i["subject"] for i in ews.items(ALICE, folder=rota["id"])] == ["Early shift"]
    assert [i["subject"] for i in ews.items(ALICE)] == ["Team meeting"]
    expanded = ews.items(ALICE, folder=rota["id"], start="2025-07-08T00:00:00Z", end="2025-07-09T00:00:00Z")
    assert [(i["subject"], i["folder"]) for i in expanded] == [("Early shift", rota["id"])]


def test_a_second_folder_of_the_same_name_is_refused_and_an_unknown_parent_is_not_found(
    ews: EwsEmulator, rota: dict[str, Any]
) -> None:
    path = f"mailboxes/{ALICE}/folders"
    ews.control("POST", path, {"display_name": "branch ROTA"}, expect=409)
    ews.control("POST", path, {"display_name": "Rota", "parent": "AAAAnotafolder"}, expect=404)
    ews.control("POST", f"mailboxes/{ALICE}/items", {**_slot(), "folder": "AAAAnotafolder"}, expect=404)
    # The same name elsewhere in the hierarchy is another folder.
    ews.control("POST", path, {"display_name": "Branch rota", "parent": "msgfolderroot"}, expect=201)


def test_reset_empties_the_folders(ews: EwsEmulator, rota: dict[str, Any]) -> None:
    ews.reset()
    ews.add_account(ALICE, PASSWORD)
    assert ews.control("GET", f"mailboxes/{ALICE}/folders") == []


def _slot() -> dict[str, str]:
    return {"subject": "Slot", "start": "2025-07-08T09:00:00Z", "end": "2025-07-08T10:00:00Z"}


# ---- finding folders -----------------------------------------------------------------------------------------------


def test_exchangelib_finds_the_folder_under_the_calendar(alice: Account, rota: dict[str, Any]) -> None:
    [child] = list(alice.calendar.children)
    assert isinstance(child, Calendar)
    assert (child.name, child.id, child.folder_class) == ("Branch rota", rota["id"], "IPF.Appointment")
    found = alice.calendar / "Branch rota"
    assert found.id == rota["id"] and found.total_count == 1 and found.child_folder_count == 0
    assert alice.calendar.child_folder_count == 1


def test_shallow_and_deep_traversal(ews: EwsEmulator, alice: Account, rota: dict[str, Any]) -> None:
    nested = ews.add_folder(ALICE, "Saturdays", parent=rota["id"])
    beside = ews.add_folder(ALICE, "Holidays", parent="msgfolderroot")

    def names(root: Any, depth: str) -> list[str]:
        found = FolderCollection(account=alice, folders=[root]).find_folders(depth=depth)
        return [f.name for f in found]

    assert names(alice.calendar, "Shallow") == ["Branch rota"]
    assert names(alice.calendar, "Deep") == ["Branch rota", "Saturdays"]
    assert names(alice.msg_folder_root, "Shallow") == ["Calendar", "Holidays"]
    assert names(alice.msg_folder_root, "Deep") == ["Calendar", "Branch rota", "Saturdays", "Holidays"]
    # By FolderId as well as by DistinguishedFolderId.
    assert names(alice.calendar / "Branch rota", "Shallow") == ["Saturdays"]
    [got] = FolderCollection(account=alice, folders=[alice.msg_folder_root / "Holidays"]).get_folders()
    assert (got.id, got.name, got.total_count) == (beside["id"], "Holidays", 0)
    assert nested["parent"] == rota["id"]


# ---- items ---------------------------------------------------------------------------------------------------------


def test_items_are_created_and_viewed_in_their_own_folder(alice: Account, rota: dict[str, Any]) -> None:
    folder = alice.calendar / "Branch rota"
    CalendarItem(
        account=alice,
        folder=folder,
        subject="Late shift",
        start=DAY + timedelta(hours=16),
        end=DAY + timedelta(hours=20),
    ).save(send_meeting_invitations="SendToNone")

    window = {"start": DAY, "end": DAY + timedelta(days=1)}
    assert subjects(folder.view(**window)) == ["Early shift", "Late shift"]
    assert subjects(alice.calendar.view(**window)) == ["Team meeting"]
    both = FolderCollection(account=alice, folders=[alice.calendar, folder])
    assert subjects(both.view(**window)) == ["Early shift", "Late shift", "Team meeting"]
    assert subjects(folder.all()) == ["Early shift", "Late shift"]
    [late] = folder.filter(subject="Late shift")
    assert late.parent_folder_id.id == rota["id"]


def test_sync_items_follows_one_folder_only(ews: EwsEmulator, alice: Account, rota: dict[str, Any]) -> None:
    folder = alice.calendar / "Branch rota"
    assert [(kind, item.subject) for kind, item in folder.sync_items()] == [("create", "Early shift")]
    state = folder.item_sync_state

    shift = ews.items(ALICE, folder=rota["id"])[0]
    ews.control("PATCH", f"mailboxes/{ALICE}/items/{shift['id']}", {"subject": "Early shift (cover)"})
    add(ews, "Calendar only", 14)
    assert [(kind, item.subject) for kind, item in folder.sync_items()] == [("update", "Early shift (cover)")]
    ews.control("DELETE", f"mailboxes/{ALICE}/items/{shift['id']}", expect=204)
    assert [(kind, item.id) for kind, item in folder.sync_items()] == [("delete", shift["id"])]

    # A state belongs to its folder: the Calendar refuses the rota's.
    alice.calendar.item_sync_state = state
    with pytest.raises(ErrorInvalidSyncStateData):
        list(alice.calendar.sync_items())


def test_a_folder_id_no_folder_has_is_not_found(alice: Account, rota: dict[str, Any]) -> None:
    decoded = decode_id(rota["id"])
    assert decoded is not None
    never_made = Calendar(root=alice.root, id=encode_folder_id(decoded.mailbox_num, "cal:99"), changekey="x")
    with pytest.raises(ErrorFolderNotFound):
        list(never_made.view(start=DAY, end=DAY + timedelta(days=1)))
    with pytest.raises(ErrorFolderNotFound):
        CalendarItem(
            account=alice, folder=never_made, subject="Nowhere", start=DAY, end=DAY + timedelta(hours=1)
        ).save(send_meeting_invitations="SendToNone")


# ---- access --------------------------------------------------------------------------------------------------------


def test_a_reviewer_reads_the_folder_but_cannot_write_and_a_stranger_cannot_read(
    ews: EwsEmulator, account_for: Callable[..., Account], rota: dict[str, Any]
) -> None:
    ews.add_account(SERVICE, PASSWORD)
    ews.add_account(BOB, PASSWORD)
    ews.control(
        "POST", "delegates", {"owner": ALICE, "delegate": SERVICE, "permission": "Reviewer"}, expect=201
    )
    reviewer = account_for(ALICE, via=SERVICE)
    folder = reviewer.calendar / "Branch rota"
    assert subjects(folder.view(start=DAY, end=DAY + timedelta(days=1))) == ["Early shift"]
    with pytest.raises(ErrorAccessDenied):
        CalendarItem(
            account=reviewer, folder=folder, subject="Must not land", start=DAY, end=DAY + timedelta(hours=1)
        ).save(send_meeting_invitations="SendToNone")

    stranger = account_for(BOB)
    with pytest.raises(ErrorAccessDenied):
        list(
            FolderCollection(account=stranger, folders=[folder]).view(start=DAY, end=DAY + timedelta(days=1))
        )
    assert [i["subject"] for i in ews.items(ALICE, folder=rota["id"])] == ["Early shift"]


# ---- notifications and free/busy -----------------------------------------------------------------------------------


def test_pull_subscription_on_the_folder_reports_its_items_with_its_parent_folder_id(
    ews: EwsEmulator, alice: Account, rota: dict[str, Any]
) -> None:
    folder = alice.calendar / "Branch rota"
    sub_id, watermark = folder.subscribe_to_pull(timeout=5)
    shift = add(ews, "Night shift", 20, rota["id"])
    add(ews, "Calendar only", 14)
    ews.control("PATCH", f"mailboxes/{ALICE}/items/{shift['id']}", {"subject": "Night shift (swapped)"})
    ews.control("DELETE", f"mailboxes/{ALICE}/items/{shift['id']}", expect=204)

    [notification] = list(folder.get_events(sub_id, watermark))
    assert [type(e) for e in notification.events] == [CreatedEvent, ModifiedEvent, DeletedEvent]
    assert {e.item_id.id for e in notification.events} == {shift["id"]}
    assert {e.parent_folder_id.id for e in notification.events} == {rota["id"]}


def test_streaming_subscription_on_the_folder(ews: EwsEmulator, alice: Account, rota: dict[str, Any]) -> None:
    folder = alice.calendar / "Branch rota"
    sub_id = folder.subscribe_to_streaming()
    received: list[Any] = []
    stream = threading.Thread(
        target=lambda: received.extend(
            folder.get_streaming_events(sub_id, connection_timeout=1, max_notifications_returned=1)
        ),
        daemon=True,
    )
    stream.start()
    deadline = time.monotonic() + 5
    while ews.control("GET", "stats")["streaming_connections"] != 1:
        assert time.monotonic() < deadline, "the stream did not open"
        time.sleep(0.02)
    add(ews, "Calendar only", 14)
    shift = add(ews, "Night shift", 20, rota["id"])
    stream.join(timeout=10)
    assert not stream.is_alive()
    events = [e for n in received for e in n.events if isinstance(e, CreatedEvent)]
    assert [(e.item_id.id, e.parent_folder_id.id) for e in events] == [(shift["id"], rota["id"])]


def test_free_busy_publishes_the_default_calendar_only(alice: Account, rota: dict[str, Any]) -> None:
    [result] = alice.protocol.get_free_busy_info(
        accounts=[(ALICE, "Required", False)],
        start=DAY,
        end=DAY + timedelta(days=1),
        merged_free_busy_interval=60,
        requested_view="DetailedMerged",
    )
    # Exchange publishes the default Calendar's free/busy: the rota's 08:00 shift (London) is not in it.
    assert [e.details.subject for e in result.calendar_events] == ["Team meeting"]
    assert result.merged[8] == "0" and result.merged[13] == "2"
