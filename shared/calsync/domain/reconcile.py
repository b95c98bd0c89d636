"""Reconciliation's values: what one run repaired, and how far it has got."""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import datetime


@dataclass(frozen=True)
class Repairs:
    """What a reconcile changed because a signal had been missed: Outlook items created, updated (or put back) and
    removed, and items of bookings still to come rewritten with the integration's new templates (rerendered); JRNI
    blocks made, moved and released, and JRNI bookings moved, cancelled or confirmed from Outlook."""

    created: int = 0
    updated: int = 0
    rerendered: int = 0
    removed: int = 0
    blocked: int = 0
    moved: int = 0
    released: int = 0
    bookings_changed: int = 0
    # Writes that brought the time outside working hours in line with the JRNI schedule (series, their exceptions,
    # single items): a schedule change or an item deleted in Outlook.
    schedule: int = 0

    def __add__(self, other: Repairs) -> Repairs:
        return Repairs(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class RunState(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"  # the run could not start (JRNI refused us, the integration is gone): ``error`` says why


@dataclass(frozen=True)
class ReconcileRun:
    """One reconcile of one integration: every mapping, in both directions."""

    integration_id: str
    run_id: str
    deep: bool
    started_at: datetime
    mappings_total: int | None = None  # None until the run knows its mappings
    mappings_done: int = 0
    repaired: Repairs = Repairs()
    bookings_queued: int = 0  # bookings JRNI changed since the last run, queued for the outbound function
    error: str = ""

    @property
    def state(self) -> RunState:
        if self.error:
            return RunState.ERROR
        if self.mappings_total is not None and self.mappings_done >= self.mappings_total:
            return RunState.DONE
        return RunState.RUNNING


@dataclass(frozen=True)
class MappingReconcile:
    """What the operator sees of one mapping's reconciles: when the last one ended and what it repaired, and the
    progress of a backfill (a deep reconcile of a new mapping) while it runs."""

    integration_id: str
    mailbox: str
    last_reconciled_at: datetime | None = None
    repaired: Repairs = Repairs()
    backfill_total: int | None = None  # items a running backfill writes; None: none running
    backfill_done: int = 0
