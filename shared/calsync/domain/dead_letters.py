"""A message calsync gave up on: which queue it came from, what it was about, why, when, and after how many tries.

Each of the three queues (outbound, inbound, reconcile) has a dead-letter queue shared by every integration; a dead
letter belongs to the integration its message names. Standard library only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# SQS keeps a dead-letter queue's messages this long at most (template.yaml: MessageRetentionPeriod 1209600): a record
# of one is kept as long, and no longer.
DEAD_LETTER_KEPT = timedelta(days=14)


class DeadLetterQueue(enum.StrEnum):
    """The queue a dead letter came from (and goes back to when replayed)."""

    OUTBOUND = "outbound"  # a booking to sync into Outlook
    INBOUND = "inbound"  # a mailbox's Outlook changes to apply to JRNI
    RECONCILE = "reconcile"  # a reconcile run or one mapping's reconcile


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue. ``id`` is its SQS message id there; ``about`` names what it was about
    (``booking``, ``mailbox``, ``step``, ``run``); ``reason`` is why calsync gave up, or, for a message the queue's
    redrive moved after repeated crashes, a sentence saying so."""

    integration_id: str
    id: str
    queue: DeadLetterQueue
    about: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    at: datetime | None = None
    attempts: int = 1


# The start of the reason shown for a message the queue's redrive moved: calsync never got to say why.
REDRIVEN = "failed without a reason calsync could record"
