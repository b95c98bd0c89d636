"""Webhooks JRNI sends on booking changes: the legacy purchase callback and the data webhook.

Delivery is asynchronous (one queue and background task per receiver, so a slow receiver holds up only itself), at
least once: a non-2xx answer (a redirect too), a connection error or a timeout is retried with exponential
back-off. JRNI documents no retry policy (jrni-gaps.md §5); the emulator's is in README.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from . import hal
from .faults import Faults
from .settings import JrniSettings
from .state import BadRequestError, Booking, Change, State, local_iso, utc_iso

log = logging.getLogger(__name__)

TRIGGERS = ("create", "modify", "cancelled", "confirmed")
FORMATS = ("legacy", "data")
_ENDPOINT_KEYS = {"url", "format", "auth", "cancellation_url"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # would make an invalid (or a smuggled) header


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
    url = _parse_url(body.get("url"), "url")
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
            secrets = list(basic.values()) if ok else []
            if ok and ":" in basic["username"]:
                raise BadRequestError("auth.basic.username must not contain ':' (RFC 7617)")
        elif ok and "token" in auth:
            ok = isinstance(auth["token"], str) and bool(auth["token"])
            secrets = [auth["token"]] if ok else []
        else:
            ok = False
        if not ok:
            raise BadRequestError('auth must be {"basic": {"username", "password"}} or {"token": "..."}')
        if any(_CONTROL.search(value) for value in secrets):
            raise BadRequestError("auth values must not contain control characters (CR, LF, …)")
    cancellation_url = body.get("cancellation_url")
    if cancellation_url is not None:
        if fmt != "legacy" or not isinstance(cancellation_url, str):
            raise BadRequestError("cancellation_url is a string, for the legacy format only")
        cancellation_url = _parse_url(cancellation_url, "cancellation_url")
    return Endpoint(url, fmt, auth, cancellation_url)


def _parse_url(value: Any, name: str) -> str:
    """An absolute http(s) URL with a host, and nothing a request line or header could choke on."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise BadRequestError(f"{name} must be an http(s) URL")
    if _CONTROL.search(value) or " " in value:
        raise BadRequestError(f"{name} must not contain spaces or control characters")
    try:
        host = URL(value).host
    except (ValueError, TypeError):
        host = None
    if not host:
        raise BadRequestError(f"{name} is not a valid http(s) URL: {value!r}")
    return value


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
            "customBookingFields": [
                {"ref": state.questions[a.question_id].reference, "value": a.value} for a in booking.answers
            ],
            "extCalendarId": booking.external_cal_id,
        },
        "queuing": None,  # the queuing section (jrni-gaps §5); null for an appointment
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
            "customStaffFields": [],
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
    # The entry keeps the booking JSON's booking_type (Booking / Reservation / Blocked).
    entry = hal.booking_json(state, api, booking)
    entry.update(
        {
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
    endpoint: Endpoint  # whose queue it goes (back) to
    generation: int  # the hub's generation when it was queued; a reset makes it stale
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


@dataclass
class _Lane:
    """One receiver's queue and the task draining it, in order."""

    endpoint: Endpoint  # kept alive with its lane, so its id() is not reused while the lane exists
    queue: asyncio.Queue[Delivery]
    task: asyncio.Task[None] | None = None


class WebhookHub:
    """Turns booking changes into deliveries and sends them: one queue and background task per receiver.

    ``generation`` goes up on every reset; a delivery queued before it (in flight, waiting for a retry, or held by
    the reorder fault) is dropped instead of being sent to the old receiver or counted in the fresh stats.
    """

    def __init__(self, settings: JrniSettings, faults: Faults) -> None:
        self.settings = settings
        self.faults = faults
        self.endpoints: list[Endpoint] = []
        self.stats = WebhookStats()
        self.generation = 0
        self._lanes: dict[int, _Lane] = {}  # by id() of the Endpoint
        self._timers: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP session (on the app's loop); receivers' tasks start with their first delivery."""
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Stop delivering; queued deliveries are dropped."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None] + list(self._timers)
        self._lanes.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    def reset(self) -> None:
        """Forget endpoints, queued and in-flight deliveries, retries and counters."""
        self.generation += 1
        self.endpoints.clear()
        self.stats = WebhookStats()
        for lane in self._lanes.values():
            if lane.task is not None:
                lane.task.cancel()
        self._lanes.clear()
        for task in self._timers:
            task.cancel()

    def emit(self, state: State, api: str, changes: list[Change]) -> None:
        """Queue one delivery per endpoint and change; each payload is built from the booking as it was right
        after that change, so later changes (the confirmation after a move) do not leak into it."""
        for trigger, booking in changes:
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
                lane = self._lane(endpoint)
                for _ in range(copies):
                    self.stats.enqueued += 1
                    lane.queue.put_nowait(
                        Delivery(url, headers, body, trigger, booking.id, endpoint, self.generation)
                    )

    def _lane(self, endpoint: Endpoint) -> _Lane:
        lane = self._lanes.get(id(endpoint))
        if lane is None:
            lane = self._lanes[id(endpoint)] = _Lane(endpoint, asyncio.Queue())
            lane.task = asyncio.create_task(self._run(lane), name=f"jrni-webhooks {endpoint.url}")
        return lane

    async def _run(self, lane: _Lane) -> None:
        """Drain one receiver's queue in order, forever; no delivery can end this task (only a reset or stop)."""
        while True:
            delivery = await lane.queue.get()
            if self.faults.take("reorder_webhooks"):
                # Hold this one until the next arrives, then send the later one first.
                try:
                    later = await asyncio.wait_for(lane.queue.get(), self.settings.reorder_hold_seconds)
                except TimeoutError:
                    later = None
                if later is not None:
                    await self._attempt_safely(later)
            await self._attempt_safely(delivery)

    async def _attempt_safely(self, delivery: Delivery) -> None:
        try:
            await self._attempt(delivery)
        except Exception:  # a bug here must not stop every later delivery
            log.exception("webhook delivery to %s failed unexpectedly", delivery.url)

    async def _attempt(self, delivery: Delivery) -> None:
        if delivery.generation != self.generation or self._session is None:
            return  # queued before a reset
        delivery.attempt += 1
        self.stats.attempts += 1
        status: int | str
        try:
            timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_seconds)
            async with self._session.post(
                delivery.url,
                data=delivery.body,
                headers=delivery.headers,
                timeout=timeout,
                allow_redirects=False,  # a 3xx is a failed attempt, as any other non-2xx
            ) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            status = type(exc).__name__
        except Exception as exc:  # e.g. a header aiohttp refuses: a failed attempt, not a dead sender
            log.warning("webhook to %s could not be sent: %r", delivery.url, exc)
            status = type(exc).__name__
        if delivery.generation != self.generation:
            return  # reset while it was in flight: forget it, count nothing in the new stats
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
        lane = self._lanes.get(id(delivery.endpoint))
        if delivery.generation == self.generation and lane is not None:
            lane.queue.put_nowait(delivery)
