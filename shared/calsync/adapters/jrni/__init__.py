"""JRNI adapter: the admin REST client, the ``BookingSource`` and ``BookingWriter`` built on it, and webhooks."""

from calsync.adapters.jrni.bookings import JrniBookingSource, booking_from_json
from calsync.adapters.jrni.client import JrniClient
from calsync.adapters.jrni.webhooks import (
    AffectedBooking,
    WebhookFormatError,
    check_webhook_auth,
    parse_webhook,
)
from calsync.adapters.jrni.writer import (
    BlockGoneError,
    BookingLockedError,
    JrniBookingWriter,
    carries_marker,
)
from calsync.domain.markers import block_note, marker_prefix

__all__ = [
    "AffectedBooking",
    "BlockGoneError",
    "BookingLockedError",
    "JrniBookingSource",
    "JrniBookingWriter",
    "JrniClient",
    "WebhookFormatError",
    "block_note",
    "booking_from_json",
    "carries_marker",
    "check_webhook_auth",
    "marker_prefix",
    "parse_webhook",
]
