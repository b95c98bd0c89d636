"""What a failed connection was, read from the errors requests and urllib3 wrap it in: the connection tests of
Exchange and JRNI tell a host name that does not resolve from a port where nothing listens."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from enum import Enum

# How many errors of a chain are looked at, at the most (urllib3 wraps a failure three or four deep).
_MOST = 16


class ConnectionFailure(Enum):
    UNRESOLVED = "the host name does not resolve"
    REFUSED = "nothing listens on the port"


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, what caused it, and the errors urllib3 wraps in its arguments, nearest first, each once."""
    waiting: list[BaseException] = [exc]
    seen: set[int] = set()
    while waiting and len(seen) < _MOST:
        current = waiting.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        waiting += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                waiting.append(linked)


def connection_failure(exc: BaseException) -> ConnectionFailure | None:
    """Why no connection was made, when the chain of ``exc`` says: the name did not resolve, or it was refused."""
    for cause in causes(exc):
        if isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError":
            return ConnectionFailure.UNRESOLVED
        if isinstance(cause, ConnectionRefusedError):
            return ConnectionFailure.REFUSED
    return None
