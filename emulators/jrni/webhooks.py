"""Webhooks JRNI sends on booking changes: the legacy purchase callback and the data webhook.

Delivery is asynchronous (a queue drained by a background task), at least once: a non-2xx answer or a timeout is
retried with exponential back-off. JRNI documents no retry policy (jrni-gaps.md §5); the emulator's is in README.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from . import hal
from .faults import Faults
from .settings import JrniSettings
from .state import BadRequestError, Booking, State, local_iso, utc_iso

log = logging.getLogger(__name__)

TRIGGERS = ("create", "modify", "cancelled", "confirmed")
FORMATS = ("legacy", "data")
_ENDPOINT_KEYS = {"url", "format", "auth", "cancellation_url"}


@dataclass
class Endpoint:
    """A configured receiver."""

    url: str
    format: str
    auth: dict[str, Any] | None = None
    cancellation_url: str | None = None  # legacy only: JRNI's separate "Cancellation callback" URL

    def authorization(self) -> str | None:
        """The Authorization header: Basic user:password, or the token as-is after "Basic" (DEVJ data webhooks)."""
        if not self.auth:
            return None
        if "basic" in self.auth:
            basic = self.auth["basic"]
            raw = f"{basic['username']}:{basic['password']}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        return "Basic " + str(self.auth["token"])

    def as_json(self) -> dict[str, Any]:
        """The endpoint as the control plane lists it."""
        return {
            "url": self.url,
            "format": self.format,
            "auth": self.auth,
            "cancellation_url": self.cancellation_url,
        }


def parse_endpoint(body: Any) -> Endpoint:
    """An endpoint from its control-plane JSON; 400 for anything malformed."""
    if not isinstance(body, dict):
        raise BadRequestError("a webhook must be a JSON object")
    extra = set(body) - _ENDPOINT_KEYS
    if extra:
        raise BadRequestError(f"unknown webhook key(s): {', '.join(sorted(extra))}")
    url = body.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise BadRequestError("url must be an http(s) URL")
    fmt = body.get("format")
    if fmt not in FORMATS:
        raise BadRequestError("format must be 'legacy' or 'data'")
    auth = body.get("auth")
    if auth is not None:
        ok = isinstance(auth, dict) and len(auth) == 1
        if ok and "basic" in auth:
            basic = auth["basic"]
            ok = isinstance(basic, dict) and set(basic) == {"username", "password"}
            ok = ok and all(isinstance(v, str) for v in basic.values())
        elif ok and "token" in auth:
            ok = isinstance(auth["token"], str) and bool(auth["token"])
        else:
            ok = False
        if not ok:
            raise BadRequestError('auth must be {"basic": {"username", "password"}} or {"token": "..."}')
    cancellation_url = body.get("cancellation_url")
    if cancellation_url is not None and (fmt != "legacy" or not isinstance(cancellation_url, str)):
        raise BadRequestError("cancellation_url is a string, for the legacy format only")
    return Endpoint(url, fmt, auth, cancellation_url)


# ---------------------------------------------------------------------------------------------------- payloads


def data_payload(state: State, api: str, booking: Booking, trigger: str, trigger_time: str) -> dict[str, Any]:
    """The data webhook body (dev.jrni.com /reference/data-webook-payload), plus notification's extCalendarId."""
    company = state.companies[booking.company_id]
    tz = company.tz
    service = state.services.get(booking.service_id or 0)
    person = state.people.get(booking.person_id or 0)
    resource = state.resources.get(booking.resource_id or 0)
    client = state.clients.get(booking.client_id or 0)
    status = "Cancelled" if booking.is_cancelled else hal.booking_type(booking)
    long_id = hal.obfuscated_id("booking", booking.id)
    return {
        "appointment": {
            "origin": "booking",
            "bookingId": booking.id,
            "longId": long_id,
            "customerStartTime": local_iso(booking.start, tz),
            "customerEndTime": local_iso(booking.end, tz),
            "companyStartTime": local_iso(booking.start, tz),
            "companyEndTime": local_iso(booking.end, tz),
            "duration": booking.duration,
            "bookedBy": booking.booked_by,
            "channel": booking.channel,
            "status": status,
            "checkInStatus": booking.current_multi_status,
            "checkInStatusList": [],
            "joinVideoURL": None,
            "customerModifyURL": None,
            "adminModifyURL": f"{api}/admin/{booking.company_id}/bookings/{booking.id}",
            "customBookingFields": [],
            "extCalendarId": booking.external_cal_id,
        },
        "company": {
            "name": company.name,
            "address": None,
            "timezone": company.timezone,
            "jrniId": company.id,
            "externalId": None,
        },
        "service": None
        if service is None
        else {
            "name": service.name,
            "category": None,
            "categoryId": None,
            "method": "In person",
            "methodId": None,
            "jrniId": service.id,
            "externalId": None,
        },
        "staff": None
        if person is None
        else {
            "name": person.name,
            "email": person.email,
            "jrniId": person.id,
            "externalId": None,
            "phoneNumber": None,
        },
        "resource": None
        if resource is None
        else {"name": resource.name, "address": None, "jrniId": resource.id, "externalId": None},
        "customer": None
        if client is None
        else {
            "firstName": client.first_name,
            "lastName": client.last_name,
            "email": client.email,
            "mobile": client.mobile,
            "homePhone": client.phone,
        },
        "additionalAttendeeCustomers": [],
        "additionalAttendeeStaff": [],
        "triggerName": trigger,
        "triggerTime": trigger_time,
    }


def legacy_payload(state: State, api: str, booking: Booking) -> dict[str, Any]:
    """The legacy callback body: the booking's purchase with ``_embedded.bookings`` (BBDOC webhook.md)."""
    company = state.companies[booking.company_id]
    client = state.clients.get(booking.client_id or 0)
    entry = hal.booking_json(state, api, booking)
    entry.update(
        {
            "booking_type": "Booking",
            "first_name": client.first_name if client else None,
            "last_name": client.last_name if client else None,
            "email": client.email if client else None,
            "address": None,
        }
    )
    client_json = hal.client_json(api, client, company)
    purchase_url = f"{api}/admin/{booking.company_id}/purchases/{booking.purchase_id}"
    return {
        "id": booking.purchase_id,
        "long_id": hal.obfuscated_id("purchase", booking.purchase_id),
        "client_name": client.name if client else None,
        "company_id": booking.company_id,
        "created_at": utc_iso(booking.created_at),
        "total_price": booking.price,
        "price": booking.price,
        "paid": 0,
        "deposit": 0,
        "_embedded": {"client": client_json, "member": client_json, "bookings": [entry]},
        "_links": {
            "self": hal.link(purchase_url),
            "ical": hal.link(f"{purchase_url}/ical"),
            "gcal": hal.link(f"{purchase_url}/gcal"),
            "company": hal.link(f"{api}/admin/{booking.company_id}/company"),
        },
    }


# ---------------------------------------------------------------------------------------------------- delivery


@dataclass
class Delivery:
    url: str
    headers: dict[str, str]
    body: bytes
    trigger: str
    booking_id: int
    attempt: int = 0


@dataclass
class WebhookStats:
    enqueued: int = 0
    attempts: int = 0
    delivered: int = 0
    retries: int = 0
    failed: int = 0  # gave up after the last attempt
    recent: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Counters plus the last deliveries."""
        return {
            "enqueued": self.enqueued,
            "attempts": self.attempts,
            "delivered": self.delivered,
            "retries": self.retries,
            "failed": self.failed,
            "recent": self.recent[-100:],
        }


class WebhookHub:
    """Turns booking changes into deliveries and sends them from a background task."""

    def __init__(self, settings: JrniSettings, faults: Faults) -> None:
        self.settings = settings
        self.faults = faults
        self.endpoints: list[Endpoint] = []
        self.stats = WebhookStats()
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._timers: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Start the delivery task (on the app's loop)."""
        self._session = aiohttp.ClientSession()
        self._worker = asyncio.create_task(self._run(), name="jrni-webhooks")

    async def stop(self) -> None:
        """Stop delivering; queued deliveries are dropped."""
        tasks = [t for t in [self._worker, *self._timers] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    def reset(self) -> None:
        """Forget endpoints, queued deliveries and counters."""
        self.endpoints.clear()
        self.stats = WebhookStats()
        while not self._queue.empty():
            self._queue.get_nowait()
        for task in self._timers:
            task.cancel()

    def emit(self, state: State, api: str, booking: Booking, triggers: list[str]) -> None:
        """Queue one delivery per endpoint and trigger, built now so later changes do not leak into it."""
        for trigger in triggers:
            trigger_time = utc_iso(state.clock.now()) or ""
            for endpoint in self.endpoints:
                if endpoint.format == "data":
                    payload = data_payload(state, api, booking, trigger, trigger_time)
                    url = endpoint.url
                else:
                    payload = legacy_payload(state, api, booking)
                    url = (
                        endpoint.cancellation_url
                        if trigger == "cancelled" and endpoint.cancellation_url
                        else endpoint.url
                    )
                headers = {"Content-Type": "application/json", "User-Agent": "JRNI-emulator"}
                authorization = endpoint.authorization()
                if authorization:
                    headers["Authorization"] = authorization
                body = json.dumps(payload).encode()
                copies = 2 if self.faults.take("duplicate_webhooks") else 1
                for _ in range(copies):
                    self.stats.enqueued += 1
                    self._queue.put_nowait(Delivery(url, headers, body, trigger, booking.id))

    async def _run(self) -> None:
        while True:
            delivery = await self._queue.get()
            if self.faults.take("reorder_webhooks"):
                # Hold this one until the next arrives, then send the later one first.
                try:
                    later = await asyncio.wait_for(self._queue.get(), self.settings.reorder_hold_seconds)
                except TimeoutError:
                    later = None
                if later is not None:
                    await self._attempt(later)
            await self._attempt(delivery)

    async def _attempt(self, delivery: Delivery) -> None:
        assert self._session is not None
        delivery.attempt += 1
        self.stats.attempts += 1
        status: int | str
        try:
            timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_seconds)
            async with self._session.post(
                delivery.url, data=delivery.body, headers=delivery.headers, timeout=timeout
            ) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            status = type(exc).__name__
        ok = isinstance(status, int) and 200 <= status < 300
        self.stats.recent.append(
            {
                "url": delivery.url,
                "trigger": delivery.trigger,
                "booking_id": delivery.booking_id,
                "attempt": delivery.attempt,
                "result": status,
            }
        )
        del self.stats.recent[:-1000]
        if ok:
            self.stats.delivered += 1
            return
        if delivery.attempt >= self.settings.webhook_max_attempts:
            self.stats.failed += 1
            log.warning("webhook to %s given up after %d attempts", delivery.url, delivery.attempt)
            return
        self.stats.retries += 1
        delay = min(
            self.settings.webhook_backoff_seconds * 2 ** (delivery.attempt - 1),
            self.settings.webhook_backoff_max_seconds,
        )
        timer = asyncio.create_task(self._requeue_later(delivery, delay))
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    async def _requeue_later(self, delivery: Delivery, delay: float) -> None:
        await asyncio.sleep(delay)
        self._queue.put_nowait(delivery)
