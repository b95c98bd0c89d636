"""The inbound plan as a table: one mailbox's Outlook changes, what is linked, and the JRNI actions expected."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from calsync.domain import FreeBusy, JrniKey, LinkState, Mapping, ResourceKind, Stamp, TimeWindow
from calsync.domain.inbound import BlockLink, CalendarEvent, MailboxChanges, OurItem
from calsync.engine.inbound import (
    CancelBooking,
    ConfirmReservation,
    CreateBlock,
    InboundOptions,
    MoveBlock,
    MoveBooking,
    Notify,
    RemoveBlock,
    RemoveStrayItem,
    RevertItem,
    plan_inbound,
)
from tests.calsync.builders import ALICE, INTEGRATION

NOW = datetime(2025, 7, 1, 8, tzinfo=UTC)
MAPPING = Mapping(INTEGRATION, ResourceKind.PERSON, "11", ALICE)
BOOKING = JrniKey("100", "501")


def window(day: int, hour: int, minutes: int = 60) -> TimeWindow:
    start = datetime(2025, 7, day, hour, tzinfo=UTC)
    return TimeWindow(start, start + timedelta(minutes=minutes))


def meeting(remote_id: str = "m1", **fields: object) -> CalendarEvent:
    values: dict[str, object] = {
        "remote_id": remote_id,
        "version": "v1",
        "window": window(2, 9),
        "free_busy": FreeBusy.BUSY,
        "subject": "Team meeting",
    }
    values.update(fields)
    return CalendarEvent(**values)  # type: ignore[arg-type]


def block(remote_id: str = "m1", **fields: object) -> BlockLink:
    values: dict[str, object] = {
        "integration_id": INTEGRATION,
        "mailbox": ALICE,
        "remote_id": remote_id,
        "jrni_key": JrniKey("100", "9001"),
        "slot_id": "900001",
        "window": window(2, 9),
        "title": "Team meeting",
        "version": "v1",
    }
    values.update(fields)
    return BlockLink(**values)  # type: ignore[arg-type]


OUR_STAMP = Stamp(INTEGRATION, BOOKING)
OUR_WINDOW = TimeWindow(datetime(2025, 7, 3, 9, 55, tzinfo=UTC), datetime(2025, 7, 3, 11, 10, tzinfo=UTC))


def ours(**fields: object) -> OurItem:
    values: dict[str, object] = {
        "jrni_key": BOOKING,
        "expected_window": OUR_WINDOW,
        "expected_free_busy": FreeBusy.BUSY,
        "version": "ours-v1",
        "pre_time_seconds": 300,
        "post_time_seconds": 600,
    }
    values.update(fields)
    return OurItem(**values)  # type: ignore[arg-type]


def our_event(**fields: object) -> CalendarEvent:
    values: dict[str, object] = {
        "remote_id": "our-1",
        "version": "ours-v1",
        "window": OUR_WINDOW,
        "free_busy": FreeBusy.BUSY,
        "subject": "Consultation",
        "stamp": OUR_STAMP,
    }
    values.update(fields)
    return CalendarEvent(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    name: str
    upserts: list[CalendarEvent] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    complete_series: list[str] = field(default_factory=list)
    blocks: list[BlockLink] = field(default_factory=list)
    ours: dict[str, OurItem] = field(default_factory=dict)
    lock: bool = True
    auto_confirm: bool = False
    expected: list[str] = field(default_factory=list)


def describe(action: object) -> str:
    if isinstance(action, CreateBlock):
        return f"create {action.event.remote_id} '{action.title}'"
    if isinstance(action, MoveBlock):
        return f"move {action.link.remote_id} '{action.title}'"
    if isinstance(action, RemoveBlock):
        return f"remove {action.link.remote_id}"
    if isinstance(action, RevertItem):
        return f"revert {action.jrni_key.booking_id}"
    if isinstance(action, RemoveStrayItem):
        return f"remove stray {action.remote_id}"
    if isinstance(action, MoveBooking):
        return (
            f"move booking {action.jrni_key.booking_id} {action.window.start:%H:%M}-{action.window.end:%H:%M}"
        )
    if isinstance(action, CancelBooking):
        return f"cancel booking {action.jrni_key.booking_id}"
    if isinstance(action, ConfirmReservation):
        return f"confirm {action.jrni_key.booking_id}"
    if isinstance(action, Notify):
        return f"notify {action.kind}"
    raise AssertionError(action)


CASES = [
    # The adviser's own meetings block time in JRNI.
    Case("busy meeting", [meeting()], expected=["create m1 'Team meeting'"]),
    Case("out of office", [meeting(free_busy=FreeBusy.OOF)], expected=["create m1 'Team meeting'"]),
    Case("tentative", [meeting(free_busy=FreeBusy.TENTATIVE)], expected=["create m1 'Team meeting'"]),
    Case(
        "working elsewhere",
        [meeting(free_busy=FreeBusy.WORKING_ELSEWHERE)],
        expected=["create m1 'Team meeting'"],
    ),
    # Free time is never synced.
    Case("free", [meeting(free_busy=FreeBusy.FREE)], expected=[]),
    # Private: a block with a neutral title; the subject never leaves Exchange.
    Case(
        "private", [meeting(is_private=True, subject="Doctor")], expected=["create m1 'Private appointment'"]
    ),
    Case("no subject", [meeting(subject="")], expected=["create m1 'Busy (Outlook)'"]),
    # Moved in Outlook: the block follows; renamed: so does its title.
    Case(
        "moved",
        [meeting(window=window(2, 14), version="v2")],
        blocks=[block()],
        expected=["move m1 'Team meeting'"],
    ),
    Case("renamed", [meeting(subject="Board", version="v2")], blocks=[block()], expected=["move m1 'Board'"]),
    # A change that does not matter to JRNI (and our own block write echoing back) calls nothing.
    Case("unchanged", [meeting(version="v2")], blocks=[block()], expected=[]),
    # A block whose creation failed or crashed midway is finished (found by its marker, or made), never forgotten.
    Case(
        "pending block",
        [meeting()],
        blocks=[block(state=LinkState.PENDING, jrni_key=None, slot_id="")],
        expected=["move m1 'Team meeting'"],
    ),
    # Deleted, cancelled or turned Free: the block goes.
    Case("deleted", removed=["m1"], blocks=[block()], expected=["remove m1"]),
    Case("cancelled", [meeting(is_cancelled=True)], blocks=[block()], expected=["remove m1"]),
    Case("turned free", [meeting(free_busy=FreeBusy.FREE)], blocks=[block()], expected=["remove m1"]),
    # Only what lies in the sync window blocks; a meeting moved out of it releases its block.
    Case("past", [meeting(window=window(1, 6))], expected=[]),
    Case(
        "far future",
        [meeting(window=TimeWindow(NOW + timedelta(days=200), NOW + timedelta(days=200, hours=1)))],
        expected=[],
    ),
    Case("moved out of the window", [meeting(window=window(1, 6))], blocks=[block()], expected=["remove m1"]),
    # A series: one block per occurrence; a deleted occurrence's block goes when the series is complete.
    Case(
        "series",
        [meeting("o1", series_id="s"), meeting("o2", series_id="s", window=window(9, 9))],
        complete_series=["s"],
        blocks=[block("o3", series_id="s")],
        expected=["create o1 'Team meeting'", "create o2 'Team meeting'", "remove o3"],
    ),
    Case(
        "single item turned into a series",
        [meeting("o1", series_id="m1"), meeting("o2", series_id="m1", window=window(9, 9))],
        complete_series=["m1"],
        blocks=[block("m1")],
        expected=["create o1 'Team meeting'", "create o2 'Team meeting'", "remove m1"],
    ),
    Case(
        "series deleted",
        removed=["s"],
        blocks=[block("o1", series_id="s"), block("o2", series_id="s")],
        expected=["remove o1", "remove o2"],
    ),
    # Our own item: our write coming back is nothing (no echo).
    Case("our write echoing", [our_event()], ours={"our-1": ours()}, expected=[]),
    # Edited in Outlook with the lock on: put back as JRNI has it.
    Case(
        "ours moved, lock on",
        [our_event(version="x", window=window(3, 14))],
        ours={"our-1": ours()},
        expected=["revert 501"],
    ),
    Case("ours deleted, lock on", removed=["our-1"], ours={"our-1": ours()}, expected=["revert 501"]),
    Case(
        "ours turned free, lock on",
        [our_event(version="x", free_busy=FreeBusy.FREE)],
        ours={"our-1": ours()},
        expected=["revert 501"],
    ),
    # Lock off: the booking follows Outlook, buffers taken off again; deleted → cancelled.
    Case(
        "ours moved, lock off",
        [
            our_event(
                version="x",
                window=TimeWindow(
                    datetime(2025, 7, 3, 13, 55, tzinfo=UTC), datetime(2025, 7, 3, 15, 10, tzinfo=UTC)
                ),
            )
        ],
        ours={"our-1": ours()},
        lock=False,
        expected=["move booking 501 14:00-15:00"],
    ),
    Case(
        "ours deleted, lock off",
        removed=["our-1"],
        ours={"our-1": ours()},
        lock=False,
        expected=["cancel booking 501"],
    ),
    Case(
        "ours renamed only, lock off",
        [our_event(version="x", subject="Renamed")],
        ours={"our-1": ours()},
        lock=False,
        expected=[],
    ),
    # A reservation moved, or given an attendee, is confirmed when auto-confirm is on, with two notifications.
    Case(
        "reservation moved, auto-confirm",
        [our_event(version="x", window=window(3, 14, 75))],
        ours={"our-1": ours(is_reservation=True)},
        lock=False,
        auto_confirm=True,
        expected=[
            "confirm 501",
            "move booking 501 14:05-15:05",
            "notify booking.updated",
            "notify booking.confirmed",
        ],
    ),
    Case(
        "reservation given an attendee",
        [our_event(version="x", has_attendees=True)],
        ours={"our-1": ours(is_reservation=True)},
        auto_confirm=True,
        expected=["confirm 501", "notify booking.updated", "notify booking.confirmed"],
    ),
    Case(
        "reservation moved, no auto-confirm, lock on",
        [our_event(version="x", window=window(3, 14))],
        ours={"our-1": ours(is_reservation=True)},
        expected=["revert 501"],
    ),
    # JRNI already cancelled the booking: outbound is removing the item; inbound does nothing.
    Case("ours cancelled in JRNI", removed=["our-1"], ours={"our-1": ours(is_cancelled=True)}, expected=[]),
    # Stamped by us, but no booking owns it here (unknown, cancelled, moved away, or a second item of a booking that
    # has one): removed from Outlook, never turned into a block (that would echo).
    Case("ours, booking gone", [our_event()], expected=["remove stray our-1"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_inbound_plan(case: Case) -> None:
    changes = MailboxChanges(ALICE, case.upserts, case.removed, case.complete_series)
    options = InboundOptions(now=NOW, appointment_lock=case.lock, auto_confirm=case.auto_confirm)
    assert [
        describe(a) for a in plan_inbound(changes, MAPPING, case.blocks, case.ours, options)
    ] == case.expected


def test_a_stamp_of_another_integration_is_an_ordinary_meeting() -> None:
    foreign = our_event(stamp=Stamp("other-integration", BOOKING))
    actions = plan_inbound(MailboxChanges(ALICE, [foreign]), MAPPING, [], {}, InboundOptions(now=NOW))
    assert [describe(a) for a in actions] == ["create our-1 'Consultation'"]


def test_planning_is_idempotent_once_blocks_are_recorded() -> None:
    event = meeting()
    [create] = plan_inbound(MailboxChanges(ALICE, [event]), MAPPING, [], {}, InboundOptions(now=NOW))
    assert isinstance(create, CreateBlock)
    recorded = block(window=create.window, title=create.title, version=event.version)
    assert (
        plan_inbound(
            MailboxChanges(ALICE, [replace(event)]), MAPPING, [recorded], {}, InboundOptions(now=NOW)
        )
        == []
    )
