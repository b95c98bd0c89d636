"""JRNI webhook bodies and sender authentication: pure functions, no I/O.

Two formats arrive (jrni-api.md §2.7): the legacy booking callback, whose body is the booking's *purchase* with
``_embedded.bookings`` and no event name, and the data webhook (``appointment``, ``company``, ``triggerName``).
Either only says *which* bookings changed; the booking itself is read fresh from JRNI afterwards.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from calsync.domain import InvalidInputError, JrniKey

# The data webhook's trigger names; others (JRNI adds events over time) pass through as they come.
TRIGGERS = ("create", "modify", "cancelled", "confirmed")


class WebhookFormatError(ValueError):
    """A webhook body that is neither JRNI format, or is one with a part missing; the message says what."""


class AffectedBooking(NamedTuple):
    """One booking a webhook names, and what JRNI said happened to it (for the logs: the booking is re-read)."""

    company_id: str
    booking_id: str
    trigger: str

    @property
    def key(self) -> JrniKey:
        return JrniKey(self.company_id, self.booking_id)


def parse_webhook(
    body: bytes | str | Mapping[str, Any], *, cancellation_url: bool = False
) -> list[AffectedBooking]:
    """The bookings a JRNI webhook names; ``cancellation_url`` says it came to the legacy cancellation callback."""
    document = _document(body)
    if "appointment" in document or "triggerName" in document:
        return _data_webhook(document)
    if "_embedded" in document:
        return _legacy_callback(document, cancellation_url)
    raise WebhookFormatError(
        "not a JRNI webhook: expected a data webhook (appointment, company, triggerName) "
        "or a booking callback (a purchase with _embedded.bookings)"
    )


def check_webhook_auth(headers: Mapping[str, str | Sequence[str]], secret: Mapping[str, str]) -> bool:
    """Whether ``Authorization`` carries the secret: Basic user/password, or JRNI's "Basic <token>"; fails closed.

    ``headers`` may map a name to its values (API Gateway's ``multiValueHeaders``). A request with more than one
    ``Authorization`` value is refused: API Gateway's ``headers`` keeps only the last, so which one counts would
    depend on how the request was read; a sender that means to authenticate sends one."""
    values: list[str] = []
    for name, value in headers.items():
        if name.lower() == "authorization":
            values.extend([value] if isinstance(value, str) else list(value))
    if len(values) != 1 or not isinstance(values[0], str):
        return False
    authorization = values[0]
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    sent = credentials.strip().encode()
    ok = False
    token = secret.get("token")
    if token:
        # JRNI's "Basic token" option sends the raw token after "Basic" (jrni-api.md §2.7).
        ok |= hmac.compare_digest(sent, token.encode())
    username, password = secret.get("username"), secret.get("password")
    if username and password:
        try:
            decoded = base64.b64decode(sent, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        ok |= hmac.compare_digest(decoded, f"{username}:{password}".encode())
    return ok


# ---------------------------------------------------------------------------------------------------- formats


def _document(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookFormatError(f"the body is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise WebhookFormatError(f"the body is JSON but not an object (it is {type(parsed).__name__})")
    return parsed


def _data_webhook(document: Mapping[str, Any]) -> list[AffectedBooking]:
    appointment = _object(document, "appointment", "data webhook")
    company = _object(document, "company", "data webhook")
    trigger = document.get("triggerName")
    if not isinstance(trigger, str) or not trigger:
        raise WebhookFormatError("data webhook: triggerName is missing or not a string")
    if appointment.get("origin") == "queuer":
        return []  # a walk-in queue entry, not a booking: nothing to show in a calendar
    booking_id = _ident(appointment.get("bookingId"), "data webhook: appointment.bookingId")
    company_id = _ident(company.get("jrniId"), "data webhook: company.jrniId")
    return [AffectedBooking(company_id, booking_id, trigger)]


def _legacy_callback(document: Mapping[str, Any], cancellation_url: bool) -> list[AffectedBooking]:
    embedded = _object(document, "_embedded", "booking callback")
    bookings = embedded.get("bookings")
    if not isinstance(bookings, list):
        raise WebhookFormatError("booking callback: _embedded.bookings is missing or not a list")
    purchase_company = document.get("company_id")
    affected = []
    for index, entry in enumerate(bookings):
        where = f"booking callback: _embedded.bookings[{index}]"
        if not isinstance(entry, dict):
            raise WebhookFormatError(f"{where} is not an object")
        booking_id = _ident(entry.get("id"), f"{where}.id")
        company_id = _ident(entry.get("company_id", purchase_company), f"{where}.company_id")
        # No event name in this format (jrni-api.md §2.7): the URL JRNI used and the booking's state say it.
        if cancellation_url or entry.get("is_cancelled") is True:
            trigger = "cancelled"
        elif entry.get("booking_updated") is False:
            trigger = "create"
        else:
            trigger = "modify"
        affected.append(AffectedBooking(company_id, booking_id, trigger))
    return affected


def _object(document: Mapping[str, Any], name: str, what: str) -> Mapping[str, Any]:
    value = document.get(name)
    if not isinstance(value, dict):
        raise WebhookFormatError(f"{what}: {name} is missing or not an object")
    return value


def _ident(value: object, where: str) -> str:
    # JRNI ids are integers; some payloads carry them as digit strings.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0:
        return value
    raise WebhookFormatError(f"{where} is missing or not a JRNI id (a positive integer): {value!r}")


class JrniWebhooks:
    """``WebhookFormat`` for JRNI: its data webhooks and legacy callbacks, with Basic or bearer credentials."""

    def authentic(self, headers: Mapping[str, str | Sequence[str]], secret: Mapping[str, str]) -> bool:
        return check_webhook_auth(headers, secret)

    def bookings(self, body: bytes) -> list[tuple[JrniKey, str]]:
        try:
            return [(affected.key, affected.trigger) for affected in parse_webhook(body)]
        except WebhookFormatError as exc:
            raise InvalidInputError(str(exc)) from exc
