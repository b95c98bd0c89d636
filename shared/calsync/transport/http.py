"""How a caller's bad input is answered over HTTP: the one place where request errors become status codes."""

from __future__ import annotations

from calsync.domain import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    RequestError,
    TooLargeError,
)

_STATUS: tuple[tuple[type[RequestError], int], ...] = (
    (AuthenticationError, 401),
    (NotFoundError, 404),
    (TooLargeError, 413),
    (PreconditionFailedError, 412),
    (InvalidInputError, 400),
)


def status_of(error: RequestError) -> int:
    """The HTTP status that answers ``error`` (400 for any other bad request)."""
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 400)
