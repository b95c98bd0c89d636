"""The emulator's shared parts, reachable from every handler through ``request.app[EMULATOR]``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from .faults import Faults
from .settings import JrniSettings
from .state import Booking, State
from .webhooks import WebhookHub


@dataclass
class Emulator:
    settings: JrniSettings
    state: State
    faults: Faults
    hub: WebhookHub
    requests: Counter[str] = field(default_factory=Counter)

    def changed(self, request: web.Request, booking: Booking, triggers: list[str]) -> None:
        """Tell the webhook receivers about a booking change (links in payloads point at this server)."""
        if triggers:
            self.hub.emit(self.state, api_base(request), booking, triggers)


EMULATOR = web.AppKey("jrni_emulator", Emulator)


def api_base(request: web.Request) -> str:
    """Absolute ``/api/v1`` URL of this server; v5 answers carry v1 links too (jrni-gaps.md §7)."""
    return f"{request.scheme}://{request.host}/api/v1"
