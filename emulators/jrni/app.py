"""Assemble the JRNI emulator's aiohttp application: routes, middlewares, the webhook task."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import api, control
from .context import AUTHORITY, EMULATOR, Emulator, server_authority
from .faults import Faults
from .settings import JrniSettings
from .state import JrniError, State
from .webhooks import WebhookHub

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, reason: str, message: str | None = None) -> web.Response:
    """JRNI's error body; a 401 is exactly ``{"error": "401 Unauthorized"}`` as JRNI documents it."""
    body: dict[str, Any] = {"error": f"{status} {reason}"}
    if message and status != 401:
        body["message"] = message
    return web.json_response(body, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map domain errors (and aiohttp's own 404/405) to JSON error answers, in this one place."""
    try:
        return await handler(request)
    except JrniError as exc:
        return error_response(exc.status, exc.reason, exc.message)
    except OverflowError:
        # Last guard: input is bounded so that every time can be computed and shown; should one still overflow,
        # it is the client's value that is out of range, not a server fault.
        return error_response(400, "Bad Request", "a date, time or length is out of range")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason, f"{request.method} {request.path}")


@web.middleware
async def traffic_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count requests per endpoint; on the API apply latency and injected 500s, and require a known App-Id."""
    emu = request.app[EMULATOR]
    request[AUTHORITY] = server_authority(request)
    resource = request.match_info.route.resource
    endpoint = resource.canonical if resource is not None else "<unmatched>"
    emu.requests[f"{request.method} {endpoint}"] += 1
    if request.path.startswith("/_emulator/"):
        if not _is_loopback(request.remote):
            return error_response(403, "Forbidden", "the control plane answers loopback clients only")
        return await handler(request)
    if not request.path.startswith("/api/"):
        return await handler(request)
    delay_ms = emu.settings.latency_ms
    latency = emu.faults.take("latency", request.path)
    if latency is not None:
        delay_ms += latency.delay_ms
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)
    if emu.faults.take("http_500", request.path) is not None:
        # Before the handler runs: the injected failure never half-applies a change.
        return error_response(500, "Internal Server Error", "injected fault http_500")
    emu.state.check_app(request.headers.get("App-Id"), request.headers.get("App-Key"))
    response = await handler(request)
    token = request.get(api.TOKEN)
    if token is not None and response.status < 400:
        emu.state.touch_token(token)  # "24 h from last use": only a call that succeeded counts as a use
    return response


def _is_loopback(remote: str | None) -> bool:
    """127.0.0.0/8, ::1, and an IPv4 loopback address seen through a dual-stack socket (::ffff:127.0.0.1)."""
    try:
        address = ipaddress.ip_address(remote) if remote is not None else None
    except ValueError:
        return False
    if address is None:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def create_app(settings: JrniSettings | None = None, seed: dict[str, Any] | None = None) -> web.Application:
    """A fresh emulator application; ``seed`` is loaded as by ``POST /_emulator/seed``."""
    settings = settings or JrniSettings()
    faults = Faults()
    state = State(token_idle_seconds=settings.token_idle_seconds)
    if seed is not None:
        state.seed(seed)
    emu = Emulator(settings=settings, state=state, faults=faults, hub=WebhookHub(settings, faults))
    # error_middleware is outermost so errors raised by traffic_middleware (401 App-Id) are shaped too.
    app = web.Application(middlewares=[error_middleware, traffic_middleware])
    app[EMULATOR] = emu
    api.add_routes(app)
    control.add_routes(app)

    async def start_webhooks(_: web.Application) -> None:
        await emu.hub.start()

    async def stop_webhooks(_: web.Application) -> None:
        await emu.hub.stop()

    app.on_startup.append(start_webhooks)
    app.on_cleanup.append(stop_webhooks)
    return app


def load_seed_file(path: str) -> dict[str, Any]:
    """Read a seed JSON file."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a seed must be a JSON object")
    return data
