"""An overall deadline for one piece of work, across every remote call made for it: an admin request must be answered
before API Gateway gives up (29 s), however slowly JRNI or Exchange answers (a body trickling one byte at a time
included). Set with ``within``; adapters ask ``current()`` how long they may still wait. It follows the work into the
calls it starts at once (``calsync.parallel`` runs them in the starting call's context). Standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from calsync.domain import DeadlineExceededError


@dataclass(frozen=True)
class Deadline:
    """The moment (``time.monotonic()``) by which the work must be done, and the allowance it was given."""

    at: float
    seconds: float

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.monotonic()

    def left_for(self, what: str) -> float:
        """Seconds left for ``what`` (an upstream call); DeadlineExceededError naming it once none are."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceededError(
                f"{what} did not finish within the {self.seconds:g} s this request may take",
                delay_seconds=0.0,
            )
        return left


_current: ContextVar[Deadline | None] = ContextVar("calsync_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the work in progress, or None (no overall deadline: each call's own timeouts apply)."""
    return _current.get()


@contextmanager
def within(seconds: float) -> Iterator[Deadline]:
    """Everything inside the block must be done within ``seconds`` (or by an enclosing deadline, if sooner)."""
    mine = Deadline(time.monotonic() + seconds, seconds)
    outer = _current.get()
    chosen = outer if outer is not None and outer.at <= mine.at else mine
    token = _current.set(chosen)
    try:
        yield chosen
    finally:
        _current.reset(token)


def bounded(timeout: float, what: str) -> float:
    """``timeout`` (one call's own limit) cut to what the current deadline leaves; DeadlineExceededError naming
    ``what`` when nothing is left."""
    deadline = _current.get()
    return timeout if deadline is None else min(timeout, deadline.left_for(what))
