"""Reconciling one mailbox with JRNI (JRNI → Exchange): the deep half of a mapping's reconcile.

Inputs: the bookings JRNI lists for the mapped staff member or resource around the sync window, the mailbox's links,
and every item carrying our stamp that a listing of the mailbox shows. Per booking that should show in this mailbox:

| link    | our items found for it        | action                                                            |
|---------|-------------------------------|-------------------------------------------------------------------|
| none    | none                          | CreateEvent                                                       |
| none    | one or more                   | RecoverEvent: found again by its stamp, never written a second time |
| pending | any                           | RecoverEvent (as the event path decides it)                       |
| synced  | the linked one is not there   | UpdateEvent, written again if gone (deleted behind calsync's back) |
| synced  | the linked one, to re-render  | UpdateEvent (rerender) if the booking has not ended, else nothing |
| synced  | the linked one, other print   | UpdateEvent                                                       |
| synced  | the linked one, same print    | nothing                                                           |
| any     | others beside the linked one  | RemoveStrayItem for each other: one item per booking and mailbox  |

What JRNI's list does not explain is looked at again, one booking at a time, before anything is removed
(``recheck``): a link or a stamped item inside the window whose booking the list lacks (cancelled, moved to another
calendar or out of the window, or JRNI answering with an empty list by mistake). The mass-delete guard counts them.
Items and links outside the window are left alone: history is not reconciled.

"To re-render": the item was written from other templates than the integration's (they changed since) and differs
from what it should show in its subject and body alone, its time and free/busy the same (``EventContent.placement``).
It is rewritten in place, never moved; the item of a booking that has ended keeps what it showed. A link written
before links recorded templates and placement is updated as any other (other print).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from calsync.domain import Booking, EventContent, JrniKey, Link, LinkState, Mapping, TimeWindow
from calsync.engine.inbound import RemoveStrayItem
from calsync.engine.outbound import WRITE_MAY_LAND, Action, CreateEvent, RecoverEvent, UpdateEvent

# The mass-delete guard. calsync refuses to remove at once more than half of what it holds for one calendar, when that
# is at least ``MASS_DELETE_MIN`` things: a JRNI company id changed, a permission removed, JRNI answering with an empty
# list, or a mailbox emptied all look exactly like that; a day's cancellations or deleted meetings do not. (vdirsyncer
# refuses when one side becomes empty; Odoo caps deletions per run; this catches both an empty side and a near-empty
# one, and lets ordinary days through.)
MASS_DELETE_MIN = 5
MASS_DELETE_FRACTION = 0.5


def held_back(removals: int, held: int) -> bool:
    """Whether removing ``removals`` of the ``held`` things calsync holds for a calendar is too many to trust."""
    return removals >= MASS_DELETE_MIN and removals > MASS_DELETE_FRACTION * held


@dataclass(frozen=True)
class Listed:
    """An item of ours the mailbox listing shows: its id, version and time."""

    jrni_key: JrniKey
    remote_id: str
    window: TimeWindow


@dataclass(frozen=True)
class MailboxPlan:
    actions: list[Action | RemoveStrayItem] = field(default_factory=list)
    # Bookings to read again one by one: they may have to go from this mailbox.
    recheck: list[JrniKey] = field(default_factory=list)
    # Of ``recheck``, those calsync has a link for in this mailbox (what the mass-delete guard weighs).
    linked_recheck: int = 0
    # Links whose item is inside the window (or gone): what the guard weighs them against.
    linked_in_window: int = 0


def _rerender(link: Link, content: EventContent) -> bool:
    """Whether ``link`` differs from ``content`` only because other templates rendered its subject and body."""
    return (
        bool(link.templates and link.placement)
        and link.templates != content.templates
        and link.placement == content.placement
    )


def plan_mailbox(
    mapping: Mapping,
    wanted: dict[JrniKey, tuple[Booking, EventContent]],
    links: Iterable[Link],
    listed: Iterable[Listed],
    window: TimeWindow,
    *,
    now: datetime,
    appointment_lock: bool = True,
) -> MailboxPlan:
    """What makes ``mapping.mailbox`` show exactly the bookings of ``wanted`` (each as its content), in a stable
    order. ``wanted``: the bookings JRNI lists for the mapping inside ``window`` that should show here. ``now``: an
    item whose booking has ended by then keeps the words it was written with when only the templates changed."""
    mailbox = mapping.mailbox
    by_key = {link.jrni_key: link for link in links if link.mailbox == mailbox}
    found: dict[JrniKey, list[Listed]] = {}
    for item in sorted(listed, key=lambda i: i.remote_id):
        found.setdefault(item.jrni_key, []).append(item)
    actions: list[Action | RemoveStrayItem] = []
    for key in sorted(wanted, key=str):
        _, content = wanted[key]
        link = by_key.get(key)
        items = found.get(key, [])
        keep: str | None = None
        if link is None:
            if items:
                actions.append(RecoverEvent(mailbox, content, None))
                keep = items[0].remote_id  # the recovery keeps the first it finds and removes the others
            else:
                actions.append(CreateEvent(mailbox, content))
        elif link.state is LinkState.PENDING or link.remote_id is None:
            landing = None if link.written_at is None else link.written_at + WRITE_MAY_LAND
            actions.append(RecoverEvent(mailbox, content, link, landing))
            keep = items[0].remote_id if items else None
        else:
            keep = link.remote_id
            if all(item.remote_id != link.remote_id for item in items):
                # Gone behind calsync's back, and no Outlook deletion was read for it (that is applied first, by the
                # mailbox's change feed): the booking is still on, so its item is written again.
                actions.append(UpdateEvent(mailbox, content, link, recreate_if_gone=True))
            elif link.fingerprint != content.fingerprint:
                if not _rerender(link, content):
                    actions.append(UpdateEvent(mailbox, content, link, recreate_if_gone=appointment_lock))
                elif content.window.end > now:
                    actions.append(
                        UpdateEvent(mailbox, content, link, recreate_if_gone=appointment_lock, rerender=True)
                    )
        actions.extend(
            RemoveStrayItem(mailbox, item.remote_id, key) for item in items if item.remote_id != keep
        )
    recheck: set[JrniKey] = set()
    linked_in_window = 0
    for key in by_key:
        items = found.get(key, [])
        inside = not items or any(item.window.overlaps(window) for item in items)
        if inside:
            linked_in_window += 1
            if key not in wanted:
                recheck.add(key)
    linked_recheck = len(recheck)
    for key, items in found.items():
        if key not in wanted and key not in by_key and any(item.window.overlaps(window) for item in items):
            recheck.add(key)
    return MailboxPlan(actions, sorted(recheck, key=str), linked_recheck, linked_in_window)
