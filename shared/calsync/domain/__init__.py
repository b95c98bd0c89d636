"""The sync's vocabulary: frozen values that every layer speaks; standard library only."""

from calsync.domain.errors import (
    CalsyncError,
    ConflictError,
    PermanentError,
    RetryableError,
    StaleStateError,
)
from calsync.domain.model import (
    Booking,
    BookingKind,
    BookingStatus,
    EventContent,
    FreeBusy,
    JrniKey,
    Link,
    LinkState,
    Mapping,
    ResourceKind,
    Stamp,
    SyncOptions,
    TimeWindow,
)

__all__ = [
    "Booking",
    "BookingKind",
    "BookingStatus",
    "CalsyncError",
    "ConflictError",
    "EventContent",
    "FreeBusy",
    "JrniKey",
    "Link",
    "LinkState",
    "Mapping",
    "PermanentError",
    "ResourceKind",
    "RetryableError",
    "StaleStateError",
    "Stamp",
    "SyncOptions",
    "TimeWindow",
]
