"""The control plane under ``/_emulator/`` (loopback only): seed, reset, webhooks, faults, state, stats, and
changes made "as a JRNI user would" in JRNI's own screens, which fire webhooks like any other change."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from aiohttp import web

from . import hal
from .api import emulator, read_json
from .context import api_base
from .faults import parse_fault
from .state import (
    MAX_YEAR,
    BadRequestError,
    Booking,
    NotFoundError,
    State,
    parse_bool,
    parse_int,
    parse_rules,
)
from .webhooks import parse_endpoint

STUDIO_USER = "JRNI user"  # who a control-plane change is recorded as (booked_by, cancelled_by, who_updated)
MAX_ADVANCE_SECONDS = 10 * 366 * 24 * 3600  # one clock step: at most ten years


async def reset(request: web.Request) -> web.Response:
    """POST /_emulator/reset: forget all data, tokens, webhooks, faults and counters."""
    emu = emulator(request)
    emu.state.reset()
    emu.hub.reset()
    emu.faults.clear()
    emu.requests.clear()
    emu.state.clock.offset = timedelta()
    return web.json_response({"reset": True})


async def seed(request: web.Request) -> web.Response:
    """POST /_emulator/seed: the same JSON as ``--seed FILE``; unknown keys are a 400."""
    emu = emulator(request)
    emu.state.seed(await read_json(request))
    return web.json_response({"seeded": True}, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    """GET /_emulator/webhooks."""
    return web.json_response({"webhooks": [e.as_json() for e in emulator(request).hub.endpoints]})


async def add_webhook(request: web.Request) -> web.Response:
    """POST /_emulator/webhooks {url, format, auth?, cancellation_url?}: one more receiver."""
    emu = emulator(request)
    endpoint = parse_endpoint(await read_json(request))
    emu.hub.endpoints.append(endpoint)
    return web.json_response(endpoint.as_json(), status=201)


async def clear_webhooks(request: web.Request) -> web.Response:
    """DELETE /_emulator/webhooks: no more receivers."""
    emulator(request).hub.endpoints.clear()
    return web.json_response({"webhooks": []})


async def list_faults(request: web.Request) -> web.Response:
    """GET /_emulator/faults."""
    return web.json_response({"faults": [f.as_json() for f in emulator(request).faults.active]})


async def add_fault(request: web.Request) -> web.Response:
    """POST /_emulator/faults: arm a fault; ``token_expiry`` strikes at once and is not kept."""
    emu = emulator(request)
    fault = parse_fault(await read_json(request))
    if fault.kind == "token_expiry":
        expired = emu.state.expire_all_tokens()
        return web.json_response({"kind": fault.kind, "expired_tokens": expired}, status=201)
    emu.faults.add(fault)
    return web.json_response(fault.as_json(), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /_emulator/faults."""
    emulator(request).faults.clear()
    return web.json_response({"faults": []})


async def advance_clock(request: web.Request) -> web.Response:
    """POST /_emulator/clock {advance_seconds}: move emulated time on (token expiry without waiting)."""
    emu = emulator(request)
    body = await read_json(request)
    seconds = body.get("advance_seconds")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or not 0 <= seconds <= MAX_ADVANCE_SECONDS
    ):
        raise BadRequestError(f"advance_seconds must be a number from 0 to {MAX_ADVANCE_SECONDS}")
    if (emu.state.clock.now() + timedelta(seconds=seconds)).year > MAX_YEAR:
        raise BadRequestError(f"advance_seconds would take the clock past the year {MAX_YEAR}")
    emu.state.clock.advance(seconds)
    return web.json_response({"now": emu.state.clock.now().isoformat()})


def state_json(state: State, api: str) -> dict[str, Any]:
    """Everything, for assertions."""
    live_slots = set(state.slots)
    return {
        "companies": [hal.company_json(state, api, c) for _, c in sorted(state.companies.items())],
        "admins": [
            {"email": a.email, "name": a.name, "company_id": a.company_id} for a in state.admins.values()
        ],
        "people": [hal.person_json(state, api, p) for _, p in sorted(state.people.items())],
        "resources": [hal.resource_json(state, api, r) for _, r in sorted(state.resources.items())],
        "services": [hal.service_json(api, s) for _, s in sorted(state.services.items())],
        "schedules": [hal.schedule_json(api, s) for _, s in sorted(state.schedules.items())],
        "bookings": [
            hal.booking_json(state, api, b) for _, b in sorted(state.bookings.items()) if not b.is_block
        ],
        "blocks": [hal.booking_json(state, api, b) for _, b in sorted(state.bookings.items()) if b.is_block],
        "slots": [hal.slot_json(state, api, state.bookings[state.slots[s]]) for s in sorted(live_slots)],
        "tokens": len(state.tokens),
        "now": state.clock.now().isoformat(),
    }


async def get_state(request: web.Request) -> web.Response:
    """GET /_emulator/state."""
    emu = emulator(request)
    body = state_json(emu.state, api_base(request))
    body["webhooks"] = [e.as_json() for e in emu.hub.endpoints]
    body["faults"] = [f.as_json() for f in emu.faults.active]
    return web.json_response(body)


async def get_stats(request: web.Request) -> web.Response:
    """GET /_emulator/stats: requests per endpoint, webhook deliveries and retries."""
    emu = emulator(request)
    return web.json_response({"requests": dict(emu.requests), "webhooks": emu.hub.stats.as_json()})


# ---------------------------------------------------------------------------------------------------- as a JRNI user


def _booking_anywhere(state: State, booking_id: int) -> Booking:
    booking = state.bookings.get(booking_id)
    if booking is None:
        raise NotFoundError(f"booking {booking_id} not found")
    return booking


async def user_create_booking(request: web.Request) -> web.Response:
    """POST /_emulator/bookings: the admin create body plus company_id (``reservation: true`` for a reservation)."""
    emu = emulator(request)
    body = await read_json(request)
    if "company_id" not in body:
        raise BadRequestError("company_id is required")
    company_id = parse_int(body.pop("company_id"), "company_id")
    booking = emu.state.create_booking(company_id, body, booked_by=STUDIO_USER, booked_by_email=None)
    emu.created(request, booking)
    return web.json_response(hal.booking_json(emu.state, api_base(request), booking), status=201)


async def user_update_booking(request: web.Request) -> web.Response:
    """PUT /_emulator/bookings/{id}: the admin update body."""
    emu = emulator(request)
    body = await read_json(request)
    booking = _booking_anywhere(emu.state, int(request.match_info["id"]))
    changes = emu.state.update_booking(booking.company_id, booking.id, body, who=STUDIO_USER)
    emu.changed(request, changes)
    return web.json_response(hal.booking_json(emu.state, api_base(request), booking))


async def user_confirm_booking(request: web.Request) -> web.Response:
    """POST /_emulator/bookings/{id}/confirm: accept a reservation (no-op when already confirmed)."""
    emu = emulator(request)
    booking = _booking_anywhere(emu.state, int(request.match_info["id"]))
    changes = emu.state.update_booking(booking.company_id, booking.id, {"confirm": True}, who=STUDIO_USER)
    emu.changed(request, changes)
    return web.json_response(hal.booking_json(emu.state, api_base(request), booking))


async def user_cancel_booking(request: web.Request) -> web.Response:
    """POST /_emulator/bookings/{id}/cancel {cancel_reason?}."""
    emu = emulator(request)
    body = await read_json(request)
    booking = _booking_anywhere(emu.state, int(request.match_info["id"]))
    reason = body.get("cancel_reason")
    if reason is not None and not isinstance(reason, str):
        raise BadRequestError("cancel_reason must be a string")
    if emu.state.cancel_booking(booking.company_id, booking.id, reason=reason, who=STUDIO_USER):
        emu.cancelled(request, booking)
    return web.json_response(hal.booking_json(emu.state, api_base(request), booking))


async def set_schedule_rules(request: web.Request) -> web.Response:
    """PUT /_emulator/schedules/{id} {rules}: a schedule's rules changed in JRNI's screens (JRNI sends no webhook)."""
    emu = emulator(request)
    body = await read_json(request)
    schedule = emu.state.schedules.get(int(request.match_info["id"]))
    if schedule is None:
        raise NotFoundError(f"schedule {request.match_info['id']} not found")
    schedule.rules = parse_rules(body.get("rules"), "rules")  # checked whole before it replaces the old rules
    return web.json_response(hal.schedule_json(api_base(request), schedule))


async def user_block(request: web.Request) -> web.Response:
    """POST /_emulator/blocks {company_id, person_id | resource_id, start_time, end_time}: answers the slot."""
    emu = emulator(request)
    body = await read_json(request)
    for key in ("company_id", "start_time", "end_time"):
        if key not in body:
            raise BadRequestError(f"{key} is required")
    if ("person_id" in body) == ("resource_id" in body):
        raise BadRequestError("exactly one of person_id and resource_id is required")
    # Every body field is checked before anything changes: a 400 leaves no block behind and sends no webhook.
    company_id = parse_int(body["company_id"], "company_id")
    person_id = parse_int(body["person_id"], "person_id") if "person_id" in body else None
    resource_id = parse_int(body["resource_id"], "resource_id") if "resource_id" in body else None
    as_booking = parse_bool(body.get("booking", False), "booking")
    booking = emu.state.block(
        company_id,
        person_id=person_id,
        resource_id=resource_id,
        start_time=body["start_time"],
        end_time=body["end_time"],
        booked_by=STUDIO_USER,
        booked_by_email=None,
    )
    emu.created(request, booking)
    api = api_base(request)
    if as_booking:
        return web.json_response(hal.booking_json(emu.state, api, booking), status=201)
    return web.json_response(hal.slot_json(emu.state, api, booking), status=201)


def add_routes(app: web.Application) -> None:
    """Register the control plane."""
    c = "/_emulator"
    app.router.add_post(f"{c}/reset", reset)
    app.router.add_post(f"{c}/seed", seed)
    app.router.add_get(f"{c}/webhooks", list_webhooks)
    app.router.add_post(f"{c}/webhooks", add_webhook)
    app.router.add_delete(f"{c}/webhooks", clear_webhooks)
    app.router.add_get(f"{c}/faults", list_faults)
    app.router.add_post(f"{c}/faults", add_fault)
    app.router.add_delete(f"{c}/faults", clear_faults)
    app.router.add_post(f"{c}/clock", advance_clock)
    app.router.add_get(f"{c}/state", get_state)
    app.router.add_get(f"{c}/stats", get_stats)
    app.router.add_post(f"{c}/bookings", user_create_booking)
    app.router.add_put(c + r"/bookings/{id:\d+}", user_update_booking)
    app.router.add_post(c + r"/bookings/{id:\d+}/confirm", user_confirm_booking)
    app.router.add_post(c + r"/bookings/{id:\d+}/cancel", user_cancel_booking)
    app.router.add_post(f"{c}/blocks", user_block)
    app.router.add_put(c + r"/schedules/{id:\d+}", set_schedule_rules)
