"""What the service needs from the outside world, as Protocols; adapters implement them, tests use fakes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from calsync.domain import Booking, EventContent, JrniKey, Link, Stamp


@dataclass(frozen=True)
class RemoteRef:
    """A calendar item as the provider names it: its id and its current version token."""

    remote_id: str
    version: str


class CalendarProvider(Protocol):
    """Exchange today (EWS), Microsoft Graph later: nothing above the adapters may assume which."""

    name: str

    def create_event(self, mailbox: str, content: EventContent) -> RemoteRef:
        """Write a new item carrying ``content.stamp``; one remote request."""
        ...

    def update_event(self, mailbox: str, remote_id: str, content: EventContent) -> RemoteRef | None:
        """Bring the item to ``content``; None when it no longer exists."""
        ...

    def delete_event(self, mailbox: str, remote_id: str) -> None:
        """Remove the item; an item already gone counts as removed."""
        ...

    def find_stamped(self, mailbox: str, stamp: Stamp) -> list[RemoteRef]:
        """Our items carrying ``stamp`` (normally none or one)."""
        ...


class LinkStore(Protocol):
    """Links between JRNI objects and calendar items, written with optimistic locking."""

    def links_for(self, integration_id: str, jrni_key: JrniKey) -> list[Link]:
        """Every mailbox's link for one JRNI object."""
        ...

    def save(self, link: Link) -> Link:
        """Store ``link`` if nobody changed it since it was read (``version_number``); StaleStateError otherwise."""
        ...

    def delete(self, link: Link) -> None:
        """Remove ``link`` (conditionally, like ``save``)."""
        ...


class BookingSource(Protocol):
    """JRNI, read fresh: a webhook only says *which* booking to look at."""

    def get_booking(self, company_id: str, booking_id: str) -> Booking | None:
        """The booking as JRNI has it now; None when JRNI no longer knows it."""
        ...
