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


class ResyncRequiredError(CalsyncError):
    """A change feed's stored cursor is no longer valid (expired, or from another mailbox): read from the start."""


class RequestError(CalsyncError):
    """Bad input from a caller: answered with a 4xx, and nothing is applied."""

    status = 400


class InvalidInputError(RequestError):
    """Malformed, or not in a format we accept."""

    status = 400


class AuthenticationError(RequestError):
    """The caller did not prove who it is."""

    status = 401


class NotFoundError(RequestError):
    status = 404


class TooLargeError(RequestError):
    status = 413
