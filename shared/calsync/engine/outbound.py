"""Outbound planning (JRNI → Exchange) for one booking across every mailbox it belongs in.

The table, per mailbox (``desired`` = the booking should show there; ``link`` = we recorded an item there):

| desired | link                | action                                                             |
|---------|---------------------|--------------------------------------------------------------------|
| yes     | none                | CreateEvent                                                        |
| yes     | pending             | RecoverEvent: a create or update may have happened before a crash |
|         |                     | (an empty search is trusted only ``WRITE_MAY_LAND`` after the     |
|         |                     | write was sent: Exchange finishes what it started)                 |
| yes     | synced, same print  | nothing: replay, duplicate webhook or our own echo                 |
| yes     | synced, other print | UpdateEvent                                                        |
| yes     | synced, to rewrite  | UpdateEvent if the item still has the version read (an Outlook     |
|         |                     | change answered with JRNI's version)                               |
| no      | any                 | DeleteEvent (cancelled, reassigned away, or no longer mapped)      |
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as ReadOnlyMap
from dataclasses import dataclass
from datetime import datetime, timedelta

from calsync.domain import (
    Booking,
    BookingKind,
    BookingStatus,
    EventContent,
    FreeBusy,
    Link,
    LinkState,
    Mapping,
    ResourceKind,
    Stamp,
    SyncOptions,
)


@dataclass(frozen=True)
class CreateEvent:
    """Write a new stamped item (record the link as pending first, so a crash cannot duplicate it)."""

    mailbox: str
    content: EventContent


# How long after a write was sent it may still land in the mailbox. Exchange finishes a request it has started even
# when the client stopped waiting (a timeout, a Lambda cut off), so a search that finds nothing soon after says
# nothing about whether the write happened. Two minutes is four times calsync's own EWS deadline (30 s) and longer
# than IIS lets a request run (110 s by default); a write that lands later still is removed as an extra by the next
# sync of its booking or of its mailbox.
WRITE_MAY_LAND = timedelta(minutes=2)


@dataclass(frozen=True)
class RecoverEvent:
    """A pending link (or none, when a reconcile found our stamped item without one): find our stamped item and bring
    it to ``content``, creating it only if it is not there.

    ``create_after``: until then, an empty search means "not landed yet", not "not written": look again later rather
    than write a second item."""

    mailbox: str
    content: EventContent
    link: Link | None
    create_after: datetime | None = None


@dataclass(frozen=True)
class UpdateEvent:
    """Bring our item to ``content``. ``revert``: an answer to an Outlook change, written only if the item still has
    ``if_version`` when one is given, so that a newer Outlook change is never overwritten.

    ``recreate_if_gone``: when the item turns out to be deleted in Outlook, write it again (a revert, or the
    appointment lock on). Otherwise the deletion is the adviser's word: inbound cancels the booking when it reads
    it, and the link keeps naming the deleted item so that inbound knows it for ours.

    ``rerender``: only the subject and body change, because the integration's templates did (a reconcile after a
    template change); the item keeps its time and free/busy."""

    mailbox: str
    content: EventContent
    link: Link
    revert: bool = False
    if_version: str | None = None
    recreate_if_gone: bool = False
    rerender: bool = False


@dataclass(frozen=True)
class DeleteEvent:
    """Remove our item (already gone counts as done) and then the link."""

    mailbox: str
    link: Link


@dataclass(frozen=True)
class SkipUnmapped:
    """The booking's staff member or resource has no mailbox: nothing to write, but the operator should see it."""

    kind: ResourceKind
    jrni_id: str


Action = CreateEvent | RecoverEvent | UpdateEvent | DeleteEvent | SkipUnmapped


def desired_content(
    booking: Booking,
    integration_id: str,
    subject: str,
    body: str,
    options: SyncOptions,
    *,
    is_html: bool = True,
    templates: str = "",
) -> EventContent:
    """How ``booking`` should look in Outlook: buffers when the integration includes them, Tentative for reservations,
    Busy for a JRNI block. ``templates``: the fingerprint of the templates that rendered ``subject`` and ``body``."""
    window = booking.window
    if options.include_buffers:
        window = window.widened(booking.pre_time, booking.post_time)
    if booking.kind is BookingKind.BLOCK:
        free_busy = FreeBusy.BUSY
    else:
        free_busy = FreeBusy.TENTATIVE if booking.status is BookingStatus.RESERVATION else FreeBusy.BUSY
    return EventContent(
        Stamp(integration_id, booking.key), subject, body, window, free_busy, is_html, templates=templates
    )


def plan_outbound(
    content: EventContent | None,
    booking: Booking | None,
    mappings: Iterable[Mapping],
    links: Iterable[Link],
    options: SyncOptions,
    *,
    mirrored_from_exchange: bool = False,
    rewrite: ReadOnlyMap[str, str | None] | None = None,
    appointment_lock: bool = True,
) -> list[Action]:
    """The actions that make every mailbox show ``booking`` as ``content`` (or not at all), in a stable order.

    ``booking`` None means JRNI no longer has it (deleted): every linked item goes. ``mirrored_from_exchange`` marks
    a JRNI block that calsync itself made for an Outlook item: pushing it back would echo. ``rewrite``: mailboxes
    whose item was changed in Outlook and must show JRNI's version again although the link says it does, each with
    the item version that was read (None: the item was deleted). ``appointment_lock``: an item deleted in Outlook
    comes back with the next update (on), or stays deleted for inbound to cancel the booking (off).
    """
    rewrite = rewrite or {}
    by_calendar = {(m.kind, m.jrni_id): m for m in mappings}
    actions: list[Action] = []
    desired: dict[str, EventContent] = {}
    wanted = (
        booking is not None
        and content is not None
        and booking.is_active
        and not (
            booking.kind is BookingKind.BLOCK and (mirrored_from_exchange or not options.sync_jrni_blocks)
        )
    )
    if wanted:
        assert booking is not None and content is not None
        for kind, jrni_id in booking.calendar_ids():
            mapping = by_calendar.get((kind, jrni_id))
            if mapping is None:
                actions.append(SkipUnmapped(kind, jrni_id))
            else:
                desired[mapping.mailbox] = content

    linked = {link.mailbox: link for link in links}
    for mailbox in sorted(desired):
        link = linked.get(mailbox)
        target = desired[mailbox]
        if link is None:
            actions.append(CreateEvent(mailbox, target))
        elif link.state is LinkState.PENDING or link.remote_id is None:
            landing = None if link.written_at is None else link.written_at + WRITE_MAY_LAND
            actions.append(RecoverEvent(mailbox, target, link, landing))
        elif mailbox in rewrite:
            # Changed in Outlook behind the link's back: written again, but only over the version that was read.
            actions.append(
                UpdateEvent(
                    mailbox, target, link, revert=True, if_version=rewrite[mailbox], recreate_if_gone=True
                )
            )
        elif link.fingerprint != target.fingerprint:
            actions.append(UpdateEvent(mailbox, target, link, recreate_if_gone=appointment_lock))
        # else: the item already shows exactly this; a replayed or duplicate message changes nothing.
    for mailbox in sorted(set(linked) - set(desired)):
        actions.append(DeleteEvent(mailbox, linked[mailbox]))
    return actions
