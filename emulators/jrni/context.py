"""The emulator's shared parts, reachable from every handler through ``request.app[EMULATOR]``."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from .faults import Faults
from .settings import JrniSettings
from .state import Booking, Change, State
from .webhooks import WebhookHub


@dataclass
class Emulator:
    settings: JrniSettings
    state: State
    faults: Faults
    hub: WebhookHub
    requests: Counter[str] = field(default_factory=Counter)

    def changed(self, request: web.Request, changes: list[Change]) -> None:
        """Tell the webhook receivers about booking changes (links in payloads point at this server)."""
        if changes:
            self.hub.emit(self.state, api_base(request), changes)

    def created(self, request: web.Request, booking: Booking) -> None:
        """Tell the receivers a booking or block was created."""
        self.changed(request, [("create", booking.snapshot())])

    def cancelled(self, request: web.Request, booking: Booking) -> None:
        """Tell the receivers a booking or block was cancelled (or its slot deleted)."""
        self.changed(request, [("cancelled", booking.snapshot())])


EMULATOR = web.AppKey("jrni_emulator", Emulator)
AUTHORITY = web.RequestKey(
    "jrni_authority", str
)  # host:port for links, settled while the connection is there

_HOST = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")


def api_base(request: web.Request) -> str:
    """Absolute ``/api/v1`` URL of this server; v5 answers carry v1 links too (jrni-gaps.md §7)."""
    return f"{request.scheme}://{request.get(AUTHORITY) or server_authority(request)}/api/v1"


def server_authority(request: web.Request) -> str:
    """``host:port`` for links: the client's Host header only when it names this server (the address the request
    arrived at, or over loopback "localhost" / a loopback address; and the same port), else that address itself. A forged ``Host:`` cannot
    point links, and so the Auth-Token of a client that follows them, somewhere else."""
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if not isinstance(sockname, tuple) or len(sockname) < 2:
        return request.host  # not a TCP socket (e.g. a unix socket): nothing better to go by
    ip, port = str(sockname[0]), int(sockname[1])
    listening = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    match = _HOST.fullmatch(request.headers.get("Host", ""))
    if match is None:
        return listening
    host = match["host"].lower()
    default_port = 443 if request.scheme == "https" else 80
    asked_port = int(match["port"]) if match["port"] else default_port
    if asked_port != port:
        return listening
    bare = host.strip("[]")
    if bare == ip.lower():
        return request.headers["Host"]
    # Over loopback, "localhost" and any loopback address name this server too (127.0.0.1 vs localhost vs ::1).
    if _is_loopback_ip(ip) and (bare == "localhost" or _is_loopback_ip(bare)):
        return request.headers["Host"]
    return listening


def _is_loopback_ip(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)
