"""What the streaming runner needs from the outside world, as Protocols, and the errors a stream ends with.

The EWS adapter (``calsync.adapters.ews.streaming``) translates exchangelib's errors into these; the runner never sees a vendor
error. A Microsoft Graph change-notification source could implement the same ports later.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from calsync.domain import RetryableError
from calsync.domain.inbound import WatchMode
from calsync.domain.messages import InboundMessage, NotifiedItem
from calsync.streaming.planner import MailboxRef


@dataclass(frozen=True)
class StreamNotification:
    """One notification off a stream: its subscription, and what it says changed.

    ``items`` are the items created or modified with their change keys; ``complete`` is False when the notification
    also said something else (a deletion, a move, a folder-level event, an event without a change key), or nothing
    at all, so that only reading the mailbox's changes can tell what happened."""

    subscription_id: str
    items: tuple[NotifiedItem, ...] = ()
    complete: bool = False


class InboundNotifier(Protocol):
    def send(self, wakes: list[InboundMessage]) -> None:
        """Enqueue one message per wake (message group = the mailbox); RetryableError when the queue refuses."""
        ...


class StreamingStateStore(Protocol):
    """Where operators see the task is alive and how each mailbox is watched (DynamoDB in AWS)."""

    def heartbeat(self, task_id: str, at: datetime, mailboxes: int) -> None:
        """The task is alive at ``at`` and owns ``mailboxes`` mailboxes (0 when it stopped)."""
        ...

    def record_mailbox(
        self, integration_id: str, mailbox: str, mode: WatchMode, detail: str, at: datetime
    ) -> None:
        """How one mailbox is watched now (``WatchMode``), and why."""
        ...


class MailboxDirectory(Protocol):
    def mailboxes(self) -> list[MailboxRef]:
        """Every mapped mailbox of every integration, read fresh."""
        ...


@dataclass(frozen=True)
class Subscribed:
    subscription_id: str
    cookie: str | None  # the group's affinity cookie (X-BackEndOverrideCookie) as Exchange set or kept it


class EventStream(Protocol):
    def __iter__(self) -> Iterator[StreamNotification]:
        """Each notification as it arrives; ends when Exchange closes the connection."""
        ...

    def abort(self) -> None:
        """Hang up now, from any thread (the iteration then raises ``StreamDroppedError``)."""
        ...


class StreamingExchange(Protocol):
    """Streaming subscriptions on the calendars of one integration's mailboxes."""

    def subscribe(self, mailbox: str, *, anchor: str, cookie: str | None) -> Subscribed:
        """Subscribe ``mailbox``'s calendar, routed with the group's anchor mailbox and affinity cookie."""
        ...

    def open(
        self, subscription_ids: list[str], *, anchor: str, cookie: str | None, minutes: int
    ) -> EventStream:
        """One streaming connection carrying ``subscription_ids`` for at most ``minutes`` (1 to 30)."""
        ...

    def unsubscribe(self, mailbox: str, subscription_id: str, *, anchor: str, cookie: str | None) -> None:
        """End a subscription; one already gone counts as ended."""
        ...


class StreamInterruptedError(RetryableError):
    """A stream ended without Exchange closing it normally."""


class SubscriptionsLostError(StreamInterruptedError):
    """Subscriptions expired or are unknown to Exchange: recreate them, then resync (events may be lost)."""


class MissedEventsError(StreamInterruptedError):
    """Exchange dropped notifications (``ErrorMissedNotificationEvents``): recreate the subscriptions, then resync."""


class StreamDroppedError(StreamInterruptedError):
    """The connection broke without a ``Closed`` status: notifications in flight may be lost; reconnect, resync."""
