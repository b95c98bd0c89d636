"""What the streaming runner needs from the outside world, as Protocols, and the errors a stream ends with.

The EWS adapter (``streaming/ews.py``) translates exchangelib's errors into these; the runner never sees a vendor
error. A Microsoft Graph change-notification source could implement the same ports later.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from calsync.domain import RetryableError
from calsync.streaming.planner import MailboxRef


class WakeReason(enum.StrEnum):
    """Why the inbound function is asked to sync a mailbox now (for its logs; it always reads since its cursor)."""

    NOTIFICATION = "notification"  # a streaming notification
    START = "start"  # this task (re)started: anything may have happened while nobody listened
    SUBSCRIBED = "subscribed"  # a new mapping, just subscribed
    RESUBSCRIBED = "resubscribed"  # the subscription expired or was not found, and was recreated
    MISSED_EVENTS = "missed_events"  # Exchange said it lost notifications
    DROPPED = "dropped"  # the connection broke without Exchange closing it: notifications may be lost
    REOPENED = "reopened"  # we reopened the connection to add mailboxes to it
    TIMER = "timer"  # timed sync: no streaming connection left for this mailbox


# Notified items carried in one inbound message at most; a wake with more says "sync" without naming them.
MAX_NOTIFIED_ITEMS = 50


@dataclass(frozen=True)
class NotifiedItem:
    """An item a notification says was created or modified, at the version (EWS change key) it then had."""

    item_id: str
    change_key: str


@dataclass(frozen=True)
class StreamNotification:
    """One notification off a stream: its subscription, and what it says changed.

    ``items`` are the items created or modified with their change keys; ``complete`` is False when the notification
    also said something else (a deletion, a move, a folder-level event, an event without a change key), or nothing
    at all, so that only reading the mailbox's changes can tell what happened."""

    subscription_id: str
    items: tuple[NotifiedItem, ...] = ()
    complete: bool = False


@dataclass(frozen=True)
class InboundWake:
    """One inbound queue message: sync this mailbox now.

    ``notified``: when every change behind the wake was an item created or modified (a notification), those items;
    the inbound function may then skip reading the mailbox when they are all its own writes. None (a resync, a timer,
    anything else, or more than ``MAX_NOTIFIED_ITEMS``): the mailbox must be read."""

    integration_id: str
    mailbox: str
    reason: WakeReason
    notified: tuple[NotifiedItem, ...] | None = None

    @property
    def ref(self) -> MailboxRef:
        return MailboxRef(self.integration_id, self.mailbox)


class MailboxMode(enum.StrEnum):
    STREAMING = "streaming"
    TIMED = "timed"
    ERROR = "error"  # cannot be subscribed (e.g. access not granted): the detail says what to change


class InboundNotifier(Protocol):
    def send(self, wakes: list[InboundWake]) -> None:
        """Enqueue one message per wake (message group = the mailbox); RetryableError when the queue refuses."""
        ...


class StreamingStateStore(Protocol):
    """Where operators see the task is alive and how each mailbox is watched (DynamoDB in AWS)."""

    def heartbeat(self, task_id: str, at: datetime, mailboxes: int) -> None:
        """The task is alive at ``at`` and owns ``mailboxes`` mailboxes (0 when it stopped)."""
        ...

    def record_mailbox(self, integration_id: str, mailbox: str, mode: str, detail: str, at: datetime) -> None:
        """How one mailbox is watched now (``MailboxMode``), and why."""
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
