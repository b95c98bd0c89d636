"""What travels on calsync's queues: one vocabulary for every message, whoever sends it and whoever reads it.

- ``OutboundMessage`` (the outbound queue): sync this booking now. Sent by the webhook function, read by the outbound
  function; a revert sends none (it syncs the booking in place).
- ``InboundMessage`` (the inbound queue): sync this mailbox now. Sent by the streaming task, read by the inbound
  function.
- ``ReconcileMessage`` (the reconcile queue): the schedule's tick, one integration's run, or one mapping to
  reconcile. Sent by the schedule, the admin API and the reconcile function itself, read by the reconcile function.

Neither carries the state it is about: the booking and the mailbox are always read fresh, so a late, repeated or
reordered message is harmless. Each queue has one codec (``calsync.adapters.aws.queues``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from calsync.domain.model import JrniKey


@dataclass(frozen=True)
class OutboundMessage:
    """One booking to sync outbound. Carries no booking state: the handler reads the booking fresh from JRNI."""

    integration_id: str
    jrni_key: JrniKey
    trigger: str  # what JRNI said happened (create, modify, cancelled, confirmed...), for the logs only


class WakeReason(enum.StrEnum):
    """Why a mailbox is to be synced now (for the logs; the mailbox is always read since its cursor)."""

    NOTIFICATION = "notification"  # a streaming notification
    START = "start"  # the streaming task (re)started: anything may have happened while nobody listened
    SUBSCRIBED = "subscribed"  # a new mapping, just subscribed
    RESUBSCRIBED = "resubscribed"  # the subscription expired or was not found, and was recreated
    MISSED_EVENTS = "missed_events"  # Exchange said it lost notifications
    DROPPED = "dropped"  # the connection broke without Exchange closing it: notifications may be lost
    REOPENED = "reopened"  # the connection was reopened to add mailboxes to it
    TIMER = "timer"  # timed sync: no streaming connection left for this mailbox, or a retry
    RECONCILE = "reconcile"  # a scheduled or requested reconcile of the mapping


# Notified items carried in one inbound message at most; a wake with more says "sync" without naming them.
MAX_NOTIFIED_ITEMS = 50


@dataclass(frozen=True)
class NotifiedItem:
    """An item a notification says was created or modified, at the version (EWS change key) it then had."""

    item_id: str
    change_key: str


@dataclass(frozen=True)
class InboundMessage:
    """One mailbox to sync inbound.

    ``notified``: when every change behind the message was an item created or modified (a notification), those
    items; the inbound function may then skip reading the mailbox when they are all its own writes. None (a resync,
    a timer, anything else, or more than ``MAX_NOTIFIED_ITEMS``): the mailbox must be read."""

    integration_id: str
    mailbox: str
    reason: WakeReason
    notified: tuple[NotifiedItem, ...] | None = None


class ReconcileStep(enum.StrEnum):
    """What a reconcile message asks for."""

    SCHEDULE = "schedule"  # the timer: a run for every integration
    RUN = "run"  # one integration: what JRNI changed since its cursor, then one message per mapping
    MAPPING = "mapping"  # one mapping, both directions


@dataclass(frozen=True)
class ReconcileMessage:
    """A step of reconciliation. ``deep``: the whole sync window, not only what changed since the cursors.
    ``force``: apply removals the mass-delete guard would hold back (an operator's resync)."""

    step: ReconcileStep
    deep: bool = False
    integration_id: str = ""
    run_id: str = ""
    mailbox: str = ""
    force: bool = False
