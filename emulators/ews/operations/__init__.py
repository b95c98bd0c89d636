"""One module per EWS operation (as exchangelib has one per service); each registers its handler here.

A handler gets the request context and the operation element (first child of the SOAP Body) and appends its
``<m:{Op}Response>`` to the response body. Handlers are synchronous: state lives on the event loop's thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from lxml import etree

from emulators.ews.context import RequestContext

Handler = Callable[[RequestContext, etree._Element, etree._Element], None]

HANDLERS: dict[str, Handler] = {}

# Operations that answer with a long-lived streamed response (GetStreamingEvents) write it themselves.
StreamingHandler = Callable[[RequestContext, etree._Element, web.Request], Awaitable[web.StreamResponse]]
STREAMING_HANDLERS: dict[str, StreamingHandler] = {}


def streaming_operation(name: str) -> Callable[[StreamingHandler], StreamingHandler]:
    """Register ``fn`` as the streamed-response handler of the EWS operation ``name``."""

    def register(fn: StreamingHandler) -> StreamingHandler:
        STREAMING_HANDLERS[name] = fn
        return fn

    return register


def operation(name: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of the EWS operation ``name``."""

    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return register


def load_all() -> dict[str, Handler]:
    """Import every operation module (registering its handlers) and return the registry."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return HANDLERS
