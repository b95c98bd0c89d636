"""The merged availability of one mapped staff member or resource: what Outlook shows as busy in their mailbox, what
JRNI has booked and blocked, and the hours their JRNI schedule says they work, side by side, so an operator can see
why a time cannot be booked. Standard library only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from calsync.domain.model import FreeBusy, ResourceKind, TimeWindow


class IntervalSource(enum.StrEnum):
    """Where an interval of the merged view comes from."""

    JRNI_BOOKING = "jrni_booking"
    JRNI_BLOCK = "jrni_block"
    OUTLOOK = "outlook"
    WORKING_HOURS = "working_hours"


@dataclass(frozen=True)
class BusyTime:
    """A stretch of time a mailbox's calendar publishes as not free, as Exchange's free/busy gives it.

    ``detailed``: Exchange gave the item's details (it does to the owner, a Reviewer-or-higher delegate or a granted
    application; everyone else sees times and busy types only). ``subject`` is None without details and for a private
    item, whose subject Exchange keeps from everyone but the owner (and calsync never shows, even when given it).
    """

    window: TimeWindow
    busy_type: FreeBusy
    detailed: bool = False
    subject: str | None = None
    private: bool = False
    item_id: str | None = None  # Exchange's id of the item (an occurrence's own), only with details


@dataclass(frozen=True)
class AvailabilityInterval:
    """One interval of the merged view: when, from where, what it is (``label``), and what else is known of it."""

    window: TimeWindow
    source: IntervalSource
    label: str
    detail: str | None = None


@dataclass(frozen=True)
class Availability:
    """The merged view of one mapped staff member or resource over a window, its intervals sorted by start.

    ``zone``: the JRNI company's IANA zone (the schedule's, else a booking's), None when neither says."""

    kind: ResourceKind
    jrni_id: str
    mailbox: str
    zone: str | None
    window: TimeWindow
    intervals: tuple[AvailabilityInterval, ...]
