"""Inbound planning (Exchange → JRNI) for one mailbox's changes.

For an Outlook item that is *not* ours (the adviser's own meeting):

| shows as Busy/OOF/… inside the window | block linked | action                                    |
|----------------------------------------|--------------|-------------------------------------------|
| yes                                    | no           | CreateBlock                               |
| yes                                    | yes, same    | nothing (also: our own block write echoing) |
| yes                                    | yes, other   | MoveBlock (time or title changed)         |
| no (Free, cancelled, outside, deleted) | yes          | RemoveBlock                               |

An item another integration stamped is an ordinary meeting here (an adviser booked in two JRNI tenants is busy in
both). An item carrying our stamp that is not the booking's item in this mailbox (JRNI cancelled or no longer has the
booking, it is not in this calendar any more, or it is a second item of a booking already linked to another one:
a write that landed late) is removed: RemoveStrayItem. It never blocks JRNI.

For an item *we* wrote for a JRNI booking, edited or deleted in Outlook: our own write coming back (same change
key) is nothing; otherwise with the appointment lock on, RevertItem (JRNI's version is written again, only if the
item still has the version decided on); off, the booking follows (MoveBooking, or CancelBooking when deleted). A reservation moved or given an attendee is confirmed
when auto-confirm is on, and two notifications are emitted: the update and the confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from calsync.domain import BLOCKING_FREE_BUSY, FreeBusy, JrniKey, LinkState, Mapping, TimeWindow
from calsync.domain.inbound import BlockLink, CalendarEvent, MailboxChanges, OurItem

# How far ahead a mailbox's items are mirrored into JRNI.
SYNC_WINDOW_DAYS = 90


@dataclass(frozen=True)
class InboundOptions:
    now: datetime
    window_days: int = SYNC_WINDOW_DAYS
    blocking: frozenset[FreeBusy] = frozenset(BLOCKING_FREE_BUSY)
    appointment_lock: bool = True
    auto_confirm: bool = False
    private_title: str = "Private appointment"
    untitled: str = "Busy (Outlook)"

    @property
    def window(self) -> TimeWindow:
        return TimeWindow(self.now, self.now + timedelta(days=self.window_days))


@dataclass(frozen=True)
class CreateBlock:
    mapping: Mapping
    event: CalendarEvent
    window: TimeWindow
    title: str


@dataclass(frozen=True)
class MoveBlock:
    link: BlockLink
    event: CalendarEvent
    window: TimeWindow
    title: str


@dataclass(frozen=True)
class RemoveBlock:
    link: BlockLink


@dataclass(frozen=True)
class RemoveStrayItem:
    """Delete an item carrying our stamp that no booking owns in this mailbox (cancelled, moved away, or a second
    item of a booking that already has one)."""

    mailbox: str
    remote_id: str
    jrni_key: JrniKey


@dataclass(frozen=True)
class RevertItem:
    """Write the booking back as JRNI has it over the item changed in Outlook (appointment lock, or JRNI refused).

    ``version``: the item's version this decision was made on. The write is conditional on it, so an Outlook change
    made after the one answered here is never overwritten: it is read and decided on instead. None: the item was
    deleted (it is written again)."""

    jrni_key: JrniKey
    mailbox: str
    reason: str
    version: str | None = None


@dataclass(frozen=True)
class MoveBooking:
    jrni_key: JrniKey
    window: TimeWindow  # the appointment itself: the buffers we added are taken off again
    # The Outlook item's version this answers (put back from it if JRNI refuses).
    item_version: str | None = None


@dataclass(frozen=True)
class CancelBooking:
    jrni_key: JrniKey


@dataclass(frozen=True)
class ConfirmReservation:
    jrni_key: JrniKey
    item_version: str | None = None


@dataclass(frozen=True)
class Notify:
    """An event for the customer's own EventBridge rules (their notifications)."""

    kind: str  # "booking.updated" | "booking.confirmed"
    jrni_key: JrniKey
    detail: dict[str, str] = field(default_factory=dict)


InboundAction = (
    CreateBlock
    | MoveBlock
    | RemoveBlock
    | RemoveStrayItem
    | RevertItem
    | MoveBooking
    | CancelBooking
    | ConfirmReservation
    | Notify
)


def block_title(event: CalendarEvent, options: InboundOptions) -> str:
    """What the JRNI block is called: never the subject of a private item."""
    if event.is_private:
        return options.private_title
    return (event.subject or "").strip()[:200] or options.untitled


def _blocks(event: CalendarEvent, options: InboundOptions) -> bool:
    return (
        not event.is_cancelled
        and event.free_busy in options.blocking
        and event.window.overlaps(options.window)
    )


def plan_inbound(
    changes: MailboxChanges,
    mapping: Mapping,
    blocks: list[BlockLink],
    ours: dict[str, OurItem],
    options: InboundOptions,
) -> list[InboundAction]:
    """The JRNI changes that make JRNI agree with one mailbox's Outlook changes, in a stable order.

    ``blocks``: the mailbox's block links; ``ours``: the items that are a booking's item in this mailbox, by Outlook
    id, with JRNI's view of each (any other item carrying our stamp is a stray).
    """
    actions: list[InboundAction] = []
    by_remote = {link.remote_id: link for link in blocks}
    seen: set[str] = set()
    for event in changes.upserts:
        seen.add(event.remote_id)
        our = ours.get(event.remote_id)
        if event.stamp is not None and event.stamp.integration_id == mapping.integration_id and our is None:
            actions.append(RemoveStrayItem(mapping.mailbox, event.remote_id, event.stamp.jrni_key))
            continue  # never a block
        if our is not None:
            actions.extend(_our_item_changed(event, our, mapping.mailbox, options))
            continue
        link = by_remote.get(event.remote_id)
        if _blocks(event, options):
            title = block_title(event, options)
            if link is None:
                actions.append(CreateBlock(mapping, event, event.window, title))
            elif link.state is LinkState.PENDING or link.window != event.window or link.title != title:
                # Pending: a create that failed or crashed midway; the move finds the block by its marker, or makes it.
                actions.append(MoveBlock(link, event, event.window, title))
            # else: the block already says exactly this (a change that does not matter to JRNI)
        elif link is not None:
            actions.append(RemoveBlock(link))
    removed = set(changes.removed)
    for item_id in sorted(removed):
        our = ours.get(item_id)
        if our is not None and not our.is_cancelled:
            if options.appointment_lock:
                actions.append(RevertItem(our.jrni_key, mapping.mailbox, "deleted in Outlook"))
            else:
                actions.append(CancelBooking(our.jrni_key))
    for link in sorted(blocks, key=lambda b: b.remote_id):
        gone = link.remote_id in removed or (link.series_id is not None and link.series_id in removed)
        # A complete series replaces whatever was blocked for it, the item itself included (a single item that
        # became a series keeps its id, which now names the series, not an event).
        complete = set(changes.complete_series)
        stale = (link.series_id in complete or link.remote_id in complete) and link.remote_id not in seen
        if (gone or stale) and link.remote_id not in seen:
            actions.append(RemoveBlock(link))
    return actions


def _our_item_changed(
    event: CalendarEvent, our: OurItem, mailbox: str, options: InboundOptions
) -> list[InboundAction]:
    if our.is_cancelled:
        return []  # JRNI cancelled it; outbound is removing the item
    if our.version is not None and event.version == our.version:
        return []  # our own write coming back: no echo
    moved = event.window != our.expected_window
    invited = event.has_attendees
    actions: list[InboundAction] = []
    confirming = our.is_reservation and options.auto_confirm and (moved or invited)
    if confirming:
        actions.append(ConfirmReservation(our.jrni_key, event.version))
    if moved and not options.appointment_lock:
        start = event.window.start + timedelta(seconds=our.pre_time_seconds)
        end = event.window.end - timedelta(seconds=our.post_time_seconds)
        actions.append(MoveBooking(our.jrni_key, TimeWindow(start, max(start, end)), event.version))
    elif options.appointment_lock and (moved or event.free_busy != our.expected_free_busy):
        # The lock: a booking can only be changed where it was made; Outlook gets JRNI's version back.
        actions.append(
            RevertItem(
                our.jrni_key, mailbox, "changed in Outlook while the appointment lock is on", event.version
            )
        )
    if confirming:
        actions.append(Notify("booking.updated", our.jrni_key, {"mailbox": mailbox}))
        actions.append(Notify("booking.confirmed", our.jrni_key, {"mailbox": mailbox}))
    return actions
