"""Inbound (Exchange → JRNI) values: Outlook items as sync sees them, and the blocks they become in JRNI."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from calsync.domain.model import FreeBusy, JrniKey, LinkState, Stamp, TimeWindow


@dataclass(frozen=True)
class CalendarEvent:
    """One Outlook item, or one occurrence of a recurring series, as read from the mailbox's change feed."""

    remote_id: str  # the item's id; an occurrence's own id for occurrences
    version: str  # EWS ChangeKey today
    window: TimeWindow
    free_busy: FreeBusy
    subject: str = ""
    is_private: bool = False  # Sensitivity Private or Confidential: the subject never leaves Exchange
    is_all_day: bool = False
    is_cancelled: bool = False
    series_id: str | None = None  # the series an occurrence belongs to
    stamp: Stamp | None = None  # set on items calsync wrote for a JRNI booking
    has_attendees: bool = False
    # When the item last changed (its sync lag is measured from it); not part of what the item is, so not compared.
    modified_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class MailboxChanges:
    """What changed in one mailbox since its last sync, series already expanded into their occurrences."""

    mailbox: str
    upserts: list[CalendarEvent] = field(default_factory=list)
    # Ids of deleted items (a deleted series: its master's id)
    removed: list[str] = field(default_factory=list)
    # Series whose occurrences inside the sync window are all among ``upserts``: any other occurrence we hold a
    # block for has gone (deleted occurrence, or moved out of the window).
    complete_series: list[str] = field(default_factory=list)
    cursor: str | None = None  # where the change feed stands after these changes (EWS SyncState)


@dataclass(frozen=True)
class BlockLink:
    """A JRNI block calsync made for an Outlook item (or occurrence): which, where, and as what."""

    integration_id: str
    mailbox: str
    remote_id: str
    jrni_key: JrniKey | None  # the block's status-3 booking, as JRNI's webhooks name it (None while pending)
    slot_id: str  # how JRNI's admin API moves and removes the block ("" while pending)
    window: TimeWindow
    title: str
    version: str  # the Outlook item's change key when the block was last written
    series_id: str | None = None
    # Recorded as pending before the JRNI create: a crash before the final write is recovered by the block's marker.
    state: LinkState = LinkState.SYNCED
    version_number: int = 0


@dataclass(frozen=True)
class OurItem:
    """An Outlook item calsync wrote for a JRNI booking, with what JRNI says it should be now."""

    jrni_key: JrniKey
    expected_window: TimeWindow  # as calsync would write it now (buffers included)
    expected_free_busy: FreeBusy
    version: str | None  # the change key of our last write (None: unknown)
    pre_time_seconds: int = 0
    post_time_seconds: int = 0
    is_reservation: bool = False
    is_cancelled: bool = False  # cancelled in JRNI (the item is on its way out)


@dataclass(frozen=True)
class TaskHeartbeat:
    """A streaming task's last sign of life, and how many mailboxes it was watching then (0: it stopped)."""

    task_id: str
    at: datetime
    mailboxes: int


class WatchMode(enum.StrEnum):
    """How a mailbox's Outlook changes reach calsync."""

    STREAMING = "streaming"  # a subscription on a streaming connection
    TIMED = "timed"  # synced on a timer (beyond the connections Exchange allows)
    ERROR = "error"  # cannot be subscribed (e.g. access not granted): the detail says what to change


@dataclass(frozen=True)
class MailboxStreamState:
    """How one mailbox is watched for changes: a streaming subscription, a timed sync (when over capacity), or not at
    all because of an error."""

    integration_id: str
    mailbox: str
    mode: WatchMode
    detail: str
    at: datetime
