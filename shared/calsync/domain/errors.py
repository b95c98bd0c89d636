"""The domain's errors. Adapters translate vendor errors into these; nothing above them sees a vendor error."""

from __future__ import annotations


class CalsyncError(Exception):
    """Base of every error calsync raises on purpose."""


class RetryableError(CalsyncError):
    """Worth trying again later (throttling, a timeout, a 5xx). ``delay_seconds`` is the least wait asked for."""

    def __init__(self, message: str, *, delay_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds


class PermanentError(CalsyncError):
    """Will fail the same way every time until someone changes something (bad credentials, unknown mailbox)."""


class ConflictError(CalsyncError):
    """The other side refused because of a clash (JRNI 409, EWS irresolvable conflict)."""


class StaleStateError(RetryableError):
    """Our recorded state changed underneath us (a conditional write lost): re-read and plan again."""
