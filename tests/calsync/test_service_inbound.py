"""The inbound use case with in-memory fakes: Outlook changes to JRNI, crash-safe, echo-free, cursor last."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from calsync.domain import (
    BookingKind,
    BookingStatus,
    FreeBusy,
    JrniKey,
    ResourceKind,
    Stamp,
    SyncState,
    TimeWindow,
)
from calsync.domain.inbound import CalendarEvent, MailboxChanges
from calsync.domain.messages import InboundMessage, NotifiedItem, OutboundMessage, WakeReason
from calsync.ports import JrniCalendar
from calsync.usecases.sync_booking import BookingDeps, sync_booking
from calsync.usecases.sync_mailbox import MailboxDeps, sync_mailbox
from tests.calsync.builders import ALICE, INTEGRATION, MAPPINGS, booking, integration
from tests.calsync.fakes import (
    FakeBlockLinks,
    FakeBookingSource,
    FakeCalendar,
    FakeCursors,
    FakeEvents,
    FakeFeed,
    FakeIntegrations,
    FakeLinkStore,
    FakeMappings,
    FakeWriter,
)

NOW = datetime(2025, 7, 1, 8, tzinfo=UTC)
CALENDARS = [
    JrniCalendar(ResourceKind.PERSON, "11", "100", "Alice"),
    JrniCalendar(ResourceKind.PERSON, "12", "100", "Bob"),
    JrniCalendar(ResourceKind.RESOURCE, "21", "100", "Room"),
]


class World:
    """JRNI, Outlook and calsync's state, all in memory."""

    def __init__(self, **integration_options: Any) -> None:
        self.source = FakeBookingSource(calendars=CALENDARS)
        self.calendar = FakeCalendar()
        self.feed = FakeFeed()
        self.writer = FakeWriter(self.source)
        self.events = FakeEvents()
        self.services = MailboxDeps(
            booking=BookingDeps(
                integrations=FakeIntegrations(integration(**integration_options)),
                mappings=FakeMappings(*MAPPINGS),
                links=FakeLinkStore(),
                block_links=FakeBlockLinks(),
                calendar_for=lambda _: self.calendar,
                bookings_for=lambda _: self.source,
                clock=lambda: NOW,
            ),
            feed_for=lambda _: self.feed,
            writer_for=lambda _: self.writer,
            cursors=FakeCursors(),
            events=self.events,
        )

    def adviser_moves(self, event: CalendarEvent, hours: int) -> CalendarEvent:
        """The adviser moves one of calsync's items in Outlook: the item changes, and so does its version."""
        item = self.calendar.mailboxes[ALICE][event.remote_id]
        shifted = TimeWindow(
            item.content.window.start + timedelta(hours=hours),
            item.content.window.end + timedelta(hours=hours),
        )
        item.content = replace(item.content, window=shifted)
        item.version = f"v{int(item.version[1:]) + 1}"
        return replace(event, version=item.version, window=shifted)

    def outlook(self, *upserts: CalendarEvent, removed: tuple[str, ...] = ()) -> Any:
        """An Outlook change arrives and the streaming task wakes inbound for the mailbox."""
        self.feed.push(MailboxChanges(ALICE, list(upserts), list(removed)))
        report = sync_mailbox(self.services, InboundMessage(INTEGRATION, ALICE, WakeReason.NOTIFICATION))
        self.feed.acknowledge(ALICE)
        return report


def meeting(remote_id: str = "m1", hour: int = 9, **fields: Any) -> CalendarEvent:
    start = datetime(2025, 7, 2, hour, tzinfo=UTC)
    values: dict[str, Any] = {
        "remote_id": remote_id,
        "version": f"v{hour}",
        "window": TimeWindow(start, start + timedelta(hours=1)),
        "free_busy": FreeBusy.BUSY,
        "subject": "Team meeting",
    }
    return CalendarEvent(**{**values, **fields})


def test_a_meeting_blocks_jrni_and_the_cursor_is_stored_after() -> None:
    world = World()
    world.outlook(meeting())
    [block] = world.writer.blocks.values()
    assert block["title"] == "Team meeting" and block["company"] == "100" and block["jrni_id"] == "11"
    assert str(block["marker"]).startswith(f"calsync:{INTEGRATION}:")
    assert world.services.cursors.get(INTEGRATION, ALICE) == f"{ALICE}#1"
    [status] = world.services.booking.mappings.statuses(INTEGRATION)
    assert status.state is SyncState.OK and status.detail.startswith("1 blocked")


def test_the_same_changes_again_make_no_jrni_write() -> None:
    world = World()
    world.outlook(meeting())
    writes = list(world.writer.writes)
    world.outlook(meeting())  # replayed (e.g. a resync) or our own block write echoing
    assert world.writer.writes == writes


def test_moved_then_deleted_in_outlook() -> None:
    world = World()
    world.outlook(meeting())
    world.outlook(meeting(hour=14))
    [block] = world.writer.blocks.values()
    assert block["window"].start.hour == 14  # type: ignore[attr-defined]
    world.outlook(removed=("m1",))
    assert world.writer.blocks == {} and world.services.booking.block_links.blocks(INTEGRATION, ALICE) == []  # type: ignore[union-attr]


def test_a_crash_after_the_jrni_create_does_not_duplicate_the_block() -> None:
    world = World()
    world.writer.crash_after_create = True
    world.feed.push(MailboxChanges(ALICE, [meeting()]))
    with pytest.raises(ConnectionError):
        sync_mailbox(world.services, InboundMessage(INTEGRATION, ALICE, WakeReason.NOTIFICATION))
    assert world.services.cursors.get(INTEGRATION, ALICE) is None  # not stored: the changes come again

    sync_mailbox(world.services, InboundMessage(INTEGRATION, ALICE, WakeReason.TIMER))
    assert len(world.writer.blocks) == 1  # found by its marker, not made twice


def synced_booking(world: World, **changes: Any) -> tuple[JrniKey, CalendarEvent]:
    """A JRNI booking synced to Alice's Outlook by outbound; the item as the change feed would show it."""
    b = replace(booking(), **changes)
    world.source.bookings[b.key] = b
    sync_booking(world.services.booking, OutboundMessage(INTEGRATION, b.key, "create"))
    [link] = world.services.booking.links.links_for(INTEGRATION, b.key)
    item = world.calendar.mailboxes[ALICE][link.remote_id or ""]
    event = CalendarEvent(
        link.remote_id or "",
        item.version,
        item.content.window,
        item.content.free_busy,
        item.content.subject,
        stamp=Stamp(INTEGRATION, b.key),
    )
    return b.key, event


def test_our_own_write_coming_back_is_no_jrni_call() -> None:
    world = World()
    _, event = synced_booking(world)
    world.outlook(event)
    assert world.writer.writes == []


def test_lock_on_an_outlook_move_of_a_booking_is_reverted() -> None:
    world = World(appointment_lock=True)
    key, event = synced_booking(world)
    world.outlook(world.adviser_moves(event, 3))

    [item] = world.calendar.contents()[ALICE]
    assert item.window == event.window  # JRNI's time is back
    assert world.source.bookings[key].window == booking().window and world.writer.writes == []


def test_lock_off_the_booking_follows_outlook() -> None:
    world = World(appointment_lock=False)
    key, event = synced_booking(world)
    moved = world.adviser_moves(event, 3)
    world.outlook(moved)
    assert world.source.bookings[key].window == moved.window  # no buffers in this booking
    assert world.writer.writes == [f"move booking {key}"]


def test_lock_off_deleted_in_outlook_cancels_the_booking() -> None:
    world = World(appointment_lock=False)
    key, event = synced_booking(world)
    world.outlook(removed=(event.remote_id,))
    assert world.source.bookings[key].status is BookingStatus.CANCELLED


def test_a_refused_move_is_reverted_and_reported() -> None:
    world = World(appointment_lock=False)
    _, event = synced_booking(world)
    world.writer.refuse_moves = True
    world.outlook(world.adviser_moves(event, 3))

    [item] = world.calendar.contents()[ALICE]
    assert item.window == event.window
    status = next(
        s
        for s in world.services.booking.mappings.statuses(INTEGRATION)
        if s.jrni_id == "11" and "refused" in s.detail
    )
    assert status.state is SyncState.ERROR and "made externally" in status.detail


def test_a_reservation_moved_in_outlook_is_confirmed_with_two_events() -> None:
    world = World(appointment_lock=False, auto_confirm=True)
    key, event = synced_booking(world, status=BookingStatus.RESERVATION)
    assert event.free_busy is FreeBusy.TENTATIVE
    world.outlook(world.adviser_moves(event, 1))
    assert world.source.bookings[key].status is BookingStatus.CONFIRMED
    assert [e["kind"] for e in world.events.published] == ["booking.updated", "booking.confirmed"]
    assert world.events.published[0]["booking_id"] == key.booking_id


def test_a_jrni_block_made_by_inbound_is_never_pushed_back_to_outlook() -> None:
    world = World()
    world.outlook(meeting())
    [(slot, block)] = world.writer.blocks.items()
    as_jrni_reports_it = replace(
        booking("b" + slot, kind=BookingKind.BLOCK), details={"private_note": block["marker"]}
    )
    world.source.bookings[as_jrni_reports_it.key] = as_jrni_reports_it
    sync_booking(world.services.booking, OutboundMessage(INTEGRATION, as_jrni_reports_it.key, "create"))
    assert world.calendar.contents() == {}  # no "Unavailable" echo of Alice's own meeting


def test_lock_off_a_deletion_racing_jrnis_own_change_still_cancels_the_booking() -> None:
    world = World(appointment_lock=False)
    key, event = synced_booking(world)
    moved = replace(
        world.source.bookings[key],
        window=TimeWindow(event.window.start + timedelta(hours=2), event.window.end + timedelta(hours=2)),
    )
    world.source.bookings[key] = moved  # JRNI changes the booking...
    world.calendar.mailboxes[ALICE].clear()  # ...while the adviser deletes the item in Outlook

    sync_booking(
        world.services.booking, OutboundMessage(INTEGRATION, key, "modify")
    )  # JRNI's change arrives first
    assert world.calendar.contents() == {}  # the deletion is not undone behind the adviser's back

    world.outlook(removed=(event.remote_id,))  # then the deletion reaches inbound
    assert world.source.bookings[key].status is BookingStatus.CANCELLED


# ---- notifications that name only our own writes ---------------------------------------------------------------


def test_a_notification_naming_only_our_own_writes_reads_nothing_from_the_mailbox() -> None:
    world = World()
    _, event = synced_booking(world)
    world.feed.push(MailboxChanges(ALICE, [event]))  # what a sync would find: our item, as we wrote it

    notified = (NotifiedItem(event.remote_id, event.version),)
    report = sync_mailbox(
        world.services, InboundMessage(INTEGRATION, ALICE, WakeReason.NOTIFICATION, notified)
    )

    assert world.feed.reads == []
    assert report.jrni_writes == 0 and world.writer.writes == []
    assert (
        world.services.cursors.get(INTEGRATION, ALICE) is None
    )  # not moved: the next sync reads past the item


@pytest.mark.parametrize(
    "case", ["changed since our write", "not ours", "one of ours and one not", "no items named"]
)
def test_any_other_notification_reads_the_mailbox(case: str) -> None:
    world = World()
    _, event = synced_booking(world)
    ours = NotifiedItem(event.remote_id, event.version)
    notified = {
        "changed since our write": (NotifiedItem(event.remote_id, "edited-in-outlook"),),
        "not ours": (NotifiedItem("m1", "v9"),),
        "one of ours and one not": (ours, NotifiedItem("m1", "v9")),
        "no items named": None,
    }[case]
    world.feed.push(MailboxChanges(ALICE, [meeting()]))

    sync_mailbox(world.services, InboundMessage(INTEGRATION, ALICE, WakeReason.NOTIFICATION, notified))

    assert world.feed.reads == [(ALICE, None)]
    assert len(world.writer.blocks) == 1  # the Outlook meeting the sync found became a block


def test_our_write_named_in_another_mailbox_is_not_ours_there() -> None:
    world = World()
    _, event = synced_booking(world)
    bob = next(m.mailbox for m in MAPPINGS if m.mailbox != ALICE)
    notified = (NotifiedItem(event.remote_id, event.version),)

    sync_mailbox(world.services, InboundMessage(INTEGRATION, bob, WakeReason.NOTIFICATION, notified))

    assert world.feed.reads == [(bob, None)]
