"""JRNI adapter: the admin REST client, the ``BookingSource`` built on it, and webhook parsing and authentication."""

from calsync.adapters.jrni.bookings import JrniBookingSource, booking_from_json
from calsync.adapters.jrni.client import JrniClient
from calsync.adapters.jrni.webhooks import (
    AffectedBooking,
    WebhookFormatError,
    check_webhook_auth,
    parse_webhook,
)

__all__ = [
    "AffectedBooking",
    "JrniBookingSource",
    "JrniClient",
    "WebhookFormatError",
    "booking_from_json",
    "check_webhook_auth",
    "parse_webhook",
]
